"""Writes of the failover app: declare a disaster (and start its run), operator controls.

``check_*`` validate and authorize; ``disaster_declare`` and the ``action_*``/``run_*``
functions change state with conditional UPDATEs and write a RunEvent for each change.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from hosts.models import DRGroup, Site

from .choices import ActionStateChoices as A
from .choices import DisasterClassChoices, EventCategoryChoices, RunKindChoices, RunModeChoices, steps_for
from .choices import RunStateChoices as R
from .deadline import recovery_deadline
from .events import record_event
from .models import Action, Disaster, Run, RunGroupClaim, Step
from .plan import Plan

PERM_DECLARE = "failover.declare_disaster"
PERM_OPERATE = "failover.operate_run"
# At most one active run of these kinds per site (drills are limited by their own rule).
ONE_ACTIVE_PER_SITE = (RunKindChoices.FAILOVER, RunKindChoices.FAILBACK, RunKindChoices.MIGRATION)


def override_needed(plan: Plan, what: str) -> str:
    return (
        f"{what} has blocking problems: "
        + "; ".join(p.message for p in plan.blocking)
        + ". Fix them, or override with a typed reason."
    )


def check_override(plan: Plan, override_reason: str, what: str) -> None:
    """Blocking problems stop a run unless a person overrides them with a typed reason."""
    if plan.blocking and not override_reason.strip():
        raise ValidationError({"override_reason": override_needed(plan, what)})


@dataclass
class Declaration:
    run: Run
    created: bool  # False: a run for these groups was already active; this is it


def check_declaration(
    *,
    user,
    lost_site: str,
    disaster_class: int,
    category: str,
    detected_at: dt.datetime,
    plan: Plan,
    override_reason: str,
    confirm_isolated: bool,
    approver=None,
) -> Site:
    if not user.has_perm(PERM_DECLARE):
        raise PermissionDenied("only the Manager on Duty declares a disaster")
    errors: dict[str, str] = {}
    site = Site.objects.filter(code=lost_site).first()
    if site is None:
        errors["lost_site"] = f"no site {lost_site!r}"
    if disaster_class not in DisasterClassChoices.values:
        errors["disaster_class"] = f"{disaster_class!r} is not a disaster class (1, 2 or 3)"
    if category not in EventCategoryChoices.values:
        errors["category"] = (
            f"{category!r} is not an event category ({', '.join(EventCategoryChoices.values)})"
        )
    if detected_at > timezone.now() + dt.timedelta(minutes=5):
        errors["detected_at"] = "the event cannot be detected in the future"
    if plan.blocking and not override_reason.strip():
        errors["override_reason"] = override_needed(plan, "the plan")
    if not confirm_isolated and plan.mode == RunModeChoices.DISASTER:
        errors["confirm_isolated"] = (
            f"confirm that {lost_site} is isolated (powered off or cut off from the storage network): "
            "a DR group only fails over when its source side is fenced"
        )
    if settings.DRPORTAL_FOUR_EYES:
        if approver is None:
            errors["approver"] = "four-eyes rule: a second Manager on Duty must approve"
        elif approver.pk == user.pk or not approver.has_perm(PERM_DECLARE):
            errors["approver"] = "the approver must be another Manager on Duty"
    if errors:
        raise ValidationError(errors)
    return site


def disaster_declare(
    *,
    user,
    lost_site: str,
    disaster_class: int,
    category: str,
    detected_at: dt.datetime,
    plan: Plan,
    override_reason: str = "",
    confirm_isolated: bool = False,
    approver=None,
    notes: str = "",
) -> Declaration:
    """Create the Disaster, its Run and the frozen Steps and Actions in one transaction,
    and start the engine after commit. A declaration while a run for the same DR groups
    is active leads to that run (the database refuses a second claim)."""
    site = check_declaration(
        user=user,
        lost_site=lost_site,
        disaster_class=disaster_class,
        category=category,
        detected_at=detected_at,
        plan=plan,
        override_reason=override_reason,
        confirm_isolated=confirm_isolated,
        approver=approver,
    )
    now = timezone.now()
    groups = list(DRGroup.objects.filter(name__in=plan.groups).order_by("pk"))
    try:
        with transaction.atomic():
            disaster = Disaster.objects.create(
                lost_site=site,
                disaster_class=disaster_class,
                category=category,
                detected_at=detected_at,
                declared_at=now,
                declared_by=user,
                approved_by=approver,
                approved_at=now if approver else None,
                isolation_confirmed_by=user if confirm_isolated else None,
                isolation_confirmed_at=now if confirm_isolated else None,
                deadline=recovery_deadline(detected_at),
                notes=notes,
            )
            run = _run_create(
                plan=plan,
                disaster=disaster,
                user=user,
                kind=RunKindChoices.FAILOVER,
                override_reason=override_reason,
                groups=groups,
            )
    except IntegrityError:
        active = (
            Run.objects.filter(claims__group__in=groups, claims__active=True).order_by("pk").first()
            or Run.objects.filter(kind=RunKindChoices.FAILOVER, lost_site=site, state__in=R.active()).first()
        )
        if active is None:
            raise
        return Declaration(run=active, created=False)
    return Declaration(run=run, created=True)


def _run_create(
    *,
    plan: Plan,
    disaster: Disaster | None,
    user,
    kind: str,
    override_reason: str,
    groups,
    parent: Run | None = None,
) -> Run:
    target = Site.objects.get(code=plan.target_site)
    run = Run.objects.create(
        disaster=disaster,
        kind=kind,
        mode=plan.mode,
        lost_site=Site.objects.get(code=plan.lost_site),
        target_site=target,
        plan=plan.as_dict(),
        overrides=[
            {"problem": p.message, "code": p.code, "reason": override_reason, "by": user.get_username()}
            for p in plan.blocking
        ],
        created_by=user,
        parent=parent,
    )
    # The claim: the partial unique index makes a concurrent second run fail here.
    RunGroupClaim.objects.bulk_create([RunGroupClaim(run=run, group=g) for g in groups])
    # No group to claim (nothing to fail over): one active failover per lost site.
    others = Run.objects.filter(kind=kind, lost_site=run.lost_site, state__in=R.active()).exclude(pk=run.pk)
    if not groups and kind in ONE_ACTIVE_PER_SITE and others.exists():
        raise IntegrityError("a failover for this site is already active")
    steps = {
        number: Step.objects.create(
            run=run,
            number=number,
            key=key,
            name=str(name),
            planned_minutes=plan.step_minutes.get(number, minutes),
        )
        for number, key, name, minutes in steps_for(kind)
    }
    by_key: dict[str, Action] = {}
    for order, planned in enumerate(plan.actions):
        by_key[planned.key] = Action.objects.create(
            run=run,
            step=steps[planned.step],
            kind=planned.kind,
            target=planned.target,
            host=planned.host,
            params=planned.params,
            order=order,
            tier=planned.params.get("tier", 0),
            optional=planned.optional,
        )
    through = Action.depends_on.through
    through.objects.bulk_create(
        [
            through(from_action_id=by_key[p.key].pk, to_action_id=by_key[d].pk)
            for p in plan.actions
            for d in p.depends_on
            if d in by_key
        ]
    )
    record_event(
        run_id=run.pk,
        kind="run_started",
        message=(
            f"{run.get_kind_display()} of {plan.lost_site} to {plan.target_site} declared by {user.get_username()}: "
            f"{len(plan.actions)} actions, {len(plan.starts)} VMs to start, predicted {plan.predicted_minutes:.0f} min"
        ),
        user=user,
        data={"overrides": run.overrides},
    )
    for override in run.overrides:
        record_event(
            run_id=run.pk,
            kind="override",
            message=f"Blocking problem overridden by {override['by']}: {override['problem']} — reason: {override['reason']}",
            user=user,
        )
    transaction.on_commit(lambda: _kick(run.pk))
    return run


def _kick(run_id: int) -> None:
    """Ask a worker to advance the run; if the broker is down, the reaper advances it."""
    from .tasks import advance_run

    try:
        advance_run.delay(run_id)
    except Exception as exc:
        import logging

        logging.getLogger(__name__).warning("run %s not kicked (%s); the reaper will advance it", run_id, exc)


# -- operator controls --------------------------------------------------------------------


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
        updates = {"state": to, "reason": reason}
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
    transaction.on_commit(lambda: _kick(action.run_id))
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
        updates = {"state": to}
        if to == R.ABORTED:
            updates["finished_at"] = timezone.now()
            RunGroupClaim.objects.filter(run=run, active=True).update(active=False)
        Run.objects.filter(pk=run.pk).update(**updates)
        record_event(
            run_id=run.pk,
            kind=f"run_{to}",
            message=f"Run {verb} by {user.get_username()}" + (f" — reason: {reason}" if reason else ""),
            user=user,
        )
    if to == R.RUNNING:
        queued = list(Action.objects.filter(run_id=run_id, state=A.QUEUED).values_list("pk", flat=True))

        def resume() -> None:
            from .engine import _send

            _send(queued)
            _kick(run_id)

        transaction.on_commit(resume)
    return run


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


def migration_start(*, user, plan: Plan, override_reason: str = "") -> Run:
    """Start a planned migration (both sites up): the plan must be built in planned mode,
    so the VMs are shut down and the source demoted before a group fails over."""
    if not user.has_perm(PERM_DECLARE):
        raise PermissionDenied("only the Manager on Duty starts a planned migration")
    if plan.mode != RunModeChoices.PLANNED:
        raise ValidationError({"mode": "a planned migration needs a plan built in planned mode"})
    check_override(plan, override_reason, "the migration")
    return start_claimed_run(
        plan=plan, user=user, kind=RunKindChoices.MIGRATION, override_reason=override_reason
    )


def start_claimed_run(*, plan: Plan, user, kind: str, override_reason: str, parent: Run | None = None) -> Run:
    """Create a run (no disaster) that claims the plan's DR groups. While another run
    holds one of them, the claims' unique constraint refuses it, and the caller gets the
    field and the reason instead of a database error."""
    groups = list(DRGroup.objects.filter(name__in=plan.groups).order_by("pk"))
    try:
        with transaction.atomic():
            return _run_create(
                plan=plan,
                disaster=None,
                user=user,
                kind=kind,
                override_reason=override_reason,
                groups=groups,
                parent=parent,
            )
    except IntegrityError:
        raise ValidationError({"lost_site": "a run for these DR groups is already active"}) from None
