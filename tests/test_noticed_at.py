"""Issue 17 item 6: an implausible "noticed at" is refused, by one rule
(failover.runs.noticed) that the declare form, the API and the command all reach through
runs.failover.check_declaration. Its errors name the field and the reason."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from failover.choices import RunKindChoices, RunModeChoices, RunStateChoices
from failover.models import Run
from failover.runs.failover import check_declaration
from failover.runs.noticed import last_known_good
from failover.runs.plan import Plan
from tests.factories import SiteFactory


@pytest.fixture
def sites(db):
    return SiteFactory(code="WSL", name="Wiesloch"), SiteFactory(
        code="KA", name="Karlsruhe", role="alternate"
    )


def _check(user, detected_at, **extra):
    plan = Plan(lost_site="WSL", target_site="KA", mode=RunModeChoices.PLANNED)
    return check_declaration(
        user=user,
        lost_site="WSL",
        disaster_class=2,
        category="power",
        detected_at=detected_at,
        plan=plan,
        override_reason="",
        confirm_isolated=True,
        **extra,
    )


def _errors(call) -> dict:
    with pytest.raises(ValidationError) as exc:
        call()
    return exc.value.message_dict


def test_a_noticed_at_time_in_the_future_is_refused(users, sites):
    future = timezone.now() + dt.timedelta(hours=1)
    errors = _errors(lambda: _check(users["mod"], future, confirm_detected_at=True))
    assert list(errors) == ["detected_at"]
    assert "Noticed at" in errors["detected_at"][0] and "future" in errors["detected_at"][0]


def test_a_small_clock_skew_into_the_future_is_accepted(users, sites):
    assert _check(users["mod"], timezone.now() + dt.timedelta(minutes=2)).code == "WSL"


def test_a_time_older_than_the_maximum_age_needs_the_confirmation(users, sites, settings):
    settings.DRPORTAL_DETECTED_MAX_AGE_H = 24
    old = timezone.now() - dt.timedelta(hours=30)
    errors = _errors(lambda: _check(users["mod"], old))
    assert list(errors) == ["detected_at"]
    message = errors["detected_at"][0]
    assert "Noticed at" in message and "more than 24 h ago" in message
    assert "I confirm this time" in message
    assert _check(users["mod"], old, confirm_detected_at=True).code == "WSL"


def test_the_maximum_age_is_a_setting(users, sites, settings):
    settings.DRPORTAL_DETECTED_MAX_AGE_H = 2
    errors = _errors(lambda: _check(users["mod"], timezone.now() - dt.timedelta(hours=3)))
    assert "more than 2 h ago" in errors["detected_at"][0]


def test_a_time_before_the_sites_last_known_good_state_is_refused_even_when_confirmed(users, sites):
    wsl, ka = sites
    back_home = timezone.now() - dt.timedelta(hours=2)
    Run.objects.create(
        kind=RunKindChoices.FAILBACK,
        mode=RunModeChoices.PLANNED,
        state=RunStateChoices.SUCCEEDED,
        lost_site=ka,
        target_site=wsl,
        created_by=users["mod"],
        finished_at=back_home,
    )
    assert last_known_good(wsl) == back_home
    errors = _errors(
        lambda: _check(users["mod"], back_home - dt.timedelta(hours=1), confirm_detected_at=True)
    )
    message = errors["detected_at"][0]
    assert "Noticed at" in message and "before" in message and "WSL" in message
    assert _check(users["mod"], back_home + dt.timedelta(minutes=10)).code == "WSL"


def test_the_1999_time_of_the_tester_is_refused(users, sites):
    errors = _errors(lambda: _check(users["mod"], dt.datetime(1999, 1, 1, tzinfo=dt.UTC)))
    assert "detected_at" in errors


def test_runs_that_never_ran_services_at_the_site_are_not_its_last_known_good(users, sites):
    wsl, ka = sites
    for kind, state, lost, target in (
        (RunKindChoices.FAILOVER, RunStateChoices.SUCCEEDED, wsl, ka),  # WSL was lost then
        (RunKindChoices.FAILBACK, RunStateChoices.ABORTED, ka, wsl),  # never came home
    ):
        Run.objects.create(
            kind=kind,
            mode=RunModeChoices.PLANNED,
            state=state,
            lost_site=lost,
            target_site=target,
            created_by=users["mod"],
            finished_at=timezone.now(),
        )
    assert last_known_good(wsl) is None
