"""Issue 17 item 8, second half: failed logins of a user name slow the next attempt for that
name (0, then base, 2×base, 4×base ... seconds, capped at DRPORTAL_LOGIN_DELAY_MAX_S),
wherever they come from; a success starts again. A delay, never a lock-out: after the
wait the right password always gets in, however many strangers guessed before."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.urls import reverse

from drportal import login_delay
from tests.deploy.test_logins import PASSWORD, mod  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mod")]

BASE = 0.1
CAP = 0.4


@pytest.fixture(autouse=True)
def small_delays(settings, monkeypatch):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.DRPORTAL_LOGIN_DELAY_BASE_S = BASE
    settings.DRPORTAL_LOGIN_DELAY_MAX_S = CAP
    # Many addresses below: axes' own lock-out (per user name and address) stays out of the way.
    settings.AXES_FAILURE_LIMIT = 1000
    cache.clear()
    yield
    cache.clear()


def _try(client, password: str, address: str = "203.0.113.7", username: str = "mod-on-duty"):
    """The response, how long the portal waited before checking the password and how long
    after the name's last failure it checked it (measured around the real
    login_delay.wait_before_checking)."""
    real = login_delay.wait_before_checking
    waited: list[tuple[float, float]] = []

    def measured(name: str) -> float:
        last = cache.get(login_delay._key(name, "last"))
        started = time.monotonic()
        real(name)
        after_failure = time.time() - last if last is not None else float("inf")
        waited.append((time.monotonic() - started, after_failure))
        return waited[-1][0]

    login_delay.wait_before_checking = measured  # type: ignore[assignment]
    try:
        response = client.post(
            reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address
        )
    finally:
        login_delay.wait_before_checking = real  # type: ignore[assignment]
    assert len(waited) == 1
    return response, *waited[0]


def test_the_delay_grows_with_each_failure_and_is_capped():
    assert [login_delay.delay_for(n) for n in range(6)] == [0, BASE, 2 * BASE, 4 * BASE, CAP, CAP]


def test_each_failed_login_makes_the_next_attempt_for_that_name_wait_longer(client):
    gaps = []
    for attempt in range(5):
        response, took, after_failure = _try(client, f"guess-{attempt}", address=f"203.0.113.{attempt + 1}")
        assert response.status_code == 200
        gaps.append(after_failure)
        if attempt == 0:
            assert took < BASE / 2  # the first try does not wait
    # No password of the name is checked sooner than its delay after its last failure.
    assert gaps[1] >= BASE and gaps[2] >= 2 * BASE and gaps[3] >= CAP and gaps[4] >= CAP
    assert gaps[4] < CAP + 0.5
    assert login_delay.failures("mod-on-duty") == 5


def test_the_login_page_says_why_it_was_slow(client):
    _try(client, "guess-1")
    response, *_ = _try(client, "guess-2")
    page = response.content.decode()
    assert "2 failed logins of mod-on-duty" in page
    assert "the right password always gets in" in page


def test_other_user_names_do_not_wait(client):
    for attempt in range(3):
        _try(client, f"guess-{attempt}")
    get_user_model().objects.create_user("helpdesk", password=PASSWORD)
    response, took, _ = _try(client, PASSWORD, username="helpdesk", address="198.51.100.20")
    assert response.status_code == 302 and took < BASE / 2


def test_the_right_password_gets_in_after_the_delay_even_after_20_failures(client):
    for attempt in range(20):
        assert _try(client, f"guess-{attempt}", address=f"203.0.113.{attempt + 1}")[0].status_code == 200
    response, took, _ = _try(client, PASSWORD, address="198.51.100.20")
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(
        get_user_model().objects.get(username="mod-on-duty").pk
    )
    assert took <= CAP + 0.1  # at most the cap, never refused
    # A success starts again: the next try of the name does not wait.
    client.logout()
    assert login_delay.failures("mod-on-duty") == 0
    assert _try(client, "typo")[1] < BASE / 2


def test_a_request_after_the_delay_has_passed_does_not_wait(client):
    for attempt in range(3):
        _try(client, f"guess-{attempt}")
    time.sleep(4 * BASE)
    response, took, _ = _try(client, PASSWORD, address="198.51.100.20")
    assert response.status_code == 302 and took < BASE / 2
