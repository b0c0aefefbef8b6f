"""Logging in on a read-only portal (a standby, or a portal that is behind).

Its PostgreSQL takes no writes, yet the Manager on Duty must log in there to take over.
A login writes three things: the session (a two-site portal keeps sessions in its own
Redis: settings.py), the user's last_login, and django-axes' attempt records. While the
portal is read-only the last two go elsewhere: last_login is not updated, and failed
attempts are counted in the cache (the same limits: five failures of one user name from
one address lock that pair out), as axes' own cache handler counts them. Back to the
database as soon as the portal acts (primary, standalone)."""

from __future__ import annotations

from axes.handlers.cache import AxesCacheHandler  # type: ignore[import-untyped]  # no stubs
from axes.handlers.database import AxesDatabaseHandler  # type: ignore[import-untyped]  # no stubs
from django.contrib.auth.models import update_last_login

from .twosite import site_status


def _read_only() -> bool:
    return site_status().read_only


class AxesSiteHandler(AxesDatabaseHandler):
    """axes' database handler, and its cache handler while this portal is read-only."""

    def __init__(self) -> None:
        super().__init__()
        self._cache = AxesCacheHandler()

    def get_failures(self, request, credentials=None) -> int:
        if _read_only():
            return self._cache.get_failures(request, credentials)
        return super().get_failures(request, credentials)

    def user_login_failed(self, sender, credentials, request=None, **kwargs):
        if _read_only():
            return self._cache.user_login_failed(sender, credentials, request, **kwargs)
        return super().user_login_failed(sender, credentials, request, **kwargs)

    def user_logged_in(self, sender, request, user, **kwargs):
        if _read_only():
            return self._cache.user_logged_in(sender, request, user, **kwargs)
        return super().user_logged_in(sender, request, user, **kwargs)

    def user_logged_out(self, sender, request, user, **kwargs):
        if _read_only():
            return self._cache.user_logged_out(sender, request, user, **kwargs)
        return super().user_logged_out(sender, request, user, **kwargs)


def update_last_login_when_writable(sender, user, **kwargs) -> None:
    """Django's own last_login update (connected in its place), skipped while read-only."""
    if not _read_only():
        update_last_login(sender, user, **kwargs)
