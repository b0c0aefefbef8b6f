"""A planned migration (both sites up): the failover's plan with step 2 done the planned
way (shut down at the source, final sync, demote, then promote and present at the
target), stopping on any error; no forced failover."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError

from failover.choices import FailoverStep as F
from failover.choices import (
    RunKindChoices,
    RunModeChoices,
)
from failover.models import Run

from .blocks import final_sync_and_demote, shutdown_vm
from .create import PERM_DECLARE, check_override, start_claimed_run
from .plan import Plan, PlannedAction
from .survey import Survey


def planned_handover(sv: Survey) -> tuple[list[PlannedAction], int]:
    """Step 2 of a planned migration (both sites up), stopping on any error: shut the
    VMs down at the source (highest tier first), wait for the final sync, demote the
    source copy; the failover of each group (the tier returned) then promotes and
    presents it."""
    moving = [vm for vm in sv.vms.values() if vm.home_host.site_id != sv.target_site.pk]
    top = max((vm.tier for vm in moving), default=0)
    actions = [
        shutdown_vm(vm.name, host=vm.home_host.name, tier=top - vm.tier, step=F.STORAGE)
        for vm in sorted(moving, key=lambda v: (-v.tier, v.name))
    ]
    for group in sv.groups.values():
        source = group.source_array.name
        actions += final_sync_and_demote(
            group.name, array=source, source_array=source, step=F.STORAGE, tier=top + 1
        )
    return actions, top + 3


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
