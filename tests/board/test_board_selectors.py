"""The board's selectors agree with the services and the engine on what is allowed and
what counts as done; the plan digest changes with the plan, not with error wording."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.loader import render_to_string

from failover.board import selectors as board
from failover.choices import ActionStateChoices as A
from failover.choices import RunStateChoices as R
from failover.models import Action, Run, RunEvent
from failover.runs import controls
from failover.runs.plan import Plan, Problem
from failover.runs.preview import plan_digest
from failover.runs.selectors import events_after

pytestmark = pytest.mark.django_db

CONTROLS = {
    "can_retry": lambda user, a: controls.action_retry(user=user, action_id=a.pk),
    "can_skip": lambda user, a: controls.action_skip(user=user, action_id=a.pk, reason="r"),
    "can_mark_done": lambda user, a: controls.action_mark_done(user=user, action_id=a.pk, reason="r"),
}


class _Rollback(Exception):
    pass


def _service_allows(call, user, action) -> bool:
    try:
        with transaction.atomic():
            call(user, action)
            raise _Rollback
    except _Rollback:
        return True
    except ValidationError:
        return False


@pytest.mark.parametrize("run_state", [R.RUNNING, R.PAUSED, R.SUCCEEDED])
def test_the_board_offers_an_action_control_exactly_when_the_service_allows_it(make_run, users, run_state):
    run = make_run(per_step=0, state=run_state)
    step = run.steps.get(number=2)
    Action.objects.bulk_create(
        [Action(run=run, step=step, kind="check_host", target=state, state=state) for state in A.values]
    )
    drawn = {a.pk: a for g in board.board_actions(run_id=run.pk)["action_groups"] for a in g["actions"]}
    for action in Action.objects.filter(run=run):
        for flag, call in CONTROLS.items():
            allowed = _service_allows(call, users["mod"], action)
            assert getattr(drawn[action.pk], flag) == allowed, (action.state, flag)


@pytest.mark.parametrize("run_state", R.values)
def test_the_board_offers_a_run_control_exactly_when_the_service_allows_it(make_run, users, run_state):
    run = make_run(per_step=1, state=run_state)
    header = board.board_header(run_id=run.pk)["header"]
    calls = {
        "can_pause": lambda: controls.run_pause(user=users["mod"], run_id=run.pk),
        "can_resume": lambda: controls.run_resume(user=users["mod"], run_id=run.pk),
        "can_abort": lambda: controls.run_abort(user=users["mod"], run_id=run.pk, reason="r"),
    }
    for flag, call in calls.items():
        assert getattr(header, flag) == _service_allows(lambda user, action, call=call: call(), None, None), (
            flag
        )
        Run.objects.filter(pk=run.pk).update(state=run_state)


def test_a_step_counts_done_skipped_and_failed_optional_actions_as_finished_like_the_engine(make_run):
    # step 6: one failed required action, two ok and two failed optional checks
    run = make_run(per_step=1, checks=4, action_state=A.FAILED)
    verify = next(r for r in board.board_steps(run_id=run.pk)["steps"] if r.step.number == 6)
    assert (verify.finished, verify.total, verify.failed) == (4, 5, 3)
    Action.objects.filter(run=run, step__number=6, optional=False).update(state=A.SKIPPED)
    verify = next(r for r in board.board_steps(run_id=run.pk)["steps"] if r.step.number == 6)
    assert (verify.finished, verify.total, verify.failed) == (5, 5, 2)


def test_the_headers_counts_from_the_steps_rows_are_the_ones_it_counts_itself(make_run):
    # failed required and optional actions, attention, done and skipped ones, in several steps
    run = make_run(per_step=2, checks=4, action_state=A.FAILED)
    Action.objects.filter(run=run, step__number=1).update(state=A.ATTENTION)
    Action.objects.filter(run=run, step__number=2).update(state=A.SKIPPED)
    Action.objects.filter(run=run, step__number=3, optional=False).update(state=A.SUCCEEDED)
    for _ in range(2):
        counted = board.board_header(run_id=run.pk)["header"]
        rows = board.board_steps(run_id=run.pk)["steps"]
        given = board.board_header(run_id=run.pk, counts=board.header_counts(rows))["header"]
        assert (given.total, given.finished, given.failed) == (
            counted.total,
            counted.finished,
            counted.failed,
        )
        assert counted.failed and counted.finished and counted.total > counted.finished
        Action.objects.filter(run=run, step__number=6, optional=True).update(state=A.ATTENTION)


def test_the_snapshot_tells_each_steps_progress_and_every_actions_state(make_run):
    run = make_run(per_step=2, events=2)
    first = Action.objects.filter(run=run).order_by("pk").first()
    Action.objects.filter(pk=first.pk).update(state=A.SUCCEEDED)
    snap = board.run_snapshot(run_id=run.pk)
    assert snap["seq"] == 3 and snap["state"] == R.RUNNING
    assert snap["steps"][0] == {
        "number": 0,
        "key": "preflight",
        "state": "pending",
        "finished": 1,
        "total": 2,
    }
    assert snap["actions"][str(first.pk)] == A.SUCCEEDED and len(snap["actions"]) == 14
    assert board.run_snapshot(run_id=run.pk + 999) is None


def test_events_after_a_number_come_oldest_first_with_the_runs_state(make_run):
    run = make_run(events=3)
    events, state, seq = events_after(run_id=run.pk, after=2)
    assert [e["seq"] for e in events] == [3, 4] and state == R.RUNNING and seq == 4
    assert [board.sse_event_name(k) for k in ("action_failed", "step_done", "run_paused", "override")] == [
        "action",
        "step",
        "run",
        "run",
    ]


def _plan(**kwargs) -> Plan:
    plan = Plan(lost_site="WSL", target_site="KA", mode="disaster")
    for key, value in kwargs.items():
        setattr(plan, key, value)
    return plan


def test_the_plan_digest_changes_with_what_the_plan_does_not_with_error_wording():
    down = Problem("unreachable", "xenka01 at the surviving site is unreachable: Connection refused")
    down_again = Problem("unreachable", "xenka01 at the surviving site is unreachable: timed out")
    start = [{"vm": "dns-xen01", "host": "xenka01", "memory_mb": 256}]
    assert plan_digest(_plan(blocking=[down])) == plan_digest(_plan(blocking=[down_again]))
    assert plan_digest(_plan(blocking=[down])) != plan_digest(_plan())
    assert plan_digest(_plan(starts=start)) != plan_digest(_plan())


def test_the_logs_lines_are_the_line_template_drawn_for_each_event_and_follow_a_change(make_run):
    run = make_run(events=2)
    log = board.board_log(run_id=run.pk)
    assert [str(line) for line in log["lines"]] == [
        render_to_string("failover/_log_line.html", {"e": e}).strip() for e in log["events"]
    ]
    RunEvent.objects.filter(run=run, seq=2).update(message="told otherwise")
    again = board.board_log(run_id=run.pk)
    assert "told otherwise" in str(again["lines"][1]) and "event 0" not in str(again["lines"][1])
