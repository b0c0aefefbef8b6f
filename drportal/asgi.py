"""ASGI entry point (uvicorn). The live board's event stream needs an async server."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "drportal.settings")
django_application = get_asgi_application()

from failover.board.gate import StreamGate  # noqa: E402 (needs the apps loaded)

# The board's event streams: Django answers (login, permission), the gate sends the events
# (failover/board/stream.py); and a burst of reconnecting streams must not ask PostgreSQL for
# one connection each.
application = StreamGate(django_application)
