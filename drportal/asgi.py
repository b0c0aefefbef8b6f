"""ASGI entry point (uvicorn). The live board's event stream needs an async server."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "drportal.settings")
application = get_asgi_application()
