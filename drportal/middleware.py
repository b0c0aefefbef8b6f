"""Login required everywhere, except the login page itself and static files.

The API (/api/) and the metrics (/metrics) are left to themselves: DRF authenticates by
token or session and answers 401 JSON, never a login redirect; /metrics checks its own
bearer token or loopback address (failover.api.metrics)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse
from django.urls import reverse

OPEN_PREFIXES = ("/accounts/login/", "/static/", "/admin/login/", "/i18n/", "/healthz", "/api/", "/metrics")


class LoginRequiredEverywhere:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated or request.path.startswith(OPEN_PREFIXES):
            return self.get_response(request)
        if getattr(request, "htmx", False):
            # An HTMX swap of a login page into a fragment helps nobody: make htmx reload.
            response = HttpResponse(status=401)
            response["HX-Redirect"] = reverse(settings.LOGIN_URL)
            return response
        return redirect_to_login(request.get_full_path())
