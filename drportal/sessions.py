"""Sessions end after DRPORTAL_SESSION_IDLE_S (SESSION_COOKIE_AGE) without a request.

Every request moves the end on, but the session is written at most once every
DRPORTAL_SESSION_REFRESH_S: the run board's partials and event streams ask often, and a
write per request would cost every viewer a database write per update. So a session ends
between IDLE - REFRESH and IDLE seconds after its last request.
"""

from __future__ import annotations

import time

from django.conf import settings

TOUCHED = "_drportal_touched"


class SessionIdleRefresh:
    """Inside SessionMiddleware: marks a logged-in session modified (so SessionMiddleware
    saves it with a new expiry) when it was last written REFRESH seconds ago or more."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if session is not None and session.session_key is not None and not session.is_empty():
            now = int(time.time())
            if now - int(session.get(TOUCHED, 0)) >= settings.DRPORTAL_SESSION_REFRESH_S:
                session[TOUCHED] = now
        return response


def touch_on_login(sender, request, user, **kwargs) -> None:
    """A login writes the session anyway: start the refresh clock with it."""
    if request is not None and hasattr(request, "session"):
        request.session[TOUCHED] = int(time.time())
