"""A growing delay on failed logins of one user name (issue 17 item 8), beside django-axes'
lock-out of a (user name, address) pair.

After n failed logins of a name, from anywhere, the next attempt for that name is not
checked before DRPORTAL_LOGIN_DELAY_BASE_S × 2^(n-1) seconds (at most
DRPORTAL_LOGIN_DELAY_MAX_S) have passed since the last failure: the request waits that
long, then the password is checked. It is never refused: a stranger guessing the Manager
on Duty's name slows each guess down but cannot keep the right password out. A success
starts again from 0.

The count lives in the cache (the two-site settings use the site's Redis; else Django's
local memory, per process) for a day after the last failure.
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.utils.translation import ngettext

KEEP_S = 24 * 3600  # how long the count of a name outlives its last failure


def _key(username: str, part: str) -> str:
    digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return f"drportal:login-delay:{digest}:{part}"


def delay_for(failures: int) -> float:
    """Seconds the next attempt waits after ``failures`` failed logins of its name."""
    if failures <= 0:
        return 0.0
    cap = float(settings.DRPORTAL_LOGIN_DELAY_MAX_S)
    # 2**exponent grows past any cap long before it overflows a float.
    return min(cap, float(settings.DRPORTAL_LOGIN_DELAY_BASE_S) * 2 ** min(failures - 1, 64))


def failures(username: str) -> int:
    return int(cache.get(_key(username, "n"), 0))


def wait_before_checking(username: str) -> float:
    """Sleep until the name's delay since its last failure has passed; the seconds slept."""
    if not username:
        return 0.0
    last = cache.get(_key(username, "last"))
    if last is None:
        return 0.0
    remaining = float(last) + delay_for(failures(username)) - time.time()
    if remaining <= 0:
        return 0.0
    time.sleep(remaining)
    return remaining


def record_failure(username: str) -> int:
    """Count one failed login of the name; the new count."""
    if not username:
        return 0
    key = _key(username, "n")
    cache.add(key, 0, KEEP_S)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, KEEP_S)
        count = 1
    cache.touch(key, KEEP_S)
    cache.set(_key(username, "last"), time.time(), KEEP_S)
    return count


def record_success(username: str) -> None:
    cache.delete_many([_key(username, "n"), _key(username, "last")])


class DelayedLoginView(auth_views.LoginView):
    """Django's login view, waiting out the user name's delay before checking the password."""

    def post(self, request, *args, **kwargs):
        self.login_name = request.POST.get("username", "")[:150]
        wait_before_checking(self.login_name)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        record_success(self.login_name)
        return super().form_valid(form)

    def form_invalid(self, form):
        self.failure_count = record_failure(self.login_name)
        return super().form_invalid(form)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        count = getattr(self, "failure_count", 0)
        if count:
            context["login_delay_note"] = ngettext(
                "%(n)s failed login of %(user)s: each next try of this user name waits longer "
                "(now %(s)s s, at most %(max)s s); the right password always gets in.",
                "%(n)s failed logins of %(user)s: each next try of this user name waits longer "
                "(now %(s)s s, at most %(max)s s); the right password always gets in.",
                count,
            ) % {
                "n": count,
                "user": self.login_name,
                "s": f"{delay_for(count):g}",
                "max": f"{float(settings.DRPORTAL_LOGIN_DELAY_MAX_S):g}",
            }
        return context
