"""One pass over a run: finish the steps that are done, queue what may start now.

``advance(run_id)`` runs after every action, on every worker; passes over one run are
serialised (an advisory lock on PostgreSQL, the run row elsewhere), and a pass that a
later one has made redundant is skipped. It queues every action that may start now (its
step reached, its dependencies done, its host and its storage array under their
concurrency bounds) with a
conditional UPDATE, finishes steps and the run, and sends the queued actions after
commit (``dispatch``).
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from failover.choices import ActionStateChoices as A
from failover.choices import RunStateChoices as R
from failover.choices import StepStateChoices as S
from failover.models import Action, Run, RunGroupClaim, Step

from . import sql
from .dispatch import kick_readiness, send_actions
from .journal import record_event

log = logging.getLogger(__name__)


ACTIVE_ACTION = (A.QUEUED, A.RUNNING)


# A run's frozen plan holds every action of it (hundreds of kB for 500 VMs): the engine
# never reads it, and parsing it for every action made the cost of an action grow with
# the size of the run.
RUN_BULK = ("plan",)


BLOCKED = (A.FAILED, A.MANUAL, A.ATTENTION)


NOT_OK = (A.PENDING, A.QUEUED, A.RUNNING, *BLOCKED)


def _not_ok(actions):
    """Actions that keep their step open: not finished, or failed and not optional."""
    return actions.filter(state__in=NOT_OK).exclude(state=A.FAILED, optional=True)


def advance(run_id: int) -> None:
    """One pass over the run, in a handful of queries whatever its size: it runs after
    every action, on every worker.

    Passes over one run are serialised (a lock of their own, see ``_lock_for_pass``), so
    a pass always sees every change committed before it started, and no two passes can
    queue past the per-host bound. The caller's change is committed before it asks; if a
    pass that began after that has finished meanwhile, it saw the change, and this pass
    is skipped: a burst of n finished actions costs a few passes, not n."""
    # Inside a caller's transaction its change is not committed yet: no pass can have seen it.
    asked = None if connection.in_atomic_block else _passes.started(run_id)
    queued: list[int] = []
    with transaction.atomic():
        if not _lock_for_pass(run_id):
            return
        if asked is not None and _passes.finished_after(run_id, asked):
            return
        number = _passes.start(run_id)
        if number is not None:
            transaction.on_commit(lambda: _passes.finish(run_id, number))
        run = Run.objects.select_related("disaster").defer(*RUN_BULK).get(pk=run_id)
        if run.state not in (R.RUNNING, R.WAITING):
            return
        queued = _pass(run)
        transaction.on_commit(lambda: send_actions(queued))


def _lock_for_pass(run_id: int) -> bool:
    """Serialise passes over the run and hold off run-level changes (pause, abort) while
    one runs. On PostgreSQL an advisory lock orders the passes and FOR KEY SHARE holds
    the run row: the event writers' UPDATE of the row (every action writes two events) do
    not conflict with it, so a pass neither waits for them nor makes them wait; a pause
    (SELECT ... FOR UPDATE) does wait. Elsewhere (the demo's SQLite) the row lock."""
    if connection.vendor != "postgresql":
        return Run.objects.select_for_update().filter(pk=run_id).exists()
    with connection.cursor() as cursor:
        cursor.execute(sql.RUN_LOCK_TIMEOUT)
        cursor.execute(sql.RUN_ADVISORY_LOCK, [_PASS_LOCK, run_id])
        cursor.execute(sql.run_key_share(), [run_id])
        return cursor.fetchone() is not None


_PASS_LOCK = 0x64725F61  # "dr_a": the first key of the advisory lock; the run id is the second


class _PassCounter:
    """Redis counters of the passes over each run: ``started`` counts passes that began,
    ``finished`` holds the number of the last pass whose transaction committed. Shared
    by every worker; if Redis does not answer, every pass simply runs."""

    TTL_S = 24 * 3600

    def __init__(self) -> None:
        self._client: redis.Redis | None = None

    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
            )
        return self._client

    @staticmethod
    def _keys(run_id: int) -> tuple[str, str]:
        # Run ids are per database: name it, in case two portals share a Redis database.
        base = f"drportal:{connection.settings_dict['NAME']}:advance:{run_id}"
        return f"{base}:started", f"{base}:finished"

    def started(self, run_id: int) -> int | None:
        try:
            return int(self._redis().get(self._keys(run_id)[0]) or 0)
        except redis.RedisError:
            return None

    def finished_after(self, run_id: int, asked: int) -> bool:
        """Has a pass numbered above ``asked`` (so begun after the caller's change)
        committed? Only "yes" skips a pass, so a lost key or an error means "no"; so does
        a finished number above the started one (the started key was lost, flushed or
        evicted, and numbering began again: that finished pass says nothing about now)."""
        try:
            started, finished = (int(v or 0) for v in self._redis().mget(self._keys(run_id)))
        except redis.RedisError:
            return False
        return started >= finished > asked

    def start(self, run_id: int) -> int | None:
        started, _finished = self._keys(run_id)
        try:
            with self._redis().pipeline() as pipe:
                pipe.incr(started)
                pipe.expire(started, self.TTL_S)
                number, _ok = pipe.execute()
            return int(number)
        except redis.RedisError:
            return None

    def finish(self, run_id: int, number: int) -> None:
        _started, finished = self._keys(run_id)
        with contextlib.suppress(redis.RedisError):  # then the next pass just runs
            self._redis().set(finished, number, ex=self.TTL_S)


