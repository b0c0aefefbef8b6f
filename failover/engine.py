"""The runbook engine: a state machine in the database, driven by short Celery tasks.

- ``advance(run_id)`` makes one pass over the run (passes are serialised, and a pass
  that a later one has made redundant is skipped): it queues every action that may
  start now (its step reached, its dependencies done, its host under the concurrency
  bound) with a conditional UPDATE, and finishes steps and the run. Tasks are sent
  after commit.
- ``execute(action_id)`` claims one queued action (conditional UPDATE; a duplicate
  message finds nothing to claim), acts over SSH *outside* any transaction while a
  heartbeat renews its lease, and records the result guarded by the attempt number.
- ``reap()`` (Celery beat) re-sends queued actions whose message was lost, and for
  running actions whose lease expired (the worker died) observes the estate and either
  finishes them, puts them back (the effect provably did not happen) or marks them
  "needs attention" with the reason. It never re-runs an action blindly.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import threading
import time
from collections import defaultdict
from datetime import timedelta

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from hosts.drivers.base import DriverError
from hosts.drivers.ssh import SSHConnection, SSHPool, SSHTarget
from hosts.drivers.storage import ManualStepRequired

from . import rows
from .actions import HANDLERS, CheckDown, Context, lend_back_connection
from .choices import ActionStateChoices as A
from .choices import RunStateChoices as R
from .choices import StepStateChoices as S
from .events import record_event
from .models import Action, Run, RunGroupClaim, Step

log = logging.getLogger(__name__)


def worker_id() -> str:
    """Who claims an action: machine and process. Asked at claim time, never at import: a
    prefork pool imports this module in its parent and forks, and every child must still
    claim under its own pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


ACTIVE_ACTION = (A.QUEUED, A.RUNNING)
# A run's frozen plan holds every action of it (hundreds of kB for 500 VMs): the engine
# never reads it, and parsing it for every action made the cost of an action grow with
# the size of the run.
_RUN_BULK = ("plan",)
BLOCKED = (A.FAILED, A.MANUAL, A.ATTENTION)
NOT_OK = (A.PENDING, A.QUEUED, A.RUNNING, *BLOCKED)


def _send(action_ids: list[int]) -> None:
    """Ring the workers. A failure to send loses nothing: the action is QUEUED in the
    database and the reaper sends it again after DRPORTAL_REQUEUE_AFTER_S."""
    from .tasks import execute_action

    for action_id in action_ids:
        try:
            execute_action.delay(action_id)
        except Exception as exc:  # the broker is down; the reaper re-sends
            log.warning("action %s queued but not sent (%s); the reaper will send it", action_id, exc)


# -- advance ------------------------------------------------------------------------------


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
        run = Run.objects.select_related("disaster").defer(*_RUN_BULK).get(pk=run_id)
        if run.state not in (R.RUNNING, R.WAITING):
            return
        queued = _pass(run)
        transaction.on_commit(lambda: _send(queued))


def _lock_for_pass(run_id: int) -> bool:
    """Serialise passes over the run and hold off run-level changes (pause, abort) while
    one runs. On PostgreSQL an advisory lock orders the passes and FOR KEY SHARE holds
    the run row: the event writers' UPDATE of the row (every action writes two events) do
    not conflict with it, so a pass neither waits for them nor makes them wait; a pause
    (SELECT ... FOR UPDATE) does wait. Elsewhere (the demo's SQLite) the row lock."""
    if connection.vendor != "postgresql":
        return Run.objects.select_for_update().filter(pk=run_id).exists()
    with connection.cursor() as cursor:
        # A pass does no I/O but the database's, so waiting this long means something is
        # stuck: give up (the task fails, the reaper advances the run later).
        cursor.execute("SET LOCAL lock_timeout = '30s'")
        cursor.execute("SELECT pg_advisory_xact_lock(%s::int4, %s::int4)", [_PASS_LOCK, run_id])
        cursor.execute(_KEY_SHARE, [run_id])
        return cursor.fetchone() is not None


