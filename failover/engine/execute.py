"""Run one queued action: claim it, act over SSH outside any transaction, record the result.

``execute(action_id)`` claims the action with a conditional UPDATE (a duplicate message
finds nothing to claim), runs its handler (observe first, act only when needed) while a
heartbeat renews its lease, and records the result guarded by the attempt number. In the
transaction that records it, the action's host slot is handed on to that host's next
action of the same step and tier, which the same worker runs at once.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from datetime import timedelta
from typing import NamedTuple

from celery.worker import state
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from drportal.twosite import site_status
from failover import events
from failover.actions.base import CheckDown, Context, lend_back_connection
from failover.actions.registry import HANDLERS
from failover.choices import ActionStateChoices as A
from failover.choices import RunStateChoices as R
from failover.models import Action
from hosts.drivers.base import DriverError
from hosts.drivers.ssh import IdleConnections
from hosts.drivers.storage import ManualStepRequired

from . import sql
from .advance import NOT_OK, advance
from .dispatch import send_actions
from .journal import record_event

log = logging.getLogger(__name__)


def worker_id() -> str:
    """Who claims an action: machine and process. Asked at claim time, never at import: a
    prefork pool imports this module in its parent and forks, and every child must still
    claim under its own pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _Leases:
    """The leases this process holds, renewed together by one thread: every lease/3 one
    UPDATE renews all of them. (A thread per action, with its own database connection,
    cost more than a short action's commands.) Each lease runs out DRPORTAL_ACTION_MAX_S
    after it was taken even while held: a handler stuck past every timeout must not hold
    its action forever; the reaper then observes and decides."""

    def __init__(self) -> None:
        self._held: dict[tuple[int, int], float] = {}  # (action id, attempt): give up at
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def hold(self, action_id: int, attempt: int) -> None:
        give_up = time.monotonic() + settings.DRPORTAL_ACTION_MAX_S
        with self._lock:
            self._held[(action_id, attempt)] = give_up
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                # Per process: a prefork child does not inherit its parent's thread.
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._renew, name="leases", daemon=True)
                self._thread.start()

    def release(self, action_id: int, attempt: int) -> None:
        with self._lock:
            self._held.pop((action_id, attempt), None)

    def _renew(self) -> None:
        while True:
            self._wake.wait(settings.DRPORTAL_ACTION_LEASE_S / 3)
            now = time.monotonic()
            with self._lock:
                due = [key for key, give_up in self._held.items() if now < give_up]
            if not due:
                continue
            try:
                which = Q()
                for action_id, attempt in due:
                    which |= Q(pk=action_id, attempt=attempt)
                Action.objects.filter(which, state=A.RUNNING).update(
                    lease_expires_at=timezone.now() + timedelta(seconds=settings.DRPORTAL_ACTION_LEASE_S)
                )
            except Exception:  # the database is away: try again at the next turn
                log.exception("leases of %s actions not renewed", len(due))
                connection.close()
            lend_back_connection()  # not held until the next turn


_LEASES = _Leases()


class Heartbeat:
    """Holds the lease of one attempt while it runs (renewed by the process's one lease
    thread, see ``_Leases``); lets go when the attempt is over."""

    def __init__(self, action_id: int, attempt: int) -> None:
        self.action_id, self.attempt = action_id, attempt

    def __enter__(self) -> Heartbeat:
        _LEASES.hold(self.action_id, self.attempt)
        return self

    def __exit__(self, *exc) -> None:
        _LEASES.release(self.action_id, self.attempt)


# This worker process's idle SSH connections, each lent to one action at a time.
CONNECTIONS = IdleConnections()


def execute(action_id: int) -> None:
    """Run one queued action, then the next ones its host slot is handed on to (see
    ``_hand_on``); a pass over the run follows when the chain ends, or sooner when an
    action others wait for has finished."""
    now = timezone.now()
    claimed = _claim(action_id, now, now + timedelta(seconds=settings.DRPORTAL_ACTION_LEASE_S))
    while claimed is not None:
        claimed = _execute_claimed(*claimed)


def _worker_stopping() -> bool:
    return bool(state.should_stop or state.should_terminate)


