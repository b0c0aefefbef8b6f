"""Reads for a run's board and its partials, and what the event stream replays.

Every selector runs a fixed number of queries whatever the size of the run (tests bound
them with ``django_assert_max_num_queries``). A run's partials read the run row (and so
its event counter) first: what they show is at least as new as that number, and the
stream replays everything after it, so the board converges.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import BooleanField, Case, Count, F, Q, TextChoices, Value, When, Window
from django.db.models.functions import Right, RowNumber
from django.http import Http404
from django.template.loader import get_template
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

from failover.choices import ActionKindChoices as AK
from failover.choices import ActionStateChoices as A
from failover.choices import CheckOutcomeChoices, steps_for
from failover.choices import RunKindChoices as K
from failover.choices import RunStateChoices as R
from failover.choices import StepStateChoices as S
from failover.models import Action, Run, RunEvent, Step
from failover.runs.failback import FAILS_BACK
from failover.runs.sitestate import SiteState, site_state_of

# Actions that only look (checks, inventories): an aborted run leaves nothing of them behind.
LOOKS_ONLY = (
    AK.CHECK_HOST,
    AK.CHECK_GROUP,
    AK.INVENTORY_HOST,
    AK.INTEGRITY_CHECK,
    AK.CHECK_NO_SWAP,
    AK.FUNCTIONAL_CHECK,
    AK.CHECK_CLONE,
    AK.VERIFY_DRILL_GONE,
    AK.WAIT_CONSISTENT,
)

# Which controls make sense in which state. They mirror the ``allowed`` states of the
# services (failover/runs/controls.py), which decide for real; tests/board check they agree.
RETRY_FROM = (A.FAILED, A.ATTENTION, A.MANUAL)


SKIP_FROM = (A.PENDING, A.FAILED, A.ATTENTION, A.MANUAL)


MARK_DONE_FROM = (A.FAILED, A.ATTENTION, A.MANUAL)


PAUSE_FROM = (R.RUNNING, R.WAITING)


RESUME_FROM = (R.PAUSED,)


FINAL_RUN_STATES = (R.SUCCEEDED, R.FAILED, R.ABORTED)


def choice_label(choices: type[TextChoices], value: str) -> str:
    """What ``get_<field>_display()`` says for ``value``, in the active language. The
    model's method hashes every choice's lazy label on each call (a gettext each); the
    board draws a label per action and step on every burst, so here the labels of each
    language are worked out once."""
    return _choice_labels(choices, get_language()).get(value, value)


@functools.cache
def _choice_labels(choices: type[TextChoices], language: str | None) -> dict[str, str]:
    return {value: str(label) for value, label in choices.choices}


def step_name(kind: str, key: str, default: str = "") -> str:
    """The step's name in the reader's language (the Step row keeps the declaring one)."""
    return str(next((name for _n, k, name, _m in steps_for(kind) if k == key), default))


# The role groups' names, for the templates' {% translate %} (the groups are data).
ROLE_NAMES = (
    gettext_lazy("Manager on Duty"),
    gettext_lazy("Helpdesk"),
    gettext_lazy("DR admin"),
)


# What an action counts as when a step is "n of m done" (the engine's ``_ok``).
FINISHED_OK = Q(actions__state__in=A.finished_ok()) | Q(actions__state=A.FAILED, actions__optional=True)


def _minutes(start: dt.datetime | None, end: dt.datetime | None, now: dt.datetime) -> float | None:
    if start is None:
        return None
    return max(((end or now) - start).total_seconds() / 60, 0.0)


# -- a run's board ----------------------------------------------------------------------------


def live_context(run: Run) -> dict:
    """How the page follows the run: pushed over SSE (the default) or polled, and whether
    it still moves at all."""
    return {
        "polling": settings.DRPORTAL_BOARD_POLLING,
        "poll_s": settings.DRPORTAL_BOARD_POLL_S,
        "live": run.state not in FINAL_RUN_STATES,
    }


def board_run(*, run_id: int) -> Run:
    """The run with everything its header names, in one query."""
    run = (
        Run.objects.select_related(
            "disaster__declared_by",
            "disaster__approved_by",
            "disaster__isolation_confirmed_by",
            "lost_site",
            "target_site",
            "created_by",
        )
        .defer("plan")
        .filter(pk=run_id)
        .first()
    )
    if run is None:
        raise Http404(f"no run {run_id}")
    return run


@dataclass
class Header:
    run: Run
    seq: int
    total: int
    finished: int
    failed: int
    now: dt.datetime
    elapsed_seconds: float
    deadline: dt.datetime | None
    deadline_seconds: float | None  # left (negative: overdue)
    deadline_met: bool | None
    decision_seconds: float | None
    can_pause: bool
    can_resume: bool
    can_abort: bool
    followups: list[Run] = field(default_factory=list)  # newest first
    can_fail_back: bool = False
    site_now: SiteState | None = None  # the home site's state, for the runs that move it
    aftermath: Aftermath | None = None  # an aborted run: where it stopped, what it left, what next

    @property
    def recovery_seconds(self) -> float | None:
        """From the event noticed (or the run's start) to the run's end, as the report
        counts it (failover.engine.advance writes it when a run succeeds)."""
        return (self.run.summary or {}).get("recovery_seconds")

    @property
    def percent(self) -> int:
        return round(100 * self.finished / self.total) if self.total else 0


# What a header counts as needing a decision: a failed optional action does not.
FAILED_REQUIRED = Q(actions__state__in=(A.FAILED, A.ATTENTION), actions__optional=False)


def header_counts(steps: list[StepRow]) -> dict[str, int]:
    """The header's counts of the run's actions, from its steps' rows (``board_steps``,
    which counts them per step): every action is in a step of its run."""
    return {
        "total": sum(row.total for row in steps),
        "finished": sum(row.finished for row in steps),
        "failed": sum(row.step.failed_required for row in steps),
    }


def board_header(*, run_id: int, run: Run | None = None, counts: dict[str, int] | None = None) -> dict:
    """The run's header. ``counts`` (``header_counts``) saves the query that counts the
    run's actions where its steps' rows were read anyway (the stream draws both)."""
    run = run or board_run(run_id=run_id)
    if counts is None:
        counts = Run.objects.filter(pk=run.pk).aggregate(
            total=Count("actions"),
            finished=Count("actions", filter=FINISHED_OK),
            failed=Count("actions", filter=FAILED_REQUIRED),
        )
    now = timezone.now()
    disaster = run.disaster
    deadline = disaster.deadline if disaster else None
    end = run.finished_at or now
    header = Header(
        run=run,
        seq=run.event_seq,
        total=counts["total"],
        finished=counts["finished"],
        failed=counts["failed"],
        now=now,
        elapsed_seconds=(end - run.created_at).total_seconds(),
        deadline=deadline,
        deadline_seconds=(deadline - now).total_seconds() if deadline else None,
        deadline_met=run.summary.get("deadline_met") if run.finished_at else None,
        decision_seconds=(disaster.declared_at - disaster.detected_at).total_seconds() if disaster else None,
        can_pause=run.state in PAUSE_FROM,
        can_resume=run.state in RESUME_FROM,
        can_abort=run.state in R.active(),
    )
    followups = list(run.followups.select_related("target_site").order_by("-created_at", "-pk"))
    header.followups = followups
    header.can_fail_back = (
        run.kind in FAILS_BACK
        and run.state == R.SUCCEEDED
        and not any(f.kind == K.FAILBACK and (f.active or f.state == R.SUCCEEDED) for f in followups)
    )
    if run.kind in (*FAILS_BACK, K.FAILBACK):
        header.site_now = site_state_of(run.target_site if run.kind == K.FAILBACK else run.lost_site)
    if run.state in (R.ABORTED, R.FAILED):
        header.aftermath = _aftermath(run)
    return {"run": run, "header": header}


@dataclass
class Aftermath:
    """What an aborted (or failed) run left behind, and what to do about it."""

    stopped_in: list[Step]
    left_behind: list[Action]  # done before the abort, and not undone by it
    still_running: list[Action]  # running at the abort: they finish and record what they did
    not_run: int
    advice: str


def _aftermath(run: Run) -> Aftermath:
    actions = list(
        run.actions.filter(state__in=(A.SUCCEEDED, A.RUNNING, A.PENDING, A.QUEUED))
        .only("pk", "kind", "target", "host", "state", "step_id")
        .order_by("step__number", "order", "pk")
    )
    changed = [a for a in actions if a.kind not in LOOKS_ONLY]
    stopped = list(run.steps.filter(state=S.STOPPED).order_by("number"))
    home = run.target_site.code if run.kind == K.FAILBACK else run.lost_site.code
    away = run.lost_site.code if run.kind == K.FAILBACK else run.target_site.code
    if run.kind == K.FAILBACK:
        advice = _(
            "Not everything is home: what is listed as done stays as it is (nothing is undone). "
            "Fix the cause, then fail back again from failover run %(id)s: the new failback is "
            "planned from the failover's records and looks at both sites first, so what is "
            "already done is seen as done."
        ) % {"id": run.parent_id}
    elif run.kind == K.FAILOVER:
        advice = _(
            "%(home)s is still lost and only part of its services run at %(away)s. Declare the "
            "disaster again: the new plan starts from what runs at %(away)s now."
        ) % {"home": home, "away": away}
    elif run.kind == K.DRILL:
        advice = _(
            "The drill clones it started are still up: its cleanup (from its undo records) "
            "removes them and the snapshots."
        )
    else:
        advice = _("What is listed as done stays as it is: nothing is undone automatically.")
    return Aftermath(
        stopped_in=stopped,
        left_behind=[a for a in changed if a.state == A.SUCCEEDED],
        still_running=[a for a in changed if a.state == A.RUNNING],
        not_run=sum(1 for a in actions if a.state in (A.PENDING, A.QUEUED)),
        advice=advice,
    )


@dataclass
class StepRow:
    step: Step
    name: str
    total: int
    finished: int
    failed: int
    planned_minutes: float
    actual_minutes: float | None
    state_label: str = ""
    # the timeline chart, in SVG units
    y: float = 0.0
    planned_x: float = 0.0
    planned_w: float = 0.0
    actual_x: float | None = None
    actual_w: float = 0.0


@dataclass
class Timeline:
    """Planned and actual per step, each on its own scale: a plan of hours and a lab run
    of seconds on one axis made the actual bars invisible (issue 17 item 12). Every bar
    carries its figure; the two axes below the chart say what each scale is."""

    rows: list[StepRow]
    scale_minutes: float  # the planned scale (the whole plan)
    planned_total: float
    actual_total: float | None
    actual_scale_minutes: float = 1.0
    ticks: list[tuple[float, str]] = field(default_factory=list)  # (x, label) of the planned axis
    actual_ticks: list[tuple[float, str]] = field(default_factory=list)  # of the actual axis
    width: int = 1000
    label_w: int = 170  # the step names left of the chart
    row_h: int = 26
    span: float = 0.0  # the width of the tracks

    @property
    def height(self) -> int:
        return 46 + self.row_h * len(self.rows)

    @property
    def axis_y(self) -> int:
        return 14 + self.row_h * len(self.rows)

    @property
    def planned_axis_y(self) -> int:
        return self.height - 20

    @property
    def actual_axis_y(self) -> int:
        return self.height - 4


def _ticks(scale_minutes: float, x0: float, span: float) -> list[tuple[float, str]]:
    """Up to about ten round ticks over ``scale_minutes``: seconds below two minutes."""
    seconds = scale_minutes * 60 <= 120
    top = scale_minutes * 60 if seconds else scale_minutes
    step = next((n for n in (1, 2, 5, 10, 15, 30, 60, 120, 240, 480) if top / n <= 10), 960)
    unit = _("%(n)s s") if seconds else _("%(n)s min")
    return [(x0 + span * n / top, unit % {"n": n}) for n in range(0, int(top) + 1, step)]


def _timeline(run: Run, rows: list[StepRow], now: dt.datetime) -> Timeline:
    """Planned steps laid end to end on the plan's scale; each step's actual span since
    the run started on the run's own scale (so a 6 s step of a 20 s run is a third of
    the track, whatever the plan says), with the figures written on the bars."""
    chart = Timeline(rows=rows, scale_minutes=1.0, planned_total=0.0, actual_total=None)
    cursor = 0.0
    actual_end = 0.0
    started = False
    for row in rows:
        row.planned_x, row.planned_w = cursor, row.planned_minutes
        cursor += row.planned_minutes
        if row.step.started_at is not None:
            started = True
            row.actual_x = _minutes(run.created_at, row.step.started_at, now) or 0.0
            row.actual_w = row.actual_minutes or 0.0
            actual_end = max(actual_end, row.actual_x + row.actual_w)
    planned_scale = max(cursor, 1.0)
    actual_scale = max(actual_end, 1 / 60)
    x0, span = chart.label_w, chart.width - chart.label_w - 60  # room for a figure after a bar
    for i, row in enumerate(rows):
        row.y = 6 + i * chart.row_h
        row.planned_x = x0 + span * row.planned_x / planned_scale
        row.planned_w = span * row.planned_w / planned_scale
        if row.actual_x is not None:
            row.actual_x = x0 + span * row.actual_x / actual_scale
            row.actual_w = max(span * row.actual_w / actual_scale, 2.0)  # a blink still shows
    chart.span = span
    chart.ticks = _ticks(planned_scale, x0, span)
    chart.actual_ticks = _ticks(actual_scale, x0, span) if started else []
    chart.scale_minutes, chart.planned_total = planned_scale, cursor
    chart.actual_scale_minutes = actual_scale
    chart.actual_total = actual_end if started else None
    return chart


def board_steps(*, run_id: int, run: Run | None = None) -> dict:
    run = run or board_run(run_id=run_id)
    now = timezone.now()
    steps = list(
        run.steps.annotate(
            total=Count("actions"),
            finished=Count("actions", filter=FINISHED_OK),
            failed=Count("actions", filter=Q(actions__state__in=(A.FAILED, A.ATTENTION))),
            failed_required=Count("actions", filter=FAILED_REQUIRED),
        ).order_by("number")
    )
    rows = [
        StepRow(
            step=s,
            name=step_name(run.kind, s.key, s.name),
            total=s.total,
            finished=s.finished,
            failed=s.failed,
            planned_minutes=s.planned_minutes,
            actual_minutes=_minutes(s.started_at, s.finished_at, now),
            state_label=_state_label(run, s.state, choice_label(S, s.state)),
        )
        for s in steps
    ]
    return {"run": run, "steps": rows, "timeline": _timeline(run, rows, now)}


def _state_label(run: Run, state: str, label: str) -> str:
    """A step or action that an ended run never reached says so: it will not start."""
    if run.state in FINAL_RUN_STATES and state in (A.PENDING, A.QUEUED):
        return str(_("Not run: the run was %(state)s") % {"state": run.get_state_display().lower()})
    return str(label)


OUTPUT_TAIL = 1500  # characters of an action's last output the board shows

# A step lists its actions in two parts, each a page at a time: the ones that need a
# decision (failed, attention, waiting for a person) first, then the others. The page is
# bounded, so a run of 20,000 actions draws as much as a run of 400 (and the stream, which
# pushes this HTML to every watcher, pushes as much).
ACTIONS_PAGE = 25
DECIDE = "decide"
REST = "rest"
LISTS = (DECIDE, REST)


@dataclass
class ActionList:
    """One page of a step's actions that need a decision (``decide``) or of the others."""

    step_number: int
    kind: str  # DECIDE or REST
    actions: list[Action]
    page: int
    total: int
    page_size: int = ACTIONS_PAGE

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    @property
    def first(self) -> int:
        return (self.page - 1) * self.page_size + 1 if self.total else 0

    @property
    def last(self) -> int:
        return min(self.page * self.page_size, self.total)

    @property
    def previous_page(self) -> int | None:
        return self.page - 1 if self.page > 1 else None

    @property
    def next_page(self) -> int | None:
        return self.page + 1 if self.page < self.pages else None

    @property
    def dom_id(self) -> str:
        return f"actions-step-{self.step_number}-{self.kind}"


