"""The operator's controls of a running run: retry, skip or mark done an action; pause,
resume or abort the run. Each is a conditional UPDATE and a RunEvent, then a kick.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from failover.choices import ActionStateChoices as A
from failover.choices import RunStateChoices as R
from failover.choices import StepStateChoices as S
from failover.engine.dispatch import kick_readiness, kick_run, send_actions
from failover.engine.journal import record_event
from failover.models import Action, Run, RunGroupClaim, Step

from .create import PERM_OPERATE


def _require_operator(user) -> None:
    if not user.has_perm(PERM_OPERATE):
        raise PermissionDenied("only the Manager on Duty operates a run")


def _action_transition(
    *,
    user,
    action_id: int,
    allowed: tuple[str, ...],
    to: str,
    verb: str,
    reason: str = "",
    need_reason: bool = False,
) -> Action:
    _require_operator(user)
    if need_reason and not reason.strip():
        raise ValidationError({"reason": f"{verb} needs a reason (it goes into the report)"})
    with transaction.atomic():
        action = Action.objects.select_related("run").get(pk=action_id)
        if not action.run.active:
            raise ValidationError({"action": f"run {action.run_id} is {action.run.state}: nothing to {verb}"})
        updates: dict[str, object] = {"state": to, "reason": reason}
        if to in (A.SUCCEEDED, A.SKIPPED):
            updates["finished_at"] = timezone.now()
        if not Action.objects.filter(pk=action_id, state__in=allowed).update(**updates):
            raise ValidationError(
                {
                    "action": f"{action.target} is {action.get_state_display().lower()}: it cannot be {verb} now"
                }
            )
        record_event(
            run_id=action.run_id,
            kind=f"action_{verb.replace(' ', '_')}",
            message=f"{action.target}: {verb} by {user.get_username()}"
            + (f" — reason: {reason}" if reason else ""),
            action_id=action.pk,
            user=user,
        )
    transaction.on_commit(lambda: kick_run(action.run_id))
    return action


def action_retry(*, user, action_id: int) -> Action:
    return _action_transition(
        user=user,
        action_id=action_id,
        allowed=(A.FAILED, A.ATTENTION, A.MANUAL),
        to=A.PENDING,
        verb="retried",
    )


def action_skip(*, user, action_id: int, reason: str) -> Action:
    return _action_transition(
        user=user,
        action_id=action_id,
        allowed=(A.PENDING, A.FAILED, A.ATTENTION, A.MANUAL),
        to=A.SKIPPED,
        verb="skipped",
        reason=reason,
        need_reason=True,
    )


def action_mark_done(*, user, action_id: int, reason: str) -> Action:
    return _action_transition(
        user=user,
        action_id=action_id,
        allowed=(A.FAILED, A.ATTENTION, A.MANUAL),
        to=A.SUCCEEDED,
        verb="marked done by hand",
        reason=reason,
        need_reason=True,
    )


def _run_transition(
    *, user, run_id: int, allowed: tuple[str, ...], to: str, verb: str, reason: str = ""
) -> Run:
    _require_operator(user)
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.state not in allowed:
            raise ValidationError(
                {"run": f"run {run.pk} is {run.get_state_display().lower()}: it cannot be {verb}"}
            )
        updates: dict[str, object] = {"state": to}
        where = ""
        if to == R.ABORTED:
            updates["finished_at"] = now = timezone.now()
            RunGroupClaim.objects.filter(run=run, active=True).update(active=False)
            where = _stop_the_clock(run, now)
        Run.objects.filter(pk=run.pk).update(**updates)
        record_event(
            run_id=run.pk,
            kind=f"run_{to}",
            message=f"Run {verb} by {user.get_username()}"
            + (f" — reason: {reason}" if reason else "")
            + where,
            user=user,
        )
    if to == R.RUNNING:
        queued = list(Action.objects.filter(run_id=run_id, state=A.QUEUED).values_list("pk", flat=True))

        def resume() -> None:
            send_actions(queued)
            kick_run(run_id)

        transaction.on_commit(resume)
    elif to == R.ABORTED:  # a run's end: what readiness says may have changed
        transaction.on_commit(lambda: kick_readiness(f"run {run_id} aborted"))
    return run


def _stop_the_clock(run: Run, now) -> str:
    """An aborted run's open step stops where it is (its clock with it), and what was
    queued will not run; an action already running finishes and records what it did."""
    open_steps = list(run.steps.filter(state=S.RUNNING).order_by("number"))
    Step.objects.filter(pk__in=[s.pk for s in open_steps]).update(state=S.STOPPED, finished_at=now)
    Action.objects.filter(run=run, state=A.QUEUED).update(state=A.PENDING, queued_at=None)
    if not open_steps:
        return ""
    return "; stopped in " + ", ".join(f"step {s.number} ({s.name})" for s in open_steps)


def run_pause(*, user, run_id: int) -> Run:
    return _run_transition(
        user=user, run_id=run_id, allowed=(R.RUNNING, R.WAITING), to=R.PAUSED, verb="paused"
    )


def run_resume(*, user, run_id: int) -> Run:
    return _run_transition(user=user, run_id=run_id, allowed=(R.PAUSED,), to=R.RUNNING, verb="resumed")


def run_abort(*, user, run_id: int, reason: str) -> Run:
    if not reason.strip():
        raise ValidationError({"reason": "aborting a run needs a reason (it goes into the report)"})
    return _run_transition(
        user=user, run_id=run_id, allowed=R.active(), to=R.ABORTED, verb="aborted", reason=reason
    )
