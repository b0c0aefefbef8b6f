"""A failover: the plan for losing a site, and declaring the disaster that starts it.

``check_declaration`` validates and authorizes; ``disaster_declare`` creates the
Disaster and its run (``create.run_create``) in one transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from failover.choices import (
    DisasterClassChoices,
    EventCategoryChoices,
    RunKindChoices,
    RunModeChoices,
)
from failover.choices import RunStateChoices as R
from failover.models import Disaster, Run
from hosts.drivers.ssh import SSHPool
from hosts.models import DRGroup, Site

from .blocks import check_actions, dom0_shrinks, order_starts
from .create import PERM_DECLARE, override_needed, run_create
from .deadline import recovery_deadline
from .forecast import apply_forecast
from .migration import planned_handover
from .plan import Plan, PlannedAction, Problem
from .survey import config_missing, drill_up_problems, group_problems, survey, unreachable_problems


def build_plan(*, lost_site: str, mode: str = "disaster", pool: SSHPool | None = None) -> Plan:
    """The failover plan for losing ``lost_site``. Talks to the surviving site over SSH."""
    sv = survey(lost_site=lost_site, pool=pool)
    lost, target_site, scenario, capacity = sv.lost, sv.target_site, sv.scenario, sv.capacity
    placement, dr_memory, look = sv.placement, sv.dr_memory, sv.look
    target_hosts, host_by_name, vms, groups = sv.target_hosts, sv.host_by_name, sv.vms, sv.groups
    plan = Plan(lost_site=lost.code, target_site=target_site.code, mode=mode)
    apply_forecast(plan, lost.code)
    plan.unrecoverable = [{"vm": u.vm, "reason": u.reason} for u in capacity.unrecoverable]
    for u in capacity.unrecoverable:
        plan.warnings.append(f"{u.vm} cannot be recovered: {u.reason}")
    if not capacity.fits:
        short = ", ".join(f"{h.host} {h.shortfall_mb} MB" for h in capacity.hosts if not h.fits)
        plan.blocking.append(
            Problem(
                "capacity",
                f"the disaster profile does not fit without swapping: short {short or capacity.shortfall_mb} MB",
                f"lower DR memory in the '{scenario.name}' profile, or shed: {', '.join(capacity.shed) or 'n/a'}",
            )
        )
    for vm_name in capacity.unplaced:
        plan.blocking.append(
            Problem("unplaced", f"{vm_name} has no place: {capacity.unplaced_reasons.get(vm_name, '')}")
        )
    plan.blocking.extend(unreachable_problems(look))
    plan.blocking.extend(drill_up_problems(target_site))

    running_at_target = {d: h for h, doms in look.domains.items() for d in doms}
    actions: list[PlannedAction] = []
    # Step 0: preflight (table 3.4), read-only.
    for host in target_hosts:
        actions.append(PlannedAction(f"preflight:{host.name}", 0, "check_host", host.name, host.name))
    for group in groups.values():
        actions.append(
            PlannedAction(
                f"preflight:{group.name}",
                0,
                "check_group",
                group.name,
                group.target_array.name,
                {"group": group.name, "array": group.target_array.name},
            )
        )
    # Step 1: which VMs already run at the surviving site.
    for host in target_hosts:
        actions.append(PlannedAction(f"inventory:{host.name}", 1, "inventory_host", host.name, host.name))

    group_problems(sv, plan)

    for vm_name in sorted(vms, key=lambda n: (vms[n].tier, n)):
        vm = vms[vm_name]
        host_name = placement[vm_name]
        host = host_by_name.get(host_name)
        target_mb = dr_memory[vm_name]
        missing_bridges = sorted(
            {nic.bridge for nic in vm.interfaces.all()}
            - set(look.bridges.get(host_name, host.bridges if host else []))
        )
        if missing_bridges:
            plan.blocking.append(
                Problem(
                    "bridge", f"{host_name} lacks bridge(s) {', '.join(missing_bridges)} that {vm_name} needs"
                )
            )
        if vm_name in running_at_target:
            running_host = running_at_target[vm_name]
            current = look.domains[running_host][vm_name]
            plan.already_running.append({"vm": vm_name, "host": running_host, "memory_mb": current})
            if current != target_mb:
                plan.memory_changes.append(
                    {"vm": vm_name, "host": running_host, "from_mb": current, "to_mb": target_mb}
                )
            actions.append(
                PlannedAction(
                    f"shrink:{vm_name}",
                    4,
                    "set_memory",
                    vm_name,
                    running_host,
                    {"vm": vm_name, "memory_mb": target_mb},
                )
            )
            actions.extend(check_actions(vm, running_host, after=f"shrink:{vm_name}"))
            continue
        missing = config_missing(sv, vm, host_name)
        if missing:
            plan.blocking.append(missing)
        plan.starts.append({"vm": vm_name, "host": host_name, "memory_mb": target_mb, "tier": vm.tier})
        group = vm.dr_group
        depends = []
        if group is not None and group.name in groups:
            depends.append(f"integrity:{group.name}")
        actions.append(
            PlannedAction(
                f"start:{vm_name}",
                5,
                "start_vm",
                vm_name,
                host_name,
                {
                    "vm": vm_name,
                    "config_path": vm.config_path,
                    "memory_mb": target_mb,
                    "tier": vm.tier,
                    "depends_on_vms": sorted(d.name for d in vm.depends_on.all()),
                },
                depends,
            )
        )
        actions.extend(check_actions(vm, host_name, after=f"start:{vm_name}"))
    handover_tier = 0
    if mode == "planned":
        handover, handover_tier = planned_handover(sv)
        actions.extend(handover)
    for group in groups.values():
        target_host = placement.get(group.vms.first().name) if group.vms.exists() else None
        actions.append(
            PlannedAction(
                f"storage:{group.name}",
                2,
                "failover_group",
                group.name,
                group.target_array.name,
                {
                    "group": group.name,
                    "array": group.target_array.name,
                    "source_array": group.source_array.name,
                    "present_to": target_host,
                    "tier": handover_tier,
                },
            )
        )
        actions.append(
            PlannedAction(
                f"integrity:{group.name}",
                3,
                "integrity_check",
                group.name,
                target_host or group.target_array.name,
                {
                    "group": group.name,
                    "array": group.target_array.name,
                    "host": target_host,
                    "devices": sorted(d.target for vm in group.vms.all() for d in vm.disks.all()),
                },
            )
        )
    actions.extend(dom0_shrinks(sv, plan, always=True))
    for host in target_hosts:
        actions.append(
            PlannedAction(
                f"verify:noswap:{host.name}", 6, "check_no_swap", host.name, host.name, {}, optional=False
            )
        )
    plan.actions = order_starts(actions)
    plan.groups = sorted(groups)
    return plan


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
            run = run_create(
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
