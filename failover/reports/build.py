"""Reads for the auditors' reports: one run's report (the HTML page and the PDF render
the same ``RunReport``) and the index of every run and drill.

A report is a read of what the engine recorded (Run, Step, Action, RunEvent); nothing
here recomputes the plan. Each selector runs a fixed number of queries whatever the size
of the run (tests bound them with django_assert_max_num_queries).
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field

from django.core.paginator import Page, Paginator
from django.db.models import Count, Max, Q
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404
from django.utils import timezone

from failover.choices import CheckOutcomeChoices, ReportExclusionChoices, RunKindChoices, RunStateChoices
from failover.models import Action, Run, RunEvent, Step
from hosts.models import Site

# RunEvents that record a person overriding the engine, each with its reason.
INTERVENTION_KINDS = (
    "override",
    "action_skipped",
    "action_marked_done_by_hand",
    "action_retried",
    "run_aborted",
)
INTERVENTION_LABELS = {
    "override": "Blocking problem overridden",
    "action_skipped": "Action skipped",
    "action_marked_done_by_hand": "Marked done by hand",
    "action_retried": "Action retried",
    "run_aborted": "Run aborted",
}
INDEX_PAGE_SIZE = 50


@dataclass
class StepRow:
    step: Step
    actions: list[Action]
    start_offset_s: float | None  # seconds after the run started
    end_offset_s: float | None

    @property
    def planned_minutes(self) -> float:
        return self.step.planned_minutes

    @property
    def actual_minutes(self) -> float | None:
        return self.step.actual_minutes

    @property
    def delta_minutes(self) -> float | None:
        actual = self.actual_minutes
        return None if actual is None else actual - self.planned_minutes

    @property
    def over_plan(self) -> bool:
        return (self.delta_minutes or 0) > 0


@dataclass
class CheckRow:
    action: Action
    vm: str
    check: str
    outcome: str  # ok, down, note; "" when it never ran

    @property
    def outcome_label(self) -> str:
        return (
            str(CheckOutcomeChoices(self.outcome).label)
            if self.outcome in CheckOutcomeChoices.values
            else "—"
        )

    @property
    def detail(self) -> str:
        a = self.action
        last = a.output.strip().rsplit("\n", 1)[-1].strip() if a.output else ""
        return a.error or a.reason or last


@dataclass
class Intervention:
    event: RunEvent

    @property
    def label(self) -> str:
        return INTERVENTION_LABELS.get(self.event.kind, self.event.kind)


@dataclass
class RunReport:
    run: Run
    steps: list[StepRow]
    checks: list[CheckRow]
    interventions: list[Intervention]
    generated_at: dt.datetime
    action_count: int = 0
    state_counts: dict[str, int] = field(default_factory=dict)

    @property
    def disaster(self):
        return self.run.disaster

    @property
    def summary(self) -> dict:
        return self.run.summary or {}

    @property
    def started_at(self) -> dt.datetime:
        return self.run.created_at

    @property
    def recovery_seconds(self) -> float | None:
        return self.summary.get("recovery_seconds")

    @property
    def run_seconds(self) -> float | None:
        if "run_seconds" in self.summary:
            return self.summary["run_seconds"]
        if self.run.finished_at:
            return (self.run.finished_at - self.run.created_at).total_seconds()
        return None

    @property
    def recovery_from(self) -> dt.datetime:
        """Recovery time counts from the detection of a disaster, else from the run's start."""
        return self.disaster.detected_at if self.disaster else self.run.created_at

    @property
    def deadline(self) -> dt.datetime | None:
        return self.disaster.deadline if self.disaster else None

    @property
    def deadline_met(self) -> bool | None:
        return deadline_met(self.run)

    @property
    def deadline_margin_seconds(self) -> float | None:
        if self.deadline is None or self.run.finished_at is None:
            return None
        return (self.deadline - self.run.finished_at).total_seconds()

    @property
    def planned_minutes(self) -> float:
        return sum(row.planned_minutes for row in self.steps)

    @property
    def actual_minutes(self) -> float | None:
        seconds = self.run_seconds
        return None if seconds is None else seconds / 60

    @property
    def check_summary(self) -> dict[str, int]:
        return {k: sum(1 for c in self.checks if c.outcome == k) for k in CheckOutcomeChoices.values}

    @property
    def vms(self) -> list[str]:
        """The VMs this run started (or started a drill clone of, or shut down) or set the
        memory of, in plan order."""
        seen: dict[str, None] = {}
        for row in self.steps:
            for a in row.actions:
                vm = a.params.get("vm")
                if a.kind in VM_KINDS and vm and vm != "Domain-0":
                    seen.setdefault(vm, None)
        return list(seen)