def _execute_claimed(action: Action, awaited: bool) -> tuple[Action, bool] | None:
    """Run a claimed action and record its result; returns the next action of its slot,
    claimed for this worker (see ``finish_and_claim_next``), if it was handed on."""
    action_id = action.pk
    attempt = action.attempt
    handler = HANDLERS[action.kind]
    state, outcome, detail, result, undo = A.FAILED, "", "", {}, {}
    with CONNECTIONS.lease() as pool, Heartbeat(action.pk, attempt):
        ctx = Context(action, pool, load=sql.get)
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
    finished = Finished(state, detail, result, undo, outcome, "\n".join(ctx.lines))
    site = site_status()
    claimed: tuple[Action, bool] | None = None
    if connection.vendor == "postgresql" and site.may_act and not _worker_stopping():
        # Record, hand on and claim the next in one statement (_finish_and_claim_next).
        recorded, claimed = _finish_and_claim_next(action, attempt, finished, site.epoch)
        next_id = claimed[0].pk if claimed else None
    else:
        handed: list[int | None] = [None]
        recorded = record_result(action, attempt, *finished, hand_on=handed)
        next_id = handed[0]
    if awaited or (next_id is None and not (recorded and _pass_can_wait(action, state))):
        advance(action.run_id)  # queues what waited for this one, or what its slot frees
    if claimed is not None or next_id is None:
        return claimed
    if _worker_stopping():
        # A warm shutdown waits for this task: hand the rest to the other workers
        # (or to this one after its restart) instead of working through them first.
        send_actions([next_id])
        return None
    now = timezone.now()
    return _claim(next_id, now, now + timedelta(seconds=settings.DRPORTAL_ACTION_LEASE_S))


def _pass_can_wait(action: Action, state: str) -> bool:
    """A chain that ended without handing its slot on needs a pass (to queue what that
    slot frees, or to close the step) unless a later chain end of the same step and tier
    will run one that sees this result: asked after this result committed, so of two
    chains that end at once the second always sees the first's result and runs the pass.
    Only after a success of a running run: a failure may make the run wait for a person."""
    if state != A.SUCCEEDED:
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            sql.pass_can_wait(),
            [
                action.run_id,
                R.RUNNING,
                action.run_id,
                action.step_id,
                action.tier,
                action.pk,
                A.QUEUED,
                A.RUNNING,
                action.run_id,
                action.step_id,
                action.tier,
                A.PENDING,
                action.host,
                action.array,
            ],
        )
        return bool(cursor.fetchone()[0])


STARTED = "action_started"


def _claim(action_id: int, now, lease_expires_at) -> tuple[Action, bool] | None:
    """Claim a queued action of a running (or waiting) run, load it and journal its start,
    in one transaction; None if there is nothing to claim. With it: do other actions wait
    for it?

    Two sites: only a portal that may act claims (a standby's or a behind portal's worker
    never does), and only in the epoch its database says is current."""
    site = site_status()
    if not site.may_act:
        log.warning("action %s not claimed: %s", action_id, site.reason)
        return None
    ops = connection.ops
    started_at = ops.adapt_datetimefield_value(now)
    params = [
        A.RUNNING,
        ops.adapt_datetimefield_value(lease_expires_at),
        worker_id(),
        started_at,
        site.epoch,
        action_id,
        A.QUEUED,
        site.epoch,
        R.RUNNING,
        R.WAITING,
    ]
    if connection.vendor == "postgresql":
        # One statement claims and writes the "started" event (sql.claim_and_start): it
        # is its own transaction, and the event is there only if the claim is.
        with connection.cursor() as cursor:
            cursor.execute(sql.claim_and_start(), [*params, started_at, STARTED])
            row = cursor.fetchone()
        if row is None:
            return None
        action, seq = sql.from_row(Action, row[:-2]), row[-1]
        run_id = action.run_id
        transaction.on_commit(lambda: events.ring_doorbell(run_id, seq))  # at once outside a transaction
        return action, bool(row[-2])
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql.claim_action(), params)
            row = cursor.fetchone()
        if row is None:
            return None
        action = sql.from_row(Action, row[:-1])
        record_event(
            run_id=action.run_id,
            kind=STARTED,
            message=f"{action.target}: {action.kind.replace('_', ' ')} (attempt {action.attempt})",
            action_id=action.pk,
            # claimed_by keeps only the latest claim; the events keep who ran each attempt.
            data={"attempt": action.attempt, "worker": action.claimed_by},
        )
    return action, bool(row[-1])


