"""The reaper (Celery beat): nothing is lost when a message or a worker is.

It re-sends queued actions whose message was lost, and for running actions whose lease
expired (the worker died) observes the estate and either finishes them, puts them back
(the effect provably did not happen) or marks them "needs attention" with the reason.
It never re-runs an action blindly.

Two sites: after a take-over, the actions the lost portal had claimed (an older epoch)
are adopted at once, without waiting for their leases: their workers were at the lost
site. They are observed like any orphan; queued ones are re-sent (their messages were in
the lost site's Redis).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from drportal.twosite import current_epoch
from failover.actions.base import Context
from failover.actions.registry import HANDLERS
from failover.choices import ActionStateChoices as A
from failover.choices import RunStateChoices as R
from failover.models import Action, Run
from hosts.drivers.base import DriverError
from hosts.drivers.ssh import SSHPool

from . import sql
from .advance import ACTIVE_ACTION, RUN_BULK, advance
from .dispatch import send_actions
from .execute import Heartbeat, record_result
from .journal import record_event


def reap() -> dict:
    """One pass of the reaper. Every worker may embed a beat (``worker -B``), so several
    reapers can run at once, on several machines: each orphan is taken by exactly one of
    them with a conditional UPDATE, and a reaper that dies in turn loses nothing (what it
    took falls due again)."""
    now = timezone.now()
    report = {"resent": 0, "finished": 0, "requeued": 0, "attention": 0, "advanced": 0}
    stale = now - timedelta(seconds=settings.DRPORTAL_REQUEUE_AFTER_S)
    epoch = current_epoch()
    with transaction.atomic():
        # Rows another reaper holds are its to re-send; once it commits they are fresh.
        lost = list(
            Action.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                Q(queued_at__lt=stale) | Q(epoch__lt=epoch),
                state=A.QUEUED,
                run__state__in=(R.RUNNING, R.WAITING),
            )
            .values_list("pk", flat=True)
        )
        if lost:
            Action.objects.filter(pk__in=lost, state=A.QUEUED).update(queued_at=now, epoch=epoch)
            transaction.on_commit(lambda: send_actions(lost))
            report["resent"] = len(lost)
    lease = timedelta(seconds=settings.DRPORTAL_ACTION_LEASE_S)
    for action in (
        Action.objects.filter(Q(lease_expires_at__lt=now) | Q(epoch__lt=epoch), state=A.RUNNING)
        .select_related("run__disaster", "run__lost_site")
        .defer(*(f"run__{name}" for name in RUN_BULK))
    ):
        # Take the orphan: the expired lease is the token, so of several reapers (or a
        # late heartbeat of a worker that is alive after all) exactly one UPDATE wins.
        # An action of an older epoch is adopted into this one (its worker was at the lost portal).
        if not Action.objects.filter(
            pk=action.pk,
            attempt=action.attempt,
            state=A.RUNNING,
            lease_expires_at=action.lease_expires_at,
            epoch=action.epoch,
        ).update(lease_expires_at=now + lease, epoch=epoch):
            continue
        died = (
            f"it was claimed at the lost portal (epoch {action.epoch})"
            if action.epoch < epoch
            else "its worker died"
        )
        with Heartbeat(action.pk, action.attempt):  # observing may take a while
            verdict = _reap_one(action, died)
        report[verdict] += 1
        advance(action.run_id)
    for run_id in Run.objects.filter(state=R.RUNNING).values_list("pk", flat=True):
        if not Action.objects.filter(run_id=run_id, state__in=ACTIVE_ACTION).exists():
            advance(run_id)
            report["advanced"] += 1
    return report


def _reap_one(action: Action, died: str = "its worker died") -> str:
    attempt = action.attempt
    handler = HANDLERS[action.kind]
    with SSHPool() as pool:
        ctx = Context(action, pool, load=sql.get)
        try:
            seen = handler.observe(ctx)
        except DriverError as exc:
            seen = None
            reason = f"cannot observe after {died}: {exc}"
    if seen is not None and seen.done:
        record_result(
            action,
            attempt,
            A.SUCCEEDED,
            f"finished: observed {seen.detail}",
            seen.facts,
            {},
            "",
            "\n".join(ctx.lines),
            by=f" (by the reaper, after {died})",
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
                    message=f"{action.target}: {died}; observed {seen.detail}; trying again",
                    action_id=action.pk,
                )
        return "requeued"
    if seen is not None:
        reason = f"{died} and the estate is in an unexpected state: {seen.detail}"
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
