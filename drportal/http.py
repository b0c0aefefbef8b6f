"""The request as drportal's views see it: Django's, with django-htmx's details."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """For the type checker: django_htmx.middleware.HtmxMiddleware sets ``request.htmx``."""

    htmx: HtmxDetails