VM_KINDS = ("start_vm", "start_drill_vm", "shutdown_vm", "set_memory")


def deadline_met(run: Run) -> bool | None:
    """Did the run end by the disaster's deadline? None while it runs, and for runs
    without a disaster (drills and planned migrations have no deadline)."""
    if run.disaster is None or run.finished_at is None:
        return None
    if run.state != RunStateChoices.SUCCEEDED:
        return False  # this run did not recover the site, let alone in time
    met = (run.summary or {}).get("deadline_met")
    return met if met is not None else run.finished_at <= run.disaster.deadline


def run_report(*, run_id: int) -> RunReport:
    """Everything the report of one run shows, in four queries."""
    run = get_object_or_404(
        Run.objects.select_related(
            "disaster__declared_by",
            "disaster__approved_by",
            "disaster__isolation_confirmed_by",
            "lost_site",
            "target_site",
            "created_by",
        ),
        pk=run_id,
    )
    steps = list(Step.objects.filter(run_id=run.pk).order_by("number"))
    actions = list(Action.objects.filter(run_id=run.pk).order_by("step__number", "order", "pk"))
    by_step: dict[int, list[Action]] = {s.pk: [] for s in steps}
    for a in actions:
        by_step.setdefault(a.step_id, []).append(a)

    def offset(moment: dt.datetime | None) -> float | None:
        return None if moment is None else (moment - run.created_at).total_seconds()

    rows = [
        StepRow(
            step=s,
            actions=by_step[s.pk],
            start_offset_s=offset(s.started_at),
            end_offset_s=offset(s.finished_at),
        )
        for s in steps
    ]
    checks = [
        CheckRow(
            action=a,
            vm=a.params.get("vm", a.target),
            check=a.params.get("check", a.target),
            outcome=a.outcome,
        )
        for a in actions
        if a.kind == "functional_check"
    ]
    events = list(
        RunEvent.objects.filter(run_id=run.pk, kind__in=INTERVENTION_KINDS)
        .select_related("user", "action")
        .order_by("seq")
    )
    counts: dict[str, int] = {}
    for a in actions:
        counts[a.state] = counts.get(a.state, 0) + 1
    return RunReport(
        run=run,
        steps=rows,
        checks=checks,
        interventions=[Intervention(e) for e in events],
        generated_at=timezone.now(),
        action_count=len(actions),
        state_counts=counts,
    )


# -- the auditors' index ----------------------------------------------------------------------


@dataclass
class IndexRow:
    run: Run

    @property
    def recovery_seconds(self) -> float | None:
        return (self.run.summary or {}).get("recovery_seconds")

    @property
    def deadline(self) -> dt.datetime | None:
        return self.run.disaster.deadline if self.run.disaster else None

    @property
    def deadline_met(self) -> bool | None:
        return deadline_met(self.run)

    @property
    def who(self):
        return self.run.disaster.declared_by if self.run.disaster_id else self.run.created_by


@dataclass
class KindFigures:
    kind: str
    label: str
    total: int
    succeeded: int
    last_at: dt.datetime | None
    median_recovery_s: float | None
    max_recovery_s: float | None
    left_out: int = 0  # runs of this kind marked as an exercise or bad data: not in the figures