def _decide_q() -> Q:
    return Q(state__in=RETRY_FROM)


def _decorate(run: Run, actions: list[Action]) -> None:
    active = run.state in R.active()
    for a in actions:
        a.can_retry = active and a.state in RETRY_FROM
        a.can_skip = active and a.state in SKIP_FROM
        a.can_mark_done = active and a.state in MARK_DONE_FROM
        a.truncated = len(a.output_tail) >= OUTPUT_TAIL
        a.state_label = _state_label(run, a.state, choice_label(A, a.state))
        a.kind_label = choice_label(AK, a.kind)


def _action_rows(pks) -> list[Action]:
    """The actions ``pks`` names (a list, or a query of them: then one statement)."""
    return list(
        Action.objects.filter(pk__in=pks)
        .defer("output", "result", "params", "undo")
        .annotate(output_tail=Right("output", OUTPUT_TAIL))
        .order_by("order", "pk")
    )


def board_actions(*, run_id: int, run: Run | None = None) -> dict:
    """Per step: how many actions are in each state, the first page of the ones that need
    a decision and the first page of the others, each action with the controls its state
    allows (the template draws them only for users who may operate). Three queries however
    many actions the run has: the run, the counts per step and state (with the steps),
    and the actions the pages show (a window over the run's actions, in the same
    statement)."""
    run = run or board_run(run_id=run_id)
    steps: dict[int, Step] = {}
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for step_id, number, key, step_state, state, n in (
        Action.objects.filter(run_id=run.pk)
        .values_list("step_id", "step__number", "step__key", "step__state", "state")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        steps.setdefault(step_id, Step(pk=step_id, run_id=run.pk, number=number, key=key, state=step_state))
        counts[step_id][state] = n
    decide = Case(When(_decide_q(), then=Value(True)), default=Value(False), output_field=BooleanField())
    shown = (
        Action.objects.filter(run_id=run.pk)
        .annotate(
            decide=decide,
            row=Window(RowNumber(), partition_by=[F("step_id"), decide], order_by=[F("order"), F("pk")]),
        )
        .filter(row__lte=ACTIONS_PAGE)
        .values("pk")
    )
    actions = _action_rows(shown)
    _decorate(run, actions)
    lists: dict[tuple[int, str], list[Action]] = defaultdict(list)
    for a in actions:
        lists[(a.step_id, DECIDE if a.state in RETRY_FROM else REST)].append(a)
    groups = []
    for step in sorted(steps.values(), key=lambda step: step.number):
        by_state = counts[step.pk]
        to_decide = sum(n for state, n in by_state.items() if state in RETRY_FROM)
        pages = {
            DECIDE: ActionList(step.number, DECIDE, lists[(step.pk, DECIDE)], 1, to_decide),
            REST: ActionList(
                step.number, REST, lists[(step.pk, REST)], 1, sum(by_state.values()) - to_decide
            ),
        }
        groups.append(
            {
                "step": step,
                "name": step_name(run.kind, step.key),
                "state_label": _state_label(run, step.state, choice_label(S, step.state)),
                "total": sum(by_state.values()),
                "counts": [
                    (state, label, by_state[state]) for state, label in A.choices if by_state.get(state)
                ],
                "decide": pages[DECIDE],
                "rest": pages[REST],
                "actions": pages[DECIDE].actions + pages[REST].actions,
                # attention first: at 3 a.m. the failing ones should not hide among the done
                "open": any(state not in (A.SUCCEEDED, A.SKIPPED) for state in by_state),
            }
        )
    return {"run": run, "action_groups": groups, "page_size": ACTIONS_PAGE}


def board_action_page(*, run_id: int, step: int, kind: str, page: int) -> dict:
    """One page of one step's list (``decide`` or ``rest``), for the board's page links.
    A page past the end shows the last one. Four queries."""
    if kind not in LISTS:
        raise ValueError(f"list: {kind!r} is not one of {', '.join(LISTS)}")
    run = board_run(run_id=run_id)
    wanted = Action.objects.filter(run_id=run.pk, step__number=step)
    wanted = wanted.filter(_decide_q()) if kind == DECIDE else wanted.exclude(_decide_q())
    total = wanted.count()
    pages = max(1, -(-total // ACTIONS_PAGE))
    page = min(max(page, 1), pages)
    start = (page - 1) * ACTIONS_PAGE
    pks = list(wanted.order_by("order", "pk").values_list("pk", flat=True)[start : start + ACTIONS_PAGE])
    actions = _action_rows(pks)
    _decorate(run, actions)
    return {"run": run, "list": ActionList(step, kind, actions, page, total)}


def board_log(*, run_id: int, limit: int | None = None, run: Run | None = None) -> dict:
    run = run or board_run(run_id=run_id)
    limit = limit or settings.DRPORTAL_BOARD_LOG_LINES
    events = list(
        RunEvent.objects.filter(run_id=run.pk)
        .select_related("user")
        .only("seq", "created_at", "kind", "message", "user__username", "action", "run")
        .order_by("-seq")[:limit]
    )
    return {
        "run": run,
        "events": events,
        "lines": [LogLine(e) for e in events],
        "limit": limit,  # the browser keeps as many when the stream prepends new lines
        "more": max(run.event_seq - len(events), 0),
    }


class LogLine:
    """One event's line of the log, drawn by ``failover/_log_line.html`` once for all
    the renderings that show it: the log shows the newest 200 events, and every burst
    of the stream draws it again with a few new ones. The drawing is kept under what it
    shows (the event's fields, the time zone it is told in), so nothing stale can come
    back; a bounded number of lines is kept."""

    __slots__ = ("event",)
    TEMPLATE = "failover/_log_line.html"
    KEPT = 20_000

    def __init__(self, event: RunEvent) -> None:
        self.event = event

    def __str__(self) -> SafeString:  # a template's {{ line }} takes str() of it first
        return self.__html__()

    def __html__(self) -> SafeString:
        e = self.event
        user = e.user.get_username() if e.user else None
        key = (timezone.get_current_timezone_name(), e.run_id, e.seq, e.kind, e.created_at, e.message, user)
        html = _LOG_LINES.get(key)
        if html is None:
            if len(_LOG_LINES) >= self.KEPT:
                _LOG_LINES.clear()  # the next bursts draw their 200 lines again, once
            drawn = (
                get_template(self.TEMPLATE).render({"e": e}).strip()
            )  # autoescaped; strip() drops the mark
            html = _LOG_LINES[key] = mark_safe(drawn)  # nosec B308 B703  # the template's own escaped output
        return html


_LOG_LINES: dict[tuple, SafeString] = {}


@dataclass
class CheckRow:
    action: Action
    vm: str
    check: str
    outcome: str  # ok, down, note, not-run (its run ended first), or "" while not run yet
    detail: str
    run_state: str = ""  # the run's state, for a test the run's end left not run

    @property
    def outcome_label(self) -> str:
        if self.outcome == NOT_RUN:
            return str(_("not run (run %(state)s)") % {"state": str(R(self.run_state).label).lower()})
        return (
            str(CheckOutcomeChoices(self.outcome).label) if self.outcome in CheckOutcomeChoices.values else ""
        )


NOT_RUN = "not-run"


def board_checks(*, run_id: int, run: Run | None = None) -> dict:
    """The functional test table of step 6: per VM and check, ok / down / note."""
    run = run or board_run(run_id=run_id)
    rows = []
    for a in (
        Action.objects.filter(run_id=run.pk, kind="functional_check")
        .only(
            "pk", "target", "state", "outcome", "error", "reason", "params", "attempt", "finished_at", "run"
        )
        .annotate(output_tail=Right("output", 400))
        .order_by("order", "pk")
    ):
        vm = a.params.get("vm", a.target)
        a.state_label = choice_label(A, a.state)
        # A passed check says why in its last output line ("http check 'x': ok: 200 in 0.1 s").
        last_line = a.output_tail.strip().rsplit("\n", 1)[-1].strip() if a.output_tail else ""
        detail = a.error or a.reason or last_line
        outcome = a.outcome
        if not outcome and run.state in FINAL_RUN_STATES and a.state in (A.PENDING, A.QUEUED):
            outcome = NOT_RUN  # it never will: the run ended before it
        rows.append(
            CheckRow(
                action=a,
                vm=vm,
                check=a.params.get("check", a.target),
                outcome=outcome,
                detail=detail,
                run_state=run.state,
            )
        )
    summary = {k: sum(1 for r in rows if r.outcome == k) for k in ("ok", "down", "note")}
    summary["not_run"] = sum(1 for r in rows if r.outcome == NOT_RUN)
    return {"run": run, "checks": rows, "check_summary": summary}


def board_page(*, run_id: int) -> dict:
    """Everything the board page draws, from the partials' selectors."""
    context = board_header(run_id=run_id)
    run = context["run"]  # read once for every part
    for part in (board_steps, board_actions, board_log, board_checks):
        context.update({k: v for k, v in part(run_id=run_id, run=run).items() if k != "run"})
    return context


# -- the stream's reads -----------------------------------------------------------------------


def sse_event_name(kind: str) -> str:
    """The SSE event name for a RunEvent kind; the board's partials listen by name."""
    if kind.startswith("action_"):
        return "action"
    if kind.startswith("step_"):
        return "step"
    return "run"


def run_snapshot(*, run_id: int) -> dict | None:
    """The run as it is now, for a client that has no event number to replay from. The
    counter is read first, so the states are at least as new as ``seq``."""
    run = Run.objects.filter(pk=run_id).values("event_seq", "state").first()
    if run is None:
        return None
    steps = [
        {"number": s.number, "key": s.key, "state": s.state, "finished": s.finished, "total": s.total}
        for s in Step.objects.filter(run_id=run_id)
        .annotate(total=Count("actions"), finished=Count("actions", filter=FINISHED_OK))
        .order_by("number")
    ]
    actions = dict(Action.objects.filter(run_id=run_id).order_by("pk").values_list("pk", "state"))
    return {
        "seq": run["event_seq"],
        "state": run["state"],
        "steps": steps,
        "actions": {str(k): v for k, v in actions.items()},
    }