_PASS_LOCK = 0x64725F61  # "dr_a": the first key of the advisory lock; the run id is the second
# The table name is the model's own (a constant), the id a %s parameter.
_KEY_SHARE = f"SELECT 1 FROM {Run._meta.db_table} WHERE id = %s FOR KEY SHARE"  # nosec B608


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
        committed? Only "yes" skips a pass, so a lost key or an error means "no"."""
        try:
            return int(self._redis().get(self._keys(run_id)[1]) or 0) > asked
        except redis.RedisError:
            return False

    def start(self, run_id: int) -> int | None:
        started, _finished = self._keys(run_id)
        try:
            with self._redis().pipeline() as pipe:
                number, _ok = pipe.incr(started).expire(started, self.TTL_S).execute()
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
    busy: defaultdict[str, int] = defaultdict(int)
    in_flight = blocked = False
    for step_id, tier, state, optional, host, n in (
        run.actions.filter(state__in=NOT_OK)
        .values_list("step_id", "tier", "state", "optional", "host")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        if state == A.FAILED and optional:
            continue
        open_steps[step_id].add(tier)
        if state in ACTIVE_ACTION:
            busy[host] += n
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
    limit = settings.DRPORTAL_MAX_ACTIONS_PER_HOST
    candidates = []
    for action_id, host in (
        in_step.filter(state=A.PENDING, tier=tier)
        .exclude(depends_on__state__in=NOT_OK)
        .order_by("order", "pk")
        .values_list("pk", "host")
    ):
        if host and busy[host] >= limit:
            continue
        busy[host] += 1
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


# -- execute ------------------------------------------------------------------------------


class _Heartbeat:
    """Renews the lease of one attempt while it runs; stops when the attempt is over."""

    def __init__(self, action_id: int, attempt: int) -> None:
        self.action_id, self.attempt = action_id, attempt
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{action_id}", daemon=True)

    def _beat(self) -> None:
        from django.db import connection

        lease = settings.DRPORTAL_ACTION_LEASE_S
        # A handler stuck past every timeout must not hold its action forever: after
        # DRPORTAL_ACTION_MAX_S the lease runs out and the reaper observes and decides.
        give_up = time.monotonic() + settings.DRPORTAL_ACTION_MAX_S
        try:
            while not self._stop.wait(lease / 3) and time.monotonic() < give_up:
                Action.objects.filter(pk=self.action_id, attempt=self.attempt, state=A.RUNNING).update(
                    lease_expires_at=timezone.now() + timedelta(seconds=lease)
                )
                lend_back_connection()  # not held for the next lease/3 seconds
        finally:
            connection.close()

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class IdleConnections:
    """Idle SSH connections of this worker process, each lent to one action at a time.

    A handshake is the dearest part of a short action, so connections outlive their
    action; but a connection is never shared by two actions at once: an OpenSSH server
    allows only MaxSessions (10) channels per connection, and one stuck command must not
    take its neighbours down with it. The host key is checked on every (re)connection.

    Every connection a thread gave back is kept: a thread holds at most one per host, so
    a host never has more idle connections than the worker has threads. A cap below that
    (there was one, 32) made a worker with 200 threads close and re-open connections to
    the array all through a step of 500 integrity checks, a handshake each time."""

    def __init__(self) -> None:
        self._idle: dict[SSHTarget, list[SSHConnection]] = defaultdict(list)
        self._lock = threading.Lock()

    def lease(self) -> LeasedConnections:
        return LeasedConnections(self)

    def checkout(self, target: SSHTarget) -> SSHConnection:
        with self._lock:
            idle = self._idle.get(target)
            conn = idle.pop() if idle else None
        if conn is None:
            conn = SSHConnection(target)
        conn.connect()  # a no-op while the transport lives; reconnects (and re-checks the key) if not
        return conn

    def checkin(self, conn: SSHConnection) -> None:
        with self._lock:
            idle = self._idle[conn.target]
            if conn.is_connected:
                idle.append(conn)
                return
        conn.close()


class LeasedConnections:
    """What one action uses: like SSHPool (one connection per host), returned when done."""

    def __init__(self, cache: IdleConnections) -> None:
        self._cache = cache
        self._conns: dict[str, SSHConnection] = {}

    def get(self, target: SSHTarget) -> SSHConnection:
        conn = self._conns.get(target.name)
        if conn is not None and conn.target != target:
            conn.close()
            conn = None
        if conn is None:
            conn = self._conns[target.name] = self._cache.checkout(target)
        return conn

    def close(self) -> None:
        for conn in self._conns.values():
            self._cache.checkin(conn)
        self._conns.clear()

    def __enter__(self) -> LeasedConnections:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


CONNECTIONS = IdleConnections()


def execute(action_id: int) -> None:
    """Run one queued action, then the next ones its host slot is handed on to (see
    ``_hand_on``); a pass over the run follows when the chain ends, or sooner when an
    action others wait for has finished."""
    next_id: int | None = action_id
    while next_id is not None:
        next_id = _execute_one(next_id)
        if next_id is not None and _worker_stopping():
            # A warm shutdown waits for this task: hand the rest to the other workers
            # (or to this one after its restart) instead of working through them first.
            _send([next_id])
            return


def _worker_stopping() -> bool:
    from celery.worker import state

    return bool(state.should_stop or state.should_terminate)


def _execute_one(action_id: int) -> int | None:
    now = timezone.now()
    lease = timedelta(seconds=settings.DRPORTAL_ACTION_LEASE_S)
    with transaction.atomic():
        action = _claim(action_id, now, now + lease)
        if action is None:
            return None  # a duplicate message, or the run was paused/aborted meanwhile
        attempt = action.attempt
        record_event(
            run_id=action.run_id,
            kind="action_started",
            message=f"{action.target}: {action.kind.replace('_', ' ')} (attempt {attempt})",
            action_id=action.pk,
            # claimed_by keeps only the latest claim; the events keep who ran each attempt.
            data={"attempt": attempt, "worker": action.claimed_by},
        )
    handler = HANDLERS[action.kind]
    state, outcome, detail, result, undo = A.FAILED, "", "", {}, {}
    with CONNECTIONS.lease() as pool, _Heartbeat(action.pk, attempt):
        ctx = Context(action, pool)
        try:
            seen = handler.observe(ctx)
            if seen.done:
                state, detail, result = A.SUCCEEDED, f"already done: {seen.detail}", seen.facts
            else:
                done = handler.act(ctx)
                state, detail, result, undo, outcome = (
                    A.SUCCEEDED,
                    done.detail,
                    done.result,
                    done.undo,
                    done.outcome,
                )
        except ManualStepRequired as exc:
            state, detail = A.MANUAL, str(exc)
        except CheckDown as exc:
            state, outcome, detail = A.FAILED, exc.outcome, str(exc)
        except DriverError as exc:
            state, detail = A.FAILED, str(exc)
        except Exception as exc:  # a bug must not leave the action running forever
            log.exception("action %s crashed", action_id)
            state, detail = A.FAILED, f"internal error: {type(exc).__name__}: {exc}"
    handed: list[int | None] = [None]
    _record(action, attempt, state, detail, result, undo, outcome, "\n".join(ctx.lines), hand_on=handed)
    next_id = handed[0]
    if next_id is None or action.awaited:  # a pass queues what waited for this one
        advance(action.run_id)
    return next_id


def _claim(action_id: int, now, lease_expires_at) -> Action | None:
    """Claim a queued action of a running (or waiting) run and load it, in one statement;
    None if there is nothing to claim. ``action.awaited``: do other actions depend on it?"""
    ops = connection.ops
    with connection.cursor() as cursor:
        cursor.execute(
            _claim_sql(),
            [
                A.RUNNING,
                ops.adapt_datetimefield_value(lease_expires_at),
                worker_id(),
                ops.adapt_datetimefield_value(now),
                action_id,
                A.QUEUED,
                R.RUNNING,
                R.WAITING,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    action = rows.from_row(Action, row[:-1], connection)
    action.awaited = bool(row[-1])
    return action


# Hot path, plain SQL (see rows.py); table names are the models' own, values parameters.
_ACTION, _RUN, _DEPENDS = Action._meta.db_table, Run._meta.db_table, Action.depends_on.through._meta.db_table
_CLAIM = (
    f"UPDATE {_ACTION} SET state = %s, attempt = attempt + 1, lease_expires_at = %s,"  # nosec B608
    " claimed_by = %s, started_at = %s, error = ''"
    f" WHERE id = %s AND state = %s AND run_id IN (SELECT id FROM {_RUN} WHERE state IN (%s, %s))"
    " RETURNING {columns},"
    f" EXISTS (SELECT 1 FROM {_DEPENDS} d WHERE d.to_action_id = {_ACTION}.id)"
)


@functools.cache
def _claim_sql() -> str:
    return _CLAIM.format(columns=rows.column_list(Action))


_FINISH = (
    f"UPDATE {_ACTION} SET state = %s, finished_at = %s, lease_expires_at = NULL, result = %s,"  # nosec B608
    " undo = %s, outcome = %s, output = %s, error = %s WHERE id = %s AND attempt = %s AND state = %s"
)


def _record(
    action: Action,
    attempt: int,
    state: str,
    detail: str,
    result: dict,
    undo: dict,
    outcome: str,
    output: str,
    *,
    by: str = "",
    hand_on: list[int | None] | None = None,
) -> bool:
    """Store the result of ``attempt``; refused (False) if the attempt is no longer the
    current one (the reaper or a person has decided meanwhile). With ``hand_on``, the
    action's host slot goes to the next action in the same transaction (its id is put
    in ``hand_on[0]``)."""
    json_field = Action._meta.get_field("result")  # result and undo: both JSONFields
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _FINISH,
            [
                state,
                connection.ops.adapt_datetimefield_value(timezone.now()),
                json_field.get_db_prep_save(result, connection),
                json_field.get_db_prep_save(undo, connection),
                outcome or ("ok" if state == A.SUCCEEDED and action.kind == "functional_check" else outcome),
                output[-20000:],
                "" if state == A.SUCCEEDED else detail,
                action.pk,
                attempt,
                A.RUNNING,
            ],
        )
        if not cursor.rowcount:
            return False
        if hand_on is not None:
            # Before the event: the event's counter locks the run row until commit.
            hand_on[0] = _hand_on(action)
        verb = {A.SUCCEEDED: "done", A.FAILED: "FAILED", A.MANUAL: "waits for a person"}[state]
        record_event(
            run_id=action.run_id,
            kind=f"action_{state}",
            message=f"{action.target}: {verb}{by}: {detail}",
            action_id=action.pk,
            data={"state": state, "attempt": attempt, "outcome": outcome},
        )
    return True


def _hand_on(action: Action) -> int | None:
    """Give the finished action's host slot to the next action of the same host, step and
    tier whose dependencies are done, and return its id for this worker to run at once.

    This is the pass's own choice for that slot (same filters, same order), made without
    a pass and without a round trip through the broker: in a step of hundreds of short
    actions those two cost more than the actions. It runs in the transaction that
    records the finished action, so every pass sees either the old action running or the
    new one queued, never a free slot in between: the per-host bound holds. The run row
    is held FOR KEY SHARE like a pass holds it, so a pause or an abort waits for this
    transaction and then finds the next action QUEUED, where the claim leaves it (a
    resume re-sends queued actions). If this worker dies before claiming it, the action
    is QUEUED with no message: the reaper re-sends it after DRPORTAL_REQUEUE_AFTER_S."""
    if not action.host:
        return None
    postgres = connection.vendor == "postgresql"
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(_RUN_STATE + (" FOR KEY SHARE" if postgres else ""), [action.run_id])
        row = cursor.fetchone()
        if row is None or row[0] not in (R.RUNNING, R.WAITING):
            return None
        # Conditional on PENDING: a pass (or a person skipping it) may have taken it.
        cursor.execute(
            _HAND_ON.format(lock=" FOR UPDATE SKIP LOCKED" if postgres else ""),
            [now, action.run_id, action.step_id, action.tier, action.host, *NOT_OK],
        )
        row = cursor.fetchone()
    return row[0] if row else None


# Hot path (once per action), so plain SQL: the ORM spent longer building these statements
# than the database took to run them. Table names are the models' own (constants); every
# value is a parameter. The candidate is the pass's choice: pending, dependencies done, in
# the pass's order.
_RUN_STATE = f"SELECT state FROM {Run._meta.db_table} WHERE id = %s"  # nosec B608
_HAND_ON = (
    f"UPDATE {Action._meta.db_table} SET state = '{A.QUEUED}', queued_at = %s "  # nosec B608
    f"WHERE state = '{A.PENDING}' AND id = ("
    f"SELECT a.id FROM {Action._meta.db_table} a"
    " WHERE a.run_id = %s AND a.step_id = %s AND a.tier = %s AND a.host = %s"
    f" AND a.state = '{A.PENDING}' AND NOT EXISTS ("
    f"SELECT 1 FROM {Action.depends_on.through._meta.db_table} d"
    f" JOIN {Action._meta.db_table} b ON b.id = d.to_action_id"
    f" WHERE d.from_action_id = a.id AND b.state IN ({', '.join(['%s'] * len(NOT_OK))}))"
    ' ORDER BY a."order", a.id LIMIT 1{lock}) RETURNING id'
)


# -- the reaper ---------------------------------------------------------------------------


def reap() -> dict:
    """One pass of the reaper. Every worker may embed a beat (``worker -B``), so several
    reapers can run at once, on several machines: each orphan is taken by exactly one of
    them with a conditional UPDATE, and a reaper that dies in turn loses nothing (what it
    took falls due again)."""
    now = timezone.now()
    report = {"resent": 0, "finished": 0, "requeued": 0, "attention": 0, "advanced": 0}
    stale = now - timedelta(seconds=settings.DRPORTAL_REQUEUE_AFTER_S)
    with transaction.atomic():
        # Rows another reaper holds are its to re-send; once it commits they are fresh.
        lost = list(
            Action.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(state=A.QUEUED, queued_at__lt=stale, run__state__in=(R.RUNNING, R.WAITING))
            .values_list("pk", flat=True)
        )
        if lost:
            Action.objects.filter(pk__in=lost, state=A.QUEUED).update(queued_at=now)
            transaction.on_commit(lambda: _send(lost))
            report["resent"] = len(lost)
    lease = timedelta(seconds=settings.DRPORTAL_ACTION_LEASE_S)
    for action in (
        Action.objects.filter(state=A.RUNNING, lease_expires_at__lt=now)
        .select_related("run__disaster", "run__lost_site")
        .defer(*(f"run__{name}" for name in _RUN_BULK))
    ):
        # Take the orphan: the expired lease is the token, so of several reapers (or a
        # late heartbeat of a worker that is alive after all) exactly one UPDATE wins.
        if not Action.objects.filter(
            pk=action.pk, attempt=action.attempt, state=A.RUNNING, lease_expires_at=action.lease_expires_at
        ).update(lease_expires_at=now + lease):
            continue
        with _Heartbeat(action.pk, action.attempt):  # observing may take a while
            verdict = _reap_one(action)
        report[verdict] += 1
        advance(action.run_id)
    for run_id in Run.objects.filter(state=R.RUNNING).values_list("pk", flat=True):
        if not Action.objects.filter(run_id=run_id, state__in=ACTIVE_ACTION).exists():
            advance(run_id)
            report["advanced"] += 1
    return report


def _reap_one(action: Action) -> str:
    attempt = action.attempt
    handler = HANDLERS[action.kind]
    with SSHPool() as pool:
        ctx = Context(action, pool)
        try:
            seen = handler.observe(ctx)
        except DriverError as exc:
            seen = None
            reason = f"cannot observe after the worker died: {exc}"
    if seen is not None and seen.done:
        _record(
            action,
            attempt,
            A.SUCCEEDED,
            f"finished: observed {seen.detail}",
            seen.facts,
            {},
            "",
            "\n".join(ctx.lines),
            by=" (by the reaper, after its worker died)",
        )
        return "finished"
    if seen is not None and seen.done is False:
        # The effect provably did not happen (or the action has none): safe to go again.
        with transaction.atomic():
            if Action.objects.filter(pk=action.pk, attempt=attempt, state=A.RUNNING).update(
                state=A.PENDING, lease_expires_at=None
            ):
                record_event(
                    run_id=action.run_id,
                    kind="action_requeued",
                    message=f"{action.target}: its worker died; observed {seen.detail}; trying again",
                    action_id=action.pk,
                )
        return "requeued"
    if seen is not None:
        reason = f"its worker died and the estate is in an unexpected state: {seen.detail}"
    with transaction.atomic():
        if Action.objects.filter(pk=action.pk, attempt=attempt, state=A.RUNNING).update(
            state=A.ATTENTION, lease_expires_at=None, error=reason
        ):
            record_event(
                run_id=action.run_id,
                kind="action_attention",
                message=f"{action.target}: needs attention: {reason}. Look, then Retry, Skip or Mark done.",
                action_id=action.pk,
            )
    return "attention"