@dataclass
class SiteFigures:
    site: Site
    drills_last_year: int
    last_drill_at: dt.datetime | None
    failovers: int


@dataclass
class ReportIndex:
    page: Page
    rows: list[IndexRow]
    kinds: list[KindFigures]
    sites: list[SiteFigures]
    kind: str

    @property
    def left_out(self) -> int:
        return sum(k.left_out for k in self.kinds)


def report_index(*, kind: str = "", page: int | str | None = 1) -> ReportIndex:
    """Every run and drill, newest first (paged), with how often each site was tested and
    how long recoveries took. A fixed number of queries for any number of runs."""
    runs = Run.objects.select_related(
        "disaster__declared_by", "created_by", "lost_site", "target_site"
    ).defer("plan", "disaster__notes")
    if kind in RunKindChoices.values:
        runs = runs.filter(kind=kind)
    else:
        kind = ""
    paginator = Paginator(runs.order_by("-created_at", "-pk"), INDEX_PAGE_SIZE)
    current = paginator.get_page(page)
    rows = [IndexRow(run) for run in current.object_list]

    # The figures count only runs nobody marked as an exercise or bad data (the list shows all).
    counted = Run.objects.filter(report_exclusion=ReportExclusionChoices.COUNTED)
    recoveries: dict[str, list[float]] = {k: [] for k in RunKindChoices.values}
    for k, seconds in counted.filter(
        state=RunStateChoices.SUCCEEDED, summary__has_key="recovery_seconds"
    ).values_list("kind", "summary__recovery_seconds"):
        if k in recoveries and seconds is not None:
            recoveries[k].append(float(seconds))
    per_kind = {
        row["kind"]: row
        for row in Run.objects.values("kind")
        .annotate(
            total=Count("pk", filter=Q(report_exclusion=ReportExclusionChoices.COUNTED)),
            succeeded=Count(
                "pk",
                filter=Q(state=RunStateChoices.SUCCEEDED, report_exclusion=ReportExclusionChoices.COUNTED),
            ),
            left_out=Count("pk", filter=~Q(report_exclusion=ReportExclusionChoices.COUNTED)),
            last_at=Max("created_at"),
        )
        .order_by()
    }
    kinds = []
    for value, label in RunKindChoices.choices:
        row = per_kind.get(value, {})
        times = recoveries[value]
        kinds.append(
            KindFigures(
                kind=value,
                label=str(label),
                total=row.get("total", 0),
                succeeded=row.get("succeeded", 0),
                last_at=row.get("last_at"),
                median_recovery_s=statistics.median(times) if times else None,
                max_recovery_s=max(times) if times else None,
                left_out=row.get("left_out", 0),
            )
        )
    year_ago = timezone.now() - dt.timedelta(days=365)
    ok_drill = Q(kind=RunKindChoices.DRILL, state=RunStateChoices.SUCCEEDED)
    per_site = {
        row["lost_site"]: row
        for row in counted.values("lost_site")
        .annotate(
            drills_last_year=Count("pk", filter=ok_drill & Q(created_at__gte=year_ago)),
            last_drill_at=Max(Coalesce("finished_at", "created_at"), filter=ok_drill),
            failovers=Count("pk", filter=Q(kind=RunKindChoices.FAILOVER)),
        )
        .order_by()
    }
    sites = [
        SiteFigures(
            site=s,
            drills_last_year=per_site.get(s.pk, {}).get("drills_last_year", 0),
            last_drill_at=per_site.get(s.pk, {}).get("last_drill_at"),
            failovers=per_site.get(s.pk, {}).get("failovers", 0),
        )
        for s in Site.objects.order_by("code")
    ]
    return ReportIndex(page=current, rows=rows, kinds=kinds, sites=sites, kind=kind)
