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

from failover.choices import ActionKindChoices as K
from failover.choices import (
    DisasterClassChoices,
    EventCategoryChoices,
    RunKindChoices,
    RunModeChoices,
)
from failover.choices import FailoverStep as F
from failover.choices import RunStateChoices as R
from failover.models import Disaster, Run
from hosts.capacity import no_cycle_collection
from hosts.drivers.ssh import SSHPool
from hosts.models import VM, DRGroup, Site
from hosts.selectors import prefetched

from .blocks import (
    dom0_shrinks,
    functional_checks,
    group_checks,
    group_devices,
    group_failover,
    host_checks,
    inventory,
    noswap_checks,
    order_starts,
    set_memory,
    start_vm,
)
from .create import PERM_DECLARE, override_needed, run_create
from .deadline import recovery_deadline
from .forecast import apply_forecast
from .migration import planned_handover
from .noticed import detected_at_problem
from .plan import Plan, PlannedAction, Problem
from .sitestate import FAILED_OVER, FAILING_BACK, SiteState, site_state_of
from .survey import (
    Survey,
    config_missing,
    config_warnings,
    drill_up_problems,
    group_problems,
    hint_group_members,
    lost_site_answers,
    lost_site_warnings,
    survey,
    target_array,
    unreachable_problems,
)


def build_plan(*, lost_site: str, mode: str = "disaster", pool: SSHPool | None = None) -> Plan:
    """The failover plan for losing ``lost_site`` (``mode`` planned: a planned migration,
    see ``migration``). Talks to the surviving site over SSH.

    The cyclic garbage collector pauses for the building too, as for the survey: the plan
    of 5,000 VMs makes some 20,000 actions while the survey's estate is alive, and each
    collection walked all of it again (a third of the building's CPU)."""
    with no_cycle_collection():
        return _build_plan(lost_site=lost_site, mode=mode, pool=pool)


def _build_plan(*, lost_site: str, mode: str, pool: SSHPool | None) -> Plan:
    sv = survey(lost_site=lost_site, pool=pool, look_at_lost=mode == RunModeChoices.DISASTER)
    plan = Plan(lost_site=sv.lost.code, target_site=sv.target_site.code, mode=mode)
    if mode == RunModeChoices.DISASTER:
        _already_away(plan, site_state_of(sv.lost))
        plan.blocking.extend(lost_site_answers(sv))
        plan.warnings.extend(lost_site_warnings(sv))
    apply_forecast(plan, sv.lost.code)
    _capacity_problems(sv, plan)
    plan.blocking.extend(unreachable_problems(sv.look))
    plan.warnings.extend(config_warnings(sv.look))
    plan.blocking.extend(drill_up_problems(sv.target_site))
    group_problems(sv, plan)

    actions = [
        *host_checks(sv.target_hosts),
        *group_checks(sv.groups.values()),
        *inventory(sv.target_hosts),
    ]
    running_at_target = {d: h for h, doms in sv.look.domains.items() for d in doms}
    for vm in sorted(sv.vms.values(), key=lambda v: (v.tier, v.name)):
        host_name = sv.placement[vm.name]
        target_mb = sv.dr_memory[vm.name]
        _bridge_problems(sv, plan, vm, host_name)
        if vm.name in running_at_target:
            # Step 4: it runs at the surviving site already; give it its disaster memory.
            running_host = running_at_target[vm.name]
            current = sv.look.domains[running_host][vm.name]
            plan.already_running.append({"vm": vm.name, "host": running_host, "memory_mb": current})
            if current != target_mb:
                plan.memory_changes.append(
                    {"vm": vm.name, "host": running_host, "from_mb": current, "to_mb": target_mb}
                )
            actions.append(
                set_memory(key=f"shrink:{vm.name}", vm=vm.name, host=running_host, memory_mb=target_mb)
            )
            actions.extend(functional_checks(vm, running_host, after=f"shrink:{vm.name}"))
            continue
        # Step 5: start it there, after its DR group's data has been checked.
        missing = config_missing(sv, vm, host_name)
        if missing:
            plan.blocking.append(missing)
        plan.starts.append({"vm": vm.name, "host": host_name, "memory_mb": target_mb, "tier": vm.tier})
        group = vm.dr_group
        depends = [f"integrity:{group.name}"] if group is not None and group.name in sv.groups else []
        actions.append(start_vm(vm, host=host_name, memory_mb=target_mb, depends_on=depends))
        actions.extend(functional_checks(vm, host_name, after=f"start:{vm.name}"))

    handover_tier = 0
    if mode == RunModeChoices.PLANNED:
        handover, handover_tier = planned_handover(sv)
        actions.extend(handover)
    for group in sv.groups.values():
        # Steps 2 and 3: fail the group over, present it to the dom0 of its first VM, check the data.
        # Its VMs came with it (survey), ordered as the model orders them: no query per group.
        first = next(iter(prefetched(group, "vms")), None)
        present_to = sv.placement.get(first.name) if first else None
        array = target_array(group).name
        actions.append(
            group_failover(
                group.name,
                array=array,
                source_array=group.source_array.name,
                present_to=present_to,
                tier=handover_tier,
            )
        )
        actions.append(
            PlannedAction(
                key=f"integrity:{group.name}",
                step=F.INTEGRITY,
                kind=K.INTEGRITY_CHECK,
                target=group.name,
                host=present_to or array,
                params={
                    "group": group.name,
                    "array": array,
                    "host": present_to,
                    "devices": group_devices(group),
                },
            )
        )
    actions.extend(dom0_shrinks(sv, plan, always=True))
    actions.extend(noswap_checks(sv.target_hosts))
    hint_group_members(actions, sv.look)
    plan.actions = order_starts(actions)
    plan.groups = sorted(sv.groups)
    return plan


