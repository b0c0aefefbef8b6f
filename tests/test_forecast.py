"""The plan's predicted minutes come from the last measured drill (issue 6, item 5)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from failover.models import Run
from failover.runs.forecast import apply_forecast
from failover.runs.plan import Plan
from tests.board.runs import build_run

pytestmark = pytest.mark.django_db


def finished_drill(user, *, minutes_per_step: float, ago_hours: float) -> Run:
    run = build_run(user=user, per_step=1, kind="drill", state="succeeded")
    finished = timezone.now() - dt.timedelta(hours=ago_hours)
    steps = [
        {
            "number": s.number,
            "key": s.key,
            "planned_minutes": s.planned_minutes,
            "actual_minutes": minutes_per_step,
        }
        for s in run.steps.order_by("number")
    ]
    summary = {"run_seconds": minutes_per_step * len(steps) * 60, "steps": steps}
    Run.objects.filter(pk=run.pk).update(finished_at=finished, summary=summary)
    return run


def test_without_a_drill_the_plan_predicts_the_thesis_minutes(reference_estate):
    plan = Plan(lost_site="WSL", target_site="KA", mode="disaster")
    apply_forecast(plan, "WSL")
    assert plan.forecast["source"] == "thesis"
    assert plan.predicted_minutes == 125  # thesis table 3.5: 5 + 30 + 30 + 15 + 15 + 30


def test_the_plan_predicts_the_step_times_of_the_last_drill_and_flags_a_slower_one(make_user):
    mod = make_user("mod")
    finished_drill(mod, minutes_per_step=1.0, ago_hours=48)
    last = finished_drill(mod, minutes_per_step=1.5, ago_hours=1)
    plan = Plan(lost_site="WSL", target_site="KA", mode="disaster")
    apply_forecast(plan, "WSL")
    assert plan.forecast["source"] == "drill" and plan.forecast["run"] == last.pk
    assert plan.predicted_minutes == pytest.approx(7 * 1.5)
    assert any("50 % slower than the one before" in w for w in plan.warnings), plan.warnings


def test_a_drill_within_20_percent_of_the_one_before_is_not_flagged(make_user):
    mod = make_user("mod")
    finished_drill(mod, minutes_per_step=1.0, ago_hours=48)
    finished_drill(mod, minutes_per_step=1.1, ago_hours=1)
    plan = Plan(lost_site="WSL", target_site="KA", mode="disaster")
    apply_forecast(plan, "WSL")
    assert plan.warnings == []
