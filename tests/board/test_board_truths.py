"""Issue 17 item 12, the board's smaller truths: the run time and the recovery time say
what each measures (board and report alike); the planned-against-actual chart gives the
actual bars a scale of their own with the figures on them; an aborted run's functional
tests that never ran say so instead of "Pending"."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from failover.choices import ActionStateChoices as A
from failover.choices import RunStateChoices as R
from failover.choices import StepStateChoices as S
from failover.models import Action, Run, Step
from failover.runs import controls

from .runs import build_run

pytestmark = pytest.mark.django_db


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def finished(users) -> Run:
    """A failover noticed 30 min before it was declared, that ran 6.3 s."""
    run = build_run(user=users["mod"], state=R.SUCCEEDED, step_states=dict.fromkeys(range(7), S.DONE))
    end = run.created_at + dt.timedelta(seconds=6.3)
    recovery = (end - run.disaster.detected_at).total_seconds()
    Run.objects.filter(pk=run.pk).update(
        finished_at=end, summary={"run_seconds": 6.3, "recovery_seconds": recovery, "deadline_met": True}
    )
    return run


def test_the_board_and_the_report_say_what_run_time_and_recovery_time_measure(users, as_role):
    run = finished(users)
    client = as_role("helpdesk")
    header = client.get(reverse("run-part", args=[run.pk, "header"])).content.decode()
    report = client.get(reverse("reports:run", args=[run.pk])).content.decode()
    for page in (header, report):
        assert re.search(r'<dfn title="[^"]*from the start of the run to its end[^"]*">Run time</dfn>', page)
        assert re.search(
            r'<dfn title="[^"]*from when the event was noticed[^"]*to the end of the run[^"]*">Recovery time',
            page,
        )
    words = text(header)
    assert "Run time 6.3 s" in words
    assert "Recovery time 30 min" in words  # 30 min before the declaration, plus the run
    assert "from the start of the run to its end" in words
    assert "from when the event was noticed" in words and "to the end of the run" in words


def test_the_actual_bars_have_their_own_scale_and_carry_their_figures(users, as_role):
    """A 6 s step in a 125-minute plan: its actual bar is at least a tenth of the track."""
    run = build_run(user=users["mod"], state=R.RUNNING, step_states={0: S.DONE, 1: S.RUNNING})
    now = timezone.now()
    Run.objects.filter(pk=run.pk).update(created_at=now - dt.timedelta(seconds=20))
    Step.objects.filter(run=run).update(planned_minutes=0)
    Step.objects.filter(run=run, number=0).update(
        planned_minutes=5,
        started_at=now - dt.timedelta(seconds=20),
        finished_at=now - dt.timedelta(seconds=14),
    )
    Step.objects.filter(run=run, number=1).update(
        planned_minutes=120, started_at=now - dt.timedelta(seconds=14)
    )
    html = as_role("helpdesk").get(reverse("run-part", args=[run.pk, "steps"])).content.decode()
    svg = html[html.index("<svg") : html.index("</svg>")]
    track = re.search(r'data-track-x="([\d.]+)" data-track-w="([\d.]+)"', svg)
    assert track, svg
    span = float(track.group(2))
    first = re.search(r'<g class="tl-row tl-done"[^>]*>(.*?)</g>', svg, re.S).group(1)
    bar = re.search(r'<rect [^>]*width="([\d.]+)"[^>]*class="actual"', first)
    assert bar and float(bar.group(1)) >= 0.1 * span, first
    assert re.search(r'<text [^>]*class="figure actual-figure"[^>]*>6\.0 s</text>', first), first
    assert re.search(r'<text [^>]*class="figure planned-figure"[^>]*>5\.0 min</text>', first), first
    assert "actual: seconds since the run started" in text(
        html
    ) or "actual: time since the run started" in text(html)


def test_an_aborted_runs_functional_tests_that_never_ran_say_so(users, as_role):
    run = build_run(user=users["mod"], state=R.RUNNING, checks=2, step_states={6: S.RUNNING})
    ran, never = Action.objects.filter(run=run, kind="functional_check").order_by("order")
    Action.objects.filter(pk=never.pk).update(state=A.PENDING, outcome="", error="")
    controls.run_abort(user=users["mod"], run_id=run.pk, reason="wrong site")
    html = as_role("helpdesk").get(reverse("run-part", args=[run.pk, "checks"])).content.decode()
    row = re.search(rf'<tr id="check-{never.pk}"[^>]*>(.*?)</tr>', html, re.S).group(0)
    assert 'data-outcome="not-run"' in row and "not run (run aborted)" in text(row)
    assert "Pending" not in html
    kept = re.search(rf'<tr id="check-{ran.pk}"[^>]*>(.*?)</tr>', html, re.S).group(0)
    assert 'data-outcome="ok"' in kept  # real results stay
    assert "not run 1" in text(html)


def test_a_running_runs_clock_says_since_when_it_counts(users, as_role):
    run = build_run(user=users["mod"], state=R.RUNNING)
    header = as_role("helpdesk").get(reverse("run-part", args=[run.pk, "header"])).content.decode()
    words = text(header)
    assert "Running for" in words and "since the run started" in words
    assert "to its end" not in words and "Recovery time" not in words
