"""Login required everywhere, except the login page itself and static files.

The API (/api/) and the metrics (/metrics) are left to themselves: DRF authenticates by
token or session and answers 401 JSON, never a login redirect; /metrics checks its own
bearer token or loopback address (failover.api.metrics)."""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.db import OperationalError, connection
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

logger = logging.getLogger(__name__)
CONFLICT_MESSAGE = _("Nothing was saved: this was changed at the same time, try again.")

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


def _is_write_conflict(exc: Exception) -> bool:
    """SQLite's "database is locked"/"busy" after its busy timeout: another writer held the
    file too long. Nothing of this request was written (its transaction never began or was
    rolled back), so trying again is safe."""
    return (
        isinstance(exc, OperationalError)
        and connection.vendor == "sqlite"
        and ("database is locked" in str(exc) or "database is busy" in str(exc))
    )


class WriteConflictAnswers422:
    """A write that still meets a lock answers 422 "changed at the same time, try again",
    never a 500. HTMX requests get no swap but a ``drportal:error`` event the page shows
    beside the form (static/js/errors.js); plain requests a page with the same words."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not _is_write_conflict(exception):
            return None
        logger.warning("write conflict on %s %s: %s", request.method, request.path, exception)
        text = str(CONFLICT_MESSAGE)
        if getattr(request, "htmx", False):
            response = HttpResponse(text, status=422, content_type="text/plain; charset=utf-8")
            response["HX-Reswap"] = "none"
            response["HX-Trigger"] = json.dumps({"drportal:error": text})
            return response
        return render(request, "conflict.html", {"message": text}, status=422)


FORWARDED_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_FORWARDED",
)


class ForwardedHeadersOnlyFromTheProxy:
    """Forwarded headers count only when a proxy is configured (FORWARDED_ALLOW_IPS).

    uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise, so without this
    any local client could name a new address on every login and guess without limit (the
    throttle counts per user name and address). When no proxy is configured a request that
    carries the headers is refused with the reason: its address may be made up. With a proxy
    configured, uvicorn takes them from that proxy only and ignores them from anyone else."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not settings.DRPORTAL_TRUSTED_PROXIES:
            sent = [name for name in FORWARDED_HEADERS if name in request.META]
            if sent:
                names = ", ".join(name.removeprefix("HTTP_").replace("_", "-").title() for name in sent)
                return HttpResponse(
                    f"Refused: this request carries {names}, but drportal has no proxy configured "
                    "(FORWARDED_ALLOW_IPS is empty), so it does not take a client's word for its address. "
                    "Send the request without it, or set FORWARDED_ALLOW_IPS to the proxy's address.",
                    status=400,
                    content_type="text/plain; charset=utf-8",
                )
        return self.get_response(request)