def _already_away(plan: Plan, now: SiteState) -> None:
    """Where the site stands before this declaration: already failed over (or failing
    back) is a blocking problem; a failover still running is where a declaration leads."""
    plan.site = {
        "state": now.state,
        "label": now.label,
        "run": now.run.pk if now.run else None,
        "moved_by": now.moved_by.pk if now.moved_by else None,
    }
    if now.state == FAILED_OVER and now.moved_by is not None:
        plan.blocking.append(
            Problem(
                "already-failed-over",
                f"{plan.lost_site} is already failed over to {now.moved_by.target_site.code} by run {now.moved_by.pk}: "
                "its DR groups fail over and its VMs run there already",
                f"open run {now.moved_by.pk}; to bring {plan.lost_site} home, fail back from there",
            )
        )
    elif now.state == FAILING_BACK and now.run is not None:
        plan.blocking.append(
            Problem(
                "failing-back",
                f"{plan.lost_site} is failing back home (run {now.run.pk}): its services are on the move",
                f"open run {now.run.pk}: abort the failback first if {plan.lost_site} is lost again",
            )
        )


def _capacity_problems(sv: Survey, plan: Plan) -> None:
    """What the capacity proof says: unrecoverable VMs (a warning each), a profile that
    would swap and VMs with no place (blocking)."""
    capacity = sv.capacity
    plan.unrecoverable = [{"vm": u.vm, "reason": u.reason} for u in capacity.unrecoverable]
    for u in capacity.unrecoverable:
        plan.warnings.append(f"{u.vm} cannot be recovered: {u.reason}")
    if not capacity.fits:
        short = ", ".join(f"{h.host} {h.shortfall_mb} MB" for h in capacity.hosts if not h.fits)
        plan.blocking.append(
            Problem(
                "capacity",
                f"the disaster profile does not fit without swapping: short {short or capacity.shortfall_mb} MB",
                f"lower DR memory in the '{sv.scenario.name}' profile, or shed: {', '.join(capacity.shed) or 'n/a'}",
            )
        )
    for vm_name in capacity.unplaced:
        plan.blocking.append(
            Problem("unplaced", f"{vm_name} has no place: {capacity.unplaced_reasons.get(vm_name, '')}")
        )


def _bridge_problems(sv: Survey, plan: Plan, vm: VM, host_name: str) -> None:
    """The bridges ``vm``'s NICs need on the dom0 it goes to (as that dom0 says now, else
    as the inventory says)."""
    host = sv.host_by_name.get(host_name)
    known = sv.look.bridges.get(host_name, host.bridges if host else [])
    missing = sorted({nic.bridge for nic in prefetched(vm, "interfaces")} - set(known))
    if missing:
        plan.blocking.append(
            Problem("bridge", f"{host_name} lacks bridge(s) {', '.join(missing)} that {vm.name} needs")
        )


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
    confirm_detected_at: bool = False,
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
    problem = detected_at_problem(site=site, detected_at=detected_at, confirmed=confirm_detected_at)
    if problem:
        errors["detected_at"] = problem
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
    assert site is not None  # else errors named lost_site
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
    confirm_detected_at: bool = False,
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
        confirm_detected_at=confirm_detected_at,
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
