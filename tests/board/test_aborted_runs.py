"""Issue 17 items 2 and 3: an aborted run shows where each step stopped and its clock
stops; its board says what it left behind and what to do; the failover's board offers
the failback again whenever no failback is active or succeeded."""

from __future__ import annotations

import re
import time

import pytest
from django.urls import reverse

from failover.board import selectors as board
from failover.choices import ActionStateChoices as A
from failover.choices import RunStateChoices as R
from failover.choices import StepStateChoices as S
from failover.models import Action, Run
from failover.runs import controls

from .runs import build_run, failback_of

pytestmark = pytest.mark.django_db


def _half_done(users, **kwargs) -> Run:
    run = build_run(user=users["mod"], step_states={0: S.DONE, 1: S.DONE, 2: S.RUNNING}, **kwargs)
    Action.objects.filter(run=run, step__number__in=(0, 1)).update(state=A.SUCCEEDED)
    first, second = Action.objects.filter(run=run, step__number=2).order_by("order")
    Action.objects.filter(pk=first.pk).update(
        state=A.SUCCEEDED, kind="failover_group", target="DRG-PROXY", host="eva-ka"
    )
    Action.objects.filter(pk=second.pk).update(state=A.QUEUED)
    return run


def _steps_text(client, run) -> str:
    html = client.get(reverse("run-part", args=[run.pk, "steps"])).content.decode()
    return html[: html.index("<figure")]


def test_an_aborted_run_shows_where_each_step_stopped_and_its_clock_stops(users, as_role):
    run = _half_done(users)
    controls.run_abort(user=users["mod"], run_id=run.pk, reason="wrong site")
    steps = {s.number: s for s in run.steps.all()}
    assert steps[2].state == S.STOPPED and steps[2].finished_at is not None
    assert all(steps[n].state == S.PENDING for n in range(3, 7))
    assert not Action.objects.filter(run=run, state=A.QUEUED).exists()  # nothing waits to run

    client = as_role("helpdesk")
    first = _steps_text(client, run)
    assert re.search(r'id="step-2" data-state="stopped">.*?Stopped by the abort', first, re.S)
    assert "Running" not in first
    assert first.count("Not run: the run was aborted") == 4  # steps 3 to 6
    time.sleep(1.2)
    assert _steps_text(client, run) == first  # the clock has stopped

    actions = client.get(reverse("run-part", args=[run.pk, "actions"])).content.decode()
    assert "Queued" not in actions and "Not run: the run was aborted" in actions
    log = client.get(reverse("run-part", args=[run.pk, "log"])).content.decode()
    assert "stopped in step 2" in log


def test_an_aborted_failback_board_says_what_it_left_behind_and_what_to_do(users, as_role):
    failover = build_run(user=users["mod"], state=R.SUCCEEDED)
    failback = _half_done(users, kind="failback")
    Run.objects.filter(pk=failback.pk).update(parent=failover)
    controls.run_abort(user=users["mod"], run_id=failback.pk, reason="eva-wsl flaps")
    page = as_role("helpdesk").get(reverse("run-board", args=[failback.pk])).content.decode()
    after = page[page.index('id="aftermath"') :]
    after = re.sub(r"<[^>]+>", "", after[: after.index("</div>")])
    assert "Aborted: what it left behind and what to do" in after
    assert "Stopped in step 2; 9 actions did not run." in after
    assert "Fail the DR group over: DRG-PROXY" in after
    assert "Check the dom0" not in after  # looking changed nothing
    assert f"fail back again from failover run {failover.pk}" in after


@pytest.mark.parametrize(
    ("failbacks", "offered"),
    [
        ((), True),
        ((R.ABORTED,), True),
        ((R.FAILED,), True),
        ((R.RUNNING,), False),
        ((R.PAUSED,), False),
        ((R.ABORTED, R.SUCCEEDED), False),
        ((R.ABORTED, R.ABORTED), True),
    ],
)
def test_the_failover_board_offers_the_failback_whenever_none_is_active_or_succeeded(
    users, as_role, failbacks, offered
):
    failover = build_run(user=users["mod"], state=R.SUCCEEDED)
    for state in failbacks:
        failback_of(failover, state=state)
    url = reverse("run-failback", args=[failover.pk])
    page = as_role("mod").get(reverse("run-board", args=[failover.pk])).content.decode()
    assert (f'action="{url}"' in page) is offered
    assert board.board_header(run_id=failover.pk)["header"].can_fail_back is offered
    for state in failbacks:  # every failback is listed, not only the newest
        assert f"({Run(state=state).get_state_display()})" in page
    helpdesk = as_role("helpdesk").get(reverse("run-board", args=[failover.pk])).content.decode()
    assert f'action="{url}"' not in helpdesk


def test_the_board_of_a_failover_says_where_its_site_stands_now(users, as_role):
    failover = build_run(user=users["mod"], state=R.SUCCEEDED)
    back = failback_of(failover, state=R.SUCCEEDED)
    page = as_role("helpdesk").get(reverse("run-board", args=[failover.pk])).content.decode()
    now = re.sub(r"<[^>]+>", "", page[page.index('id="site-now"') :].split("</p>", 1)[0])
    assert f"WSL now: In service — home again since failback run {back.pk}" in now
