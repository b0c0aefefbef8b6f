"""Drills: the failover rehearsed on clones, beside production.

A drill of site X (the site whose loss it rehearses) snapshots the replicas of X's DR
groups on the surviving array, presents the snapshots to the surviving dom0s, starts
each VM as ``drill-<vm>`` from the snapshot devices with its NICs on the site's isolated
drill bridge and its disaster memory, and runs the VMs' functional checks against their
drill addresses. Production at the surviving site is not shrunk unless the drill asks.
Nothing at site X is touched, and no DR group changes role. Its cleanup is generated
from its undo ledger (``cleanup``).
"""

from __future__ import annotations

import logging
import math

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from failover.actions.drill import DRILL_PREFIX, drill_domain
from failover.choices import ActionKindChoices as K
from failover.choices import FailoverStep as F
from failover.choices import RunKindChoices, RunModeChoices
from failover.choices import RunStateChoices as R
from failover.engine.journal import record_event
from failover.models import Run
from hosts.drivers.ssh import SSHPool
from hosts.models import VM, DRGroup, Site

from .blocks import (
    dom0_shrinks,
    functional_checks,
    group_checks,
    group_devices,
    host_checks,
    inventory,
    noswap_checks,
    order_starts,
    set_memory,
    start_params,
)
from .cleanup import cleanup_create
from .create import check_override, run_create
from .forecast import apply_forecast
from .plan import Plan, PlannedAction, Problem
from .sitestate import site_states
from .survey import (
    Survey,
    config_missing,
    config_warnings,
    drill_up_problems,
    group_problems,
    survey,
    target_array,
    unreachable_problems,
)

log = logging.getLogger(__name__)


PERM_DRILL = "failover.declare_disaster"  # the Manager on Duty runs drills


class DrillScopeError(ValueError):
    """A drill asked of VMs that losing the site would not move; ``field`` names the input."""

    def __init__(self, message: str, *, field: str = "vms") -> None:
        super().__init__(message)
        self.field = field


def drill_bridge(site_code: str) -> str:
    bridges = getattr(settings, "DRPORTAL_DRILL_BRIDGES", {}) or {}
    return str(bridges.get(site_code) or getattr(settings, "DRPORTAL_DRILL_BRIDGE", "xenbr-drill"))


# The longest the clones may stay up for testers: a week. "inf" and "nan" are floats too.
DRILL_HOLD_MAX_MINUTES = 7 * 24 * 60
HOLD_RULE = f"minutes must be a number from 0 to {DRILL_HOLD_MAX_MINUTES} (a week)"


def hold_minutes_check(value: float) -> None:
    if not (math.isfinite(value) and 0 <= value <= DRILL_HOLD_MAX_MINUTES):
        raise DrillScopeError(f"hold {value!r}: {HOLD_RULE}", field="hold_minutes")


def build_drill_plan(
    *,
    site: str,
    shrink: bool = False,
    hold_minutes: float = 0,
    vms: list[str] | None = None,
    pool: SSHPool | None = None,
) -> Plan:
    """The plan of a drill of losing ``site`` (of only the VMs ``vms``, if given: a
    partial drill). Talks to the surviving site over SSH (read-only) to see what runs
    there, what memory is free, the bridges and replicas."""
    hold_minutes_check(hold_minutes)
    sv = survey(lost_site=site, pool=pool)
    if vms:
        unknown = sorted(set(vms) - set(sv.vms))
        if unknown:
            raise DrillScopeError(
                f"not VMs of the estate that {site}'s loss would move: {', '.join(unknown)}"
            )
        keep = {group.name for v in vms if (group := sv.vms[v].dr_group)}
        sv.groups = {name: g for name, g in sv.groups.items() if name in keep}
    plan = Plan(lost_site=sv.lost.code, target_site=sv.target_site.code, mode=RunModeChoices.PLANNED)
    plan.kind = RunKindChoices.DRILL
    stamp = timezone.now().strftime("%y%m%d%H%M%S")
    plan.options = {"shrink": shrink, "hold_minutes": hold_minutes, "stamp": stamp, "vms": sorted(vms or [])}
    apply_forecast(plan, sv.lost.code)
    bridge = drill_bridge(sv.target_site.code)
    _drill_problems(sv, plan, bridge)

    # The clones: VMs that do not run at the surviving site, of the groups drilled.
    running_at_target = {d: h for h, doms in sv.look.domains.items() for d in doms}
    drill_vms: list[VM] = []
    present_to: dict[str, str] = {}
    for vm in sorted(sv.vms.values(), key=lambda v: (v.tier, v.name)):
        group = vm.dr_group
        if vm.name in running_at_target or group is None or group.name not in sv.groups:
            continue
        if vms and vm.name not in vms:
            continue
        drill_vms.append(vm)
        present_to.setdefault(group.name, sv.placement[vm.name])
    snapshots = {g: f"{DRILL_PREFIX}{stamp}-{g}" for g in sv.groups}

    actions = [*host_checks(sv.target_hosts), *inventory(sv.target_hosts), *group_checks(sv.groups.values())]
    for group in sv.groups.values():
        actions += _clone(group, snapshot=snapshots[group.name], present_to=present_to.get(group.name))
    if shrink:
        actions += _shrink_production(sv, plan, running_at_target)
    else:
        _beside_production_problems(sv, plan, drill_vms)
    for vm in drill_vms:
        host_name = sv.placement[vm.name]
        missing = config_missing(sv, vm, host_name)
        if missing:
            plan.blocking.append(missing)
        plan.starts.append(
            {"vm": vm.name, "host": host_name, "memory_mb": sv.dr_memory[vm.name], "tier": vm.tier}
        )
        actions.append(
            _start_clone(
                vm, host=host_name, memory_mb=sv.dr_memory[vm.name], snapshots=snapshots, bridge=bridge
            )
        )
        actions += functional_checks(vm, host_name, after=f"start:{vm.name}", drill=True)
    actions += noswap_checks(sv.target_hosts)
    plan.actions = order_starts(actions)
    plan.groups = sorted(sv.groups)
    return plan