_passes = _PassCounter()


def _pass(run: Run) -> list[int]:
    """Finish the steps that are done, queue what may start now; returns what it queued."""
    now = timezone.now()
    # One scan of the run's actions answers: which steps are open, how busy each host is,
    # whether anything is in flight or blocked.
    open_steps: defaultdict[int, set[int]] = defaultdict(set)  # step: tiers not done
    busy: defaultdict[str, int] = defaultdict(int)  # per host
    busy_array: defaultdict[str, int] = defaultdict(int)  # per storage array
    in_flight = blocked = False
    for step_id, tier, state, optional, host, array, n in (
        run.actions.filter(state__in=NOT_OK)
        .values_list("step_id", "tier", "state", "optional", "host", "array")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        if state == A.FAILED and optional:
            continue
        open_steps[step_id].add(tier)
        if state in ACTIVE_ACTION:
            busy[host] += n
            busy_array[array] += n
            in_flight = True
        elif state in BLOCKED:
            blocked = True

    # Steps are barriers, as in the runbook: step N starts when every action of the
    # earlier steps is done (or skipped, or an optional check that failed).
    open_step = None
    for step in run.steps.order_by("number"):
        if step.pk not in open_steps:
            if step.state != S.DONE:
                Step.objects.filter(pk=step.pk).update(
                    state=S.DONE, finished_at=now, started_at=step.started_at or now
                )
                record_event(
                    run_id=run.pk,
                    kind="step_done",
                    message=f"Step {step.number} done: {step.name}",
                    data={"step": step.number},
                )
            continue
        open_step = step
        break

    if open_step is None:
        _finish_run(run, now)
        return []

    in_step = run.actions.filter(step=open_step)
    tier = min(open_steps[open_step.pk])  # tiers within a step are barriers too
    limit, array_limit = settings.DRPORTAL_MAX_ACTIONS_PER_HOST, settings.DRPORTAL_MAX_ACTIONS_PER_ARRAY
    candidates = []
    for action_id, host, array in (
        in_step.filter(state=A.PENDING, tier=tier)
        .exclude(depends_on__state__in=NOT_OK)
        .order_by("order", "pk")
        .values_list("pk", "host", "array")
    ):
        if (host and busy[host] >= limit) or (array and busy_array[array] >= array_limit):
            continue
        busy[host] += 1
        busy_array[array] += 1
        candidates.append(action_id)
    queued: list[int] = []
    if candidates:
        # Conditional: a person may have skipped one meanwhile (that is not a pass).
        Action.objects.filter(pk__in=candidates, state=A.PENDING).update(state=A.QUEUED, queued_at=now)
        queued = list(
            Action.objects.filter(pk__in=candidates, state=A.QUEUED, queued_at=now)
            .order_by("order", "pk")
            .values_list("pk", flat=True)
        )
    if queued and open_step.state == S.PENDING:
        Step.objects.filter(pk=open_step.pk, state=S.PENDING).update(state=S.RUNNING, started_at=now)
        record_event(
            run_id=run.pk,
            kind="step_started",
            message=f"Step {open_step.number} started: {open_step.name}",
            data={"step": open_step.number},
        )

    in_flight = in_flight or bool(queued)
    if not in_flight and blocked and run.state == R.RUNNING:
        waiting = list(_not_ok(run.actions.all()).filter(state__in=BLOCKED).order_by("pk")[:5])
        Run.objects.filter(pk=run.pk).update(state=R.WAITING)
        names = ", ".join(f"{a.kind} {a.target} ({a.get_state_display().lower()})" for a in waiting)
        record_event(
            run_id=run.pk,
            kind="run_waiting",
            message=f"Waiting for a person: {names}. Retry, skip with a reason, or mark done by hand.",
        )
    elif run.state == R.WAITING and (queued or not blocked):
        Run.objects.filter(pk=run.pk).update(state=R.RUNNING)
        record_event(run_id=run.pk, kind="run_resumed", message="Going on")
    return queued


def _finish_run(run: Run, now) -> None:
    steps = list(run.steps.order_by("number"))
    started = run.disaster.detected_at if run.disaster else run.created_at
    summary = {
        "recovery_seconds": (now - started).total_seconds(),
        "run_seconds": (now - run.created_at).total_seconds(),
        "steps": [
            {
                "number": s.number,
                "key": s.key,
                "planned_minutes": s.planned_minutes,
                "actual_minutes": ((s.finished_at or now) - (s.started_at or now)).total_seconds() / 60,
            }
            for s in steps
        ],
        "deadline_met": (now <= run.disaster.deadline) if run.disaster else None,
    }
    Run.objects.filter(pk=run.pk).update(state=R.SUCCEEDED, finished_at=now, summary=summary)
    transaction.on_commit(lambda: kick_readiness(f"run {run.pk}"))
    RunGroupClaim.objects.filter(run=run, active=True).update(active=False)
    failed_checks = run.actions.filter(optional=True, state=A.FAILED).count()
    record_event(
        run_id=run.pk,
        kind="run_succeeded",
        message=(
            f"Recovery complete in {summary['run_seconds']:.1f} s of run time"
            + (f"; {failed_checks} functional test(s) not ok, see the test table" if failed_checks else "")
        ),
        data=summary,
    )