VERBS: dict[str, str] = {A.SUCCEEDED: "done", A.FAILED: "FAILED", A.MANUAL: "waits for a person"}


def record_result(
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
            sql.finish_action(),
            [
                state,
                connection.ops.adapt_datetimefield_value(timezone.now()),
                json_field.get_db_prep_save(result, connection),
                json_field.get_db_prep_save(undo, connection),
                _outcome(action, state, outcome),
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
        verb = VERBS[state]
        record_event(
            run_id=action.run_id,
            kind=f"action_{state}",
            message=f"{action.target}: {verb}{by}: {detail}",
            action_id=action.pk,
            data={"state": state, "attempt": attempt, "outcome": outcome},
        )
    return True


class Finished(NamedTuple):
    """What an attempt ended with, as ``record_result`` takes it."""

    state: str
    detail: str
    result: dict
    undo: dict
    outcome: str
    output: str


def _finish_and_claim_next(
    action: Action, attempt: int, finished: Finished, epoch: int | None
) -> tuple[bool, tuple[Action, bool] | None]:
    """PostgreSQL: ``record_result`` with ``hand_on``, then ``_claim`` of the action the
    slot went to, in one statement (sql.finish_and_claim_next): the same rows, events and
    locks, one round trip instead of five between this action's last command and the
    next one's first. Returns whether the result was stored, and the claimed action with
    whether others wait for it (None if nothing was handed on)."""
    state, detail, result, undo, outcome, output = finished
    json_field = Action._meta.get_field("result")  # result and undo: both JSONFields
    ops = connection.ops
    now = timezone.now()
    params = {
        "state": state,
        "now": ops.adapt_datetimefield_value(now),
        "result": json_field.get_db_prep_save(result, connection),
        "undo": json_field.get_db_prep_save(undo, connection),
        "outcome": _outcome(action, state, outcome),
        "output": output[-20000:],
        "error": "" if state == A.SUCCEEDED else detail,
        "id": action.pk,
        "attempt": attempt,
        "running": A.RUNNING,
        "run": action.run_id,
        "step": action.step_id,
        "tier": action.tier,
        "host": action.host or None,  # no host: nothing to hand on (NULL matches no row)
        "array": action.array,
        "pending": A.PENDING,
        "run_running": R.RUNNING,
        "run_waiting": R.WAITING,
        **{f"not_ok{i}": s for i, s in enumerate(NOT_OK)},
        "lease": ops.adapt_datetimefield_value(now + timedelta(seconds=settings.DRPORTAL_ACTION_LEASE_S)),
        "worker": worker_id(),
        "epoch": epoch,
        "kind": f"action_{state}",
        "message": f"{action.target}: {VERBS[state]}: {detail}",
        "data": json.dumps({"state": state, "attempt": attempt, "outcome": outcome}),
        "started": STARTED,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql.finish_and_claim_next(not_ok=len(NOT_OK)), params)
        row = cursor.fetchone()
    if row is None:
        return False, None  # the reaper or a person decided meanwhile
    run_id, seq = action.run_id, row[0]
    transaction.on_commit(lambda: events.ring_doorbell(run_id, seq))  # at once: no transaction
    if row[1] is None:
        return True, None
    return True, (sql.from_row(Action, row[1:-1]), bool(row[-1]))


def _outcome(action: Action, state: str, outcome: str) -> str:
    """What is stored as the outcome: a functional check that succeeded is "ok"."""
    return outcome or ("ok" if state == A.SUCCEEDED and action.kind == "functional_check" else outcome)


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
        # One statement: the run's state (held as a pass holds it), then the next action,
        # conditional on PENDING: a pass (or a person skipping it) may have taken it.
        cursor.execute(
            sql.hand_on(not_ok=len(NOT_OK), skip_locked=postgres),
            [
                action.run_id,
                A.QUEUED,
                now,
                A.PENDING,
                R.RUNNING,
                R.WAITING,
                action.run_id,
                action.step_id,
                action.tier,
                action.host,
                action.array,
                A.PENDING,
                *NOT_OK,
            ],
        )
        row = cursor.fetchone()
    return row[0] if row else None