def lost_site_problems(*sites: Site) -> list[Problem]:
    """No drill while either site of it is lost, failed over or failing back: a hard
    block (the rehearsal of a loss that has happened, on the estate that moved)."""
    return [
        Problem(
            "site-away",
            f"{now.site.code} is not in service: {now.label}",
            f"no drill of {sites[0].code} until {now.site.code} is home again",
            hard=True,
        )
        for now in site_states(list(sites))
        if now.away
    ]


def _drill_problems(sv: Survey, plan: Plan, bridge: str) -> None:
    """What stops a drill before any memory question: an unreachable host, a drill up, a
    run active at the surviving site, an inconsistent replica, a dom0 without the drill
    bridge; and the VMs a real failover would not recover."""
    plan.blocking.extend(lost_site_problems(sv.lost, sv.target_site))
    plan.blocking.extend(unreachable_problems(sv.look))
    plan.warnings.extend(config_warnings(sv.look))
    plan.blocking.extend(drill_up_problems(sv.target_site))
    active = Run.objects.filter(state__in=R.active(), target_site=sv.target_site).exclude(kind="drill")
    for run in active:
        plan.blocking.append(
            Problem(
                "run-active",
                f"{run.get_kind_display()} run {run.pk} is active at {sv.target_site.code}",
                "a drill waits until it has ended",
            )
        )
    group_problems(sv, plan)
    for u in sv.capacity.unrecoverable:
        plan.warnings.append(f"{u.vm} would not be recovered: {u.reason}")
    for host in sv.target_hosts:
        if host.name in sv.look.bridges and bridge not in sv.look.bridges[host.name]:
            plan.blocking.append(
                Problem(
                    "drill-bridge",
                    f"{host.name} has no isolated drill bridge {bridge}: the clones would have no network",
                    f"create the bridge {bridge} (without an uplink) on {host.name}",
                )
            )


def _clone(group: DRGroup, *, snapshot: str, present_to: str | None) -> list[PlannedAction]:
    """Steps 2 and 3: snapshot the group's replica on the surviving array, present it to
    the dom0 that starts its clones, and check that dom0 sees every device."""
    array = target_array(group).name
    params = {"group": group.name, "array": array, "snapshot": snapshot, "present_to": present_to}
    return [
        PlannedAction(
            key=f"storage:{group.name}",
            step=F.STORAGE,
            kind=K.CLONE_GROUP,
            target=group.name,
            host=array,
            params=params,
        ),
        PlannedAction(
            key=f"integrity:{group.name}",
            step=F.INTEGRITY,
            kind=K.CHECK_CLONE,
            target=group.name,
            host=present_to or array,
            params={**params, "devices": group_devices(group)},
        ),
    ]


def _shrink_production(sv: Survey, plan: Plan, running_at_target: dict[str, str]) -> list[PlannedAction]:
    """Step 4 of a drill that asks for it: production at the surviving site (VMs and
    dom0s) gets its disaster memory, as in a failover, where that changes anything."""
    if not sv.capacity.fits:
        plan.blocking.append(
            Problem("capacity", "the disaster profile does not fit without swapping, even shrunk")
        )
    actions = []
    for vm_name, host_name in sorted(running_at_target.items()):
        current = sv.look.domains[host_name][vm_name]
        if vm_name in sv.dr_memory and current != sv.dr_memory[vm_name]:
            target = sv.dr_memory[vm_name]
            plan.memory_changes.append(
                {"vm": vm_name, "host": host_name, "from_mb": current, "to_mb": target}
            )
            actions.append(set_memory(key=f"shrink:{vm_name}", vm=vm_name, host=host_name, memory_mb=target))
    return actions + dom0_shrinks(sv, plan, always=False)


