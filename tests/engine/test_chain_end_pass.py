"""A finished action hands its host slot on to the next action of its host, step and tier
(the chain); when a chain ends without handing its slot on, a pass runs unless a later
chain end of the same step and tier will run one that sees this result."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from failover.choices import ActionStateChoices as A
from failover.engine.execute import _hand_on, _pass_can_wait
from failover.models import Action, Run, Step
from tests.factories import SiteFactory

pytestmark = pytest.mark.django_db


def a_step(*states_hosts: tuple[str, str, str]) -> list[Action]:
    user, _ = get_user_model().objects.get_or_create(username="mod")
    run = Run.objects.create(
        kind="failover",
        mode="disaster",
        state="running",
        created_by=user,
        lost_site=SiteFactory(),
        target_site=SiteFactory(),
    )
    step = Step.objects.create(run=run, number=1, key="start", name="Start", planned_minutes=1)
    return [
        Action.objects.create(
            run=run, step=step, kind="start_vm", target=f"vm{i}", host=host, array=array, tier=1, state=state
        )
        for i, (state, host, array) in enumerate(states_hosts)
    ]


def test_a_success_leaves_the_pass_to_an_action_still_running_in_its_step_and_tier():
    done, _running = a_step((A.SUCCEEDED, "dst1", ""), (A.RUNNING, "dst2", ""))
    assert _pass_can_wait(done, A.SUCCEEDED) is True


def test_the_last_action_of_a_tier_runs_the_pass():
    done, _other = a_step((A.SUCCEEDED, "dst1", ""), (A.SUCCEEDED, "dst2", ""))
    assert _pass_can_wait(done, A.SUCCEEDED) is False


def test_a_failure_always_runs_the_pass():
    failed, _running = a_step((A.FAILED, "dst1", ""), (A.RUNNING, "dst2", ""))
    assert _pass_can_wait(failed, A.FAILED) is False


def test_a_pending_action_of_the_freed_host_or_array_runs_the_pass():
    done, _running, _pending = a_step(
        (A.SUCCEEDED, "dst1", "dst-eva"), (A.RUNNING, "dst2", ""), (A.PENDING, "dst3", "dst-eva")
    )
    assert _pass_can_wait(done, A.SUCCEEDED) is False
    done, _running, _pending = a_step(
        (A.SUCCEEDED, "dst1", ""), (A.RUNNING, "dst2", ""), (A.PENDING, "dst1", "other-eva")
    )
    assert _pass_can_wait(done, A.SUCCEEDED) is False


# -- the hand-on: a finished action gives its host slot to the next one at once -------------


def test_a_finished_action_hands_its_slot_to_the_next_pending_action_of_its_host_step_and_tier():
    done, other_host, other_array, nxt, later = a_step(
        (A.SUCCEEDED, "dst1", ""),
        (A.PENDING, "dst2", ""),
        (A.PENDING, "dst1", "dst-eva"),
        (A.PENDING, "dst1", ""),
        (A.PENDING, "dst1", ""),
    )

    assert _hand_on(done) == nxt.id  # the pass's order: the first that fits
    states = dict(Action.objects.values_list("id", "state"))
    assert (states[nxt.id], states[later.id], states[other_host.id], states[other_array.id]) == (
        A.QUEUED,
        A.PENDING,
        A.PENDING,
        A.PENDING,
    )
    assert Action.objects.get(id=nxt.id).queued_at is not None


def test_nothing_is_handed_on_past_a_failed_dependency_or_in_a_paused_run():
    done, blocked, failed = a_step((A.SUCCEEDED, "dst1", ""), (A.PENDING, "dst1", ""), (A.FAILED, "dst2", ""))
    blocked.depends_on.add(failed)
    assert _hand_on(done) is None
    assert Action.objects.get(id=blocked.id).state == A.PENDING

    done, waiting = a_step((A.SUCCEEDED, "dst1", ""), (A.PENDING, "dst1", ""))
    Run.objects.filter(id=done.run_id).update(state="paused")
    assert _hand_on(done) is None
    assert Action.objects.get(id=waiting.id).state == A.PENDING
