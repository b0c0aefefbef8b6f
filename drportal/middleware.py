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


# Writes that a standby (or a portal that is behind) still takes: logging in and out (the
# sessions of a two-site portal live in its own Redis, the lock-out records too while it is
# read-only: settings.py, drportal/standby_login.py) and the language cookie.
# The take-over is the one change a standby is there for (its view checks who and when).
READ_ONLY_OPEN = (
    "/accounts/login/",
    "/accounts/logout/",
    "/admin/login/",
    "/admin/logout/",
    "/i18n/",
    "/site/take-over/",
)
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def read_only_response(request, reason: str, mode: str):
    """The answer to a write on a portal that must not change anything: 503 with the reason
    and what to do, as JSON for the API, as a page otherwise."""
    from django.http import JsonResponse
    from django.shortcuts import render

    from .twosite import site_status

    status = site_status()
    response: HttpResponse
    if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
        response = JsonResponse(
            {
                "detail": f"{reason}. Nothing was changed.",
                "site": status.site,
                "site_mode": mode,
                "primary": status.peer_site,
                "primary_portal": settings.DRPORTAL_PEER_PORTAL_URL,
            },
            status=503,
        )
    else:
        response = render(
            request,
            "drportal/read_only.html",
            {"reason": reason, "peer_portal_url": settings.DRPORTAL_PEER_PORTAL_URL},
            status=503,
        )
    response["Retry-After"] = "60"
    return response


class StandbyGuard:
    """A standby (or behind) portal refuses every write with a clear 503, before any view
    runs: its database is read-only, and a behind portal's must not change. As a safety
    net, a write that reaches PostgreSQL anyway (a view that writes on GET) becomes the same
    answer instead of a 500 from the read-only transaction."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method in UNSAFE and not request.path.startswith(READ_ONLY_OPEN):
            from .twosite import site_status

            status = site_status()
            if status.read_only:
                return read_only_response(request, status.reason, status.mode)
        return self.get_response(request)

    def process_exception(self, request, exception):
        from psycopg.errors import ReadOnlySqlTransaction

        cause = exception
        while cause is not None and not isinstance(cause, ReadOnlySqlTransaction):
            cause = cause.__cause__
        if cause is None:
            return None
        from .twosite import clear_cache, site_status

        clear_cache()  # the database just said what it is: ask again
        status = site_status()
        reason = status.reason or "this portal's database is read-only (a standby)"
        return read_only_response(request, reason, status.mode)
