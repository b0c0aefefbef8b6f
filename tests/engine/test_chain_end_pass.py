"""A finished action hands its host slot on to the next action of its host, step and tier
(the chain); when a chain ends without handing its slot on, a pass runs unless a later
chain end of the same step and tier will run one that sees this result."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from failover.choices import ActionStateChoices as A
from failover.engine.execute import Finished, _finish_and_claim_next, _hand_on, _pass_can_wait
from failover.models import Action, Run, RunEvent, Step
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


def a_slot_and_its_neighbours(first: str, array: str, other_array: str):
    """The first action (in state ``first``) on dst1 and ``array``; one pending on another
    host, one on dst1 and another array; two more pending that fit its slot, in order."""
    return a_step(
        (first, "dst1", array),
        (A.PENDING, "dst2", array),
        (A.PENDING, "dst1", other_array),
        (A.PENDING, "dst1", array),
        (A.PENDING, "dst1", array),
    )


def test_a_finished_action_hands_its_slot_to_the_next_pending_action_of_its_host_step_and_tier():
    done, other_host, other_array, nxt, later = a_slot_and_its_neighbours(A.SUCCEEDED, "", "dst-eva")

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


# -- the hand-on and the claim in one statement (PostgreSQL) --------------------------------


def claimed_running(action: Action) -> Action:
    """``action`` as a worker holds it: claimed, attempt 1."""
    Action.objects.filter(pk=action.pk).update(state=A.RUNNING, attempt=1)
    action.refresh_from_db()
    return action


def finish(action: Action, state: str = A.SUCCEEDED, attempt: int = 1):
    return _finish_and_claim_next(
        action, attempt, Finished(state, "detail", {"seen": 1}, {}, "", "out"), None
    )


postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="one PostgreSQL statement")


@postgres_only
def test_a_result_and_the_claim_of_the_next_action_of_its_slot_are_one_statement_with_both_events_in_order():
    done, other_host, other_array, nxt, later = a_slot_and_its_neighbours(A.PENDING, "dst-eva", "other-eva")
    done = claimed_running(done)

    with CaptureQueriesContext(connection) as queries:
        recorded, claimed = finish(done)

    assert len(queries) == 1
    assert recorded is True and claimed is not None
    action, awaited = claimed
    assert (action.pk, action.state, action.attempt, awaited) == (nxt.pk, A.RUNNING, 1, False)
    assert action.claimed_by and action.started_at is not None and action.lease_expires_at is not None
    states = dict(Action.objects.values_list("id", "state"))
    assert [states[a.pk] for a in (done, other_host, other_array, nxt, later)] == [
        A.SUCCEEDED,
        A.PENDING,
        A.PENDING,
        A.RUNNING,
        A.PENDING,
    ]
    finished = Action.objects.get(pk=done.pk)
    assert (finished.result, finished.output, finished.lease_expires_at) == ({"seen": 1}, "out", None)
    events = list(
        RunEvent.objects.filter(run_id=done.run_id).order_by("seq").values_list("seq", "kind", "action_id")
    )
    assert events == [(1, "action_succeeded", done.pk), (2, "action_started", nxt.pk)]
    assert Run.objects.get(pk=done.run_id).event_seq == 2
    started = RunEvent.objects.get(seq=2, run_id=done.run_id)
    assert (started.message, started.data["attempt"]) == (f"{nxt.target}: start vm (attempt 1)", 1)


@postgres_only
def test_a_dependency_on_the_finished_action_is_judged_by_its_new_state():
    done, dependant = a_step((A.PENDING, "dst1", ""), (A.PENDING, "dst1", ""))
    dependant.depends_on.add(done)
    assert finish(claimed_running(done))[1][0].pk == dependant.pk

    done, dependant = a_step((A.PENDING, "dst1", ""), (A.PENDING, "dst1", ""))
    dependant.depends_on.add(done)
    assert finish(claimed_running(done), A.FAILED) == (True, None)
    assert Action.objects.get(pk=dependant.pk).state == A.PENDING


@postgres_only
def test_nothing_is_claimed_past_a_failed_dependency_in_a_paused_run_or_without_a_host():
    done, blocked, failed = a_step((A.PENDING, "dst1", ""), (A.PENDING, "dst1", ""), (A.FAILED, "dst2", ""))
    blocked.depends_on.add(failed)
    assert finish(claimed_running(done)) == (True, None)
    assert Action.objects.get(id=blocked.id).state == A.PENDING

    done, waiting = a_step((A.PENDING, "dst1", ""), (A.PENDING, "dst1", ""))
    done = claimed_running(done)
    Run.objects.filter(id=done.run_id).update(state="paused")
    assert finish(done) == (True, None)
    assert Action.objects.get(id=waiting.id).state == A.PENDING
    assert Action.objects.get(id=done.id).state == A.SUCCEEDED  # a pause lets a result be stored

    done, hostless = a_step((A.PENDING, "", ""), (A.PENDING, "", ""))
    assert finish(claimed_running(done)) == (True, None)
    assert Action.objects.get(id=hostless.id).state == A.PENDING


@postgres_only
def test_a_result_of_an_attempt_no_longer_current_is_refused_and_hands_nothing_on():
    done, nxt = a_step((A.PENDING, "dst1", ""), (A.PENDING, "dst1", ""))
    done = claimed_running(done)
    assert finish(done, attempt=2) == (False, None)  # the reaper took it meanwhile
    assert dict(Action.objects.values_list("id", "state")) == {done.pk: A.RUNNING, nxt.pk: A.PENDING}
    assert not RunEvent.objects.filter(run_id=done.run_id).exists()
