"""Logins are throttled (django-axes: a user name from one address is locked out after
DRPORTAL_LOGIN_FAILURE_LIMIT failures, and it is recorded), and sessions end when idle."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.sessions.models import Session
from django.urls import reverse
from django.utils import timezone

from drportal.sessions import TOUCHED
from hosts.permissions import ROLE_MOD, sync_roles

pytestmark = pytest.mark.django_db

PASSWORD = "the-right-password-42"
ATTACKER = "203.0.113.7"
MOD = "198.51.100.20"


@pytest.fixture(autouse=True)
def short_login_delays(settings):
    """The per-name growing delay (drportal/login_delay.py, tested in tests/test_login_delay.py)
    kept short here, where axes' lock-out is what is tested."""
    from django.core.cache import cache

    settings.DRPORTAL_LOGIN_DELAY_BASE_S = 0.01
    settings.DRPORTAL_LOGIN_DELAY_MAX_S = 0.05
    cache.clear()


@pytest.fixture
def mod(db):
    """A Manager on Duty (roles synced first: a transactional test may have flushed them)."""
    sync_roles(Group, Permission)
    user = get_user_model().objects.create_user("mod-on-duty", password=PASSWORD)
    user.groups.set([Group.objects.get(name=ROLE_MOD)])
    return user


def log_in(client, password: str, address: str):
    return client.post(
        reverse("login"), {"username": "mod-on-duty", "password": password}, REMOTE_ADDR=address
    )


def test_a_correct_password_logs_in_through_the_form_and_is_recorded(client, mod):
    response = log_in(client, PASSWORD, MOD)
    assert response.status_code == 302 and response["Location"] == reverse(settings.LOGIN_REDIRECT_URL)
    assert AccessLog.objects.filter(username="mod-on-duty", ip_address=MOD).count() == 1


def test_failed_logins_lock_the_user_name_out_from_that_address_with_a_clear_message(client, mod):
    limit = settings.AXES_FAILURE_LIMIT
    for attempt in range(1, limit):
        response = log_in(client, f"guess-{attempt}", ATTACKER)
        assert response.status_code == 200, attempt
        assert "Your user name and password didn't match" in response.content.decode()

    locked = log_in(client, f"guess-{limit}", ATTACKER)
    assert locked.status_code == 429
    page = locked.content.decode()
    assert f"{limit} failed logins for mod-on-duty from your address: locked out." in page
    minutes = round(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    assert f"refused for {minutes} minutes" in page

    # The right password does not get in from there either, and the lock-out is recorded.
    assert log_in(client, PASSWORD, ATTACKER).status_code == 429
    attempt = AccessAttempt.objects.get(username="mod-on-duty", ip_address=ATTACKER)
    assert attempt.failures_since_start >= limit
    failures = AccessFailureLog.objects.filter(username="mod-on-duty", ip_address=ATTACKER)
    assert failures.count() >= limit and failures.filter(locked_out=True).exists()
    assert "_auth_user_id" not in client.session


def test_a_lock_out_does_not_keep_the_manager_on_duty_out_from_elsewhere(client, mod):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, f"guess-{attempt}", ATTACKER)
    assert log_in(client, PASSWORD, ATTACKER).status_code == 429
    response = log_in(client, PASSWORD, MOD)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(mod.pk)


def test_a_successful_login_starts_the_count_again(client, mod):
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, f"guess-{attempt}", MOD)
    assert log_in(client, PASSWORD, MOD).status_code == 302
    client.logout()
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, f"again-{attempt}", MOD).status_code == 200


def _expire_in(client, seconds: float, touched_ago: float) -> str:
    """The session ends in ``seconds``; it was last written ``touched_ago`` seconds ago."""
    session = client.session
    session[TOUCHED] = int(time.time() - touched_ago)
    session.save()
    Session.objects.filter(pk=session.session_key).update(
        expire_date=timezone.now() + dt.timedelta(seconds=seconds)
    )
    return session.session_key


def test_a_request_starts_the_idle_time_again(client, mod):
    client.force_login(mod)
    key = _expire_in(client, 30, touched_ago=settings.DRPORTAL_SESSION_REFRESH_S)
    assert client.get(reverse("overview")).status_code == 200
    expected = timezone.now() + dt.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    assert abs((Session.objects.get(pk=key).expire_date - expected).total_seconds()) < 60


def test_requests_write_the_session_at_most_once_a_refresh_interval(client, mod):
    client.force_login(mod)
    key = _expire_in(client, 30, touched_ago=0)
    ends = Session.objects.get(pk=key).expire_date
    assert client.get(reverse("overview")).status_code == 200
    assert Session.objects.get(pk=key).expire_date == ends


def test_an_idle_session_has_ended(client, mod):
    client.force_login(mod)
    key = client.session.session_key
    Session.objects.filter(pk=key).update(expire_date=timezone.now() - dt.timedelta(seconds=1))
    response = client.get(reverse("overview"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("header", ["HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_FORWARDED_PROTO"])
def test_without_a_configured_proxy_a_forwarded_header_is_refused_with_the_reason(
    client, mod, settings, header
):
    settings.DRPORTAL_TRUSTED_PROXIES = []
    response = client.post(
        reverse("login"),
        {"username": "mod-on-duty", "password": "guess"},
        REMOTE_ADDR="127.0.0.1",
        **{header: "203.0.113.99"},
    )
    assert response.status_code == 400
    assert (
        "no proxy configured" in response.content.decode()
        and "FORWARDED_ALLOW_IPS" in response.content.decode()
    )
    assert not AccessAttempt.objects.exists()


def test_with_a_configured_proxy_its_forwarded_headers_pass(client, mod, settings):
    settings.DRPORTAL_TRUSTED_PROXIES = ["192.0.2.10"]
    response = client.post(
        reverse("login"),
        {"username": "mod-on-duty", "password": PASSWORD},
        REMOTE_ADDR=MOD,
        HTTP_X_FORWARDED_FOR=MOD,
    )
    assert response.status_code == 302


def test_a_local_client_rotating_x_forwarded_for_cannot_guess_without_limit(tmp_path, mod, transactional_db):
    """Against uvicorn as the demo starts it: every made-up address is refused, no guess counted."""
    import requests

    from tests.board.live import Uvicorn
    from tests.engine.conftest import database_url

    server = Uvicorn(
        {"DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL, "DEBUG": "1"}, tmp_path
    ).start()
    try:
        session = requests.Session()
        session.get(f"{server.base}/accounts/login/", timeout=10)
        token = session.cookies["csrftoken"]
        answers = []
        for attempt in range(settings.AXES_FAILURE_LIMIT + 3):
            response = session.post(
                f"{server.base}/accounts/login/",
                data={
                    "username": "mod-on-duty",
                    "password": f"guess-{attempt}",
                    "csrfmiddlewaretoken": token,
                },
                headers={
                    "X-Forwarded-For": f"203.0.113.{attempt + 1}",
                    "Referer": f"{server.base}/accounts/login/",
                },
                timeout=10,
                allow_redirects=False,
            )
            answers.append(response.status_code)
    finally:
        server.stop()
    assert set(answers) == {400}, answers
    assert not AccessAttempt.objects.exclude(ip_address="127.0.0.1").exists()