def _beside_production_problems(sv: Survey, plan: Plan, drill_vms: list[VM]) -> None:
    """Without shrinking, the clones must fit in what each dom0 has free now, beside
    production at its current memory."""
    need: dict[str, int] = {}
    for vm in drill_vms:
        host_name = sv.placement[vm.name]
        need[host_name] = need.get(host_name, 0) + sv.dr_memory[vm.name]
    for host in sv.target_hosts:
        if host.name not in sv.look.total_mb:
            continue
        used = sv.look.dom0.get(host.name, 0) + sum(sv.look.domains.get(host.name, {}).values())
        free = sv.look.total_mb[host.name] - used
        if need.get(host.name, 0) > free:
            plan.blocking.append(
                Problem(
                    "capacity",
                    f"the drill clones need {need[host.name]} MB on {host.name}, which has {free} MB free "
                    "beside production at its current memory",
                    "drill with production shrunk to its disaster memory (--shrink), or free memory first",
                )
            )


def _start_clone(
    vm: VM, *, host: str, memory_mb: int, snapshots: dict[str, str], bridge: str
) -> PlannedAction:
    """Step 5: start ``vm``'s clone as drill-<vm> from its snapshot's devices, its NICs on
    the isolated drill bridge, once the dom0 sees the clone's devices."""
    group = vm.dr_group
    assert group is not None  # drill_vms are VMs of the drilled groups
    return PlannedAction(
        key=f"start:{vm.name}",
        step=F.START,
        kind=K.START_DRILL_VM,
        target=drill_domain(vm.name),
        host=host,
        params={
            **start_params(vm, memory_mb),
            "domain": drill_domain(vm.name),
            "group": group.name,
            "array": target_array(group).name,
            "snapshot": snapshots[group.name],
            "disks": [[d.target, d.vdev, "w" if d.writable else "r"] for d in vm.disks.all()],
            "vifs": [[nic.mac, bridge] for nic in sorted(vm.interfaces.all(), key=lambda n: n.index)],
        },
        depends_on=[f"integrity:{group.name}"],
    )


def drill_start(*, user, plan: Plan, override_reason: str = "") -> Run:
    """Freeze the drill's plan into a run and start it (the Manager on Duty only)."""
    if not user.has_perm(PERM_DRILL):
        raise PermissionDenied("only the Manager on Duty starts a drill")
    check_override(plan, override_reason, "the drill")
    with transaction.atomic():
        # One drill at a time per surviving site (its domains are named drill-<vm>).
        Site.objects.select_for_update().get(code=plan.target_site)
        up = Run.objects.filter(kind="drill", target_site__code=plan.target_site, cleaned_up_at=None).first()
        if up is not None:
            raise ValidationError(
                {"site": f"drill run {up.pk} is still up at {plan.target_site}: end it first"}
            )
        return run_create(
            plan=plan,
            disaster=None,
            user=user,
            kind=RunKindChoices.DRILL,
            override_reason=override_reason,
            groups=[],
        )


def drill_end(*, user, run_id: int, reason: str = "") -> Run | None:
    """End a drill now: abort it if it still runs, then start its cleanup."""
    if not user.has_perm(PERM_DRILL):
        raise PermissionDenied("only the Manager on Duty ends a drill")
    run = Run.objects.get(pk=run_id)
    if run.kind != RunKindChoices.DRILL:
        raise ValidationError({"run": f"run {run.pk} is a {run.get_kind_display().lower()}, not a drill"})
    if run.cleaned_up_at:
        raise ValidationError(
            {"run": f"drill run {run.pk} was cleaned up at {run.cleaned_up_at:%Y-%m-%d %H:%M}"}
        )
    with transaction.atomic():
        now = timezone.now()
        if run.active:
            Run.objects.filter(pk=run.pk, state__in=R.active()).update(state=R.ABORTED, finished_at=now)
            record_event(
                run_id=run.pk,
                kind="run_aborted",
                message=f"Drill ended by {user.get_username()}" + (f" — reason: {reason}" if reason else ""),
                user=user,
            )
        Run.objects.filter(pk=run.pk).update(hold_until=now)
    return cleanup_create(drill=Run.objects.get(pk=run.pk), user=user)
