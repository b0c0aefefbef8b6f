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

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from failover.actions.drill import DRILL_PREFIX, drill_domain
from failover.choices import RunKindChoices, RunModeChoices
from failover.choices import RunStateChoices as R
from failover.engine.journal import record_event
from failover.models import Run
from hosts.drivers.ssh import SSHPool
from hosts.models import Site

from .blocks import dom0_shrinks, order_starts
from .cleanup import cleanup_create
from .create import check_override, run_create
from .forecast import apply_forecast
from .plan import Plan, PlannedAction, Problem
from .survey import config_missing, drill_up_problems, group_problems, survey, unreachable_problems

log = logging.getLogger(__name__)


PERM_DRILL = "failover.declare_disaster"  # the Manager on Duty runs drills


def drill_bridge(site_code: str) -> str:
    bridges = getattr(settings, "DRPORTAL_DRILL_BRIDGES", {}) or {}
    return bridges.get(site_code) or getattr(settings, "DRPORTAL_DRILL_BRIDGE", "xenbr-drill")


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
    sv = survey(lost_site=site, pool=pool)
    if vms:
        unknown = sorted(set(vms) - set(sv.vms))
        if unknown:
            raise ValueError(f"not VMs of the estate that {site}'s loss would move: {', '.join(unknown)}")
        keep = {sv.vms[v].dr_group.name for v in vms if sv.vms[v].dr_group}
        sv.groups = {name: g for name, g in sv.groups.items() if name in keep}
    look = sv.look
    plan = Plan(lost_site=sv.lost.code, target_site=sv.target_site.code, mode=RunModeChoices.PLANNED)
    plan.kind = RunKindChoices.DRILL
    stamp = timezone.now().strftime("%y%m%d%H%M%S")
    plan.options = {"shrink": shrink, "hold_minutes": hold_minutes, "stamp": stamp, "vms": sorted(vms or [])}
    apply_forecast(plan, sv.lost.code)
    bridge = drill_bridge(sv.target_site.code)

    plan.blocking.extend(unreachable_problems(look))
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

    running_at_target = {d: h for h, doms in look.domains.items() for d in doms}
    for host in sv.target_hosts:
        if host.name in look.bridges and bridge not in look.bridges[host.name]:
            plan.blocking.append(
                Problem(
                    "drill-bridge",
                    f"{host.name} has no isolated drill bridge {bridge}: the clones would have no network",
                    f"create the bridge {bridge} (without an uplink) on {host.name}",
                )
            )
    actions: list[PlannedAction] = []
    for host in sv.target_hosts:
        actions.append(PlannedAction(f"preflight:{host.name}", 0, "check_host", host.name, host.name))
        actions.append(PlannedAction(f"inventory:{host.name}", 1, "inventory_host", host.name, host.name))
    present_to: dict[str, str] = {}
    drill_vms = []
    for vm_name in sorted(sv.vms, key=lambda n: (sv.vms[n].tier, n)):
        vm = sv.vms[vm_name]
        if vm_name in running_at_target or vm.dr_group is None or vm.dr_group.name not in sv.groups:
            continue
        if vms and vm_name not in vms:
            continue
        drill_vms.append(vm)
        present_to.setdefault(vm.dr_group.name, sv.placement[vm_name])
    snapshots = {g: f"{DRILL_PREFIX}{stamp}-{g}" for g in sv.groups}
    for group in sv.groups.values():
        array = group.target_array.name
        actions.append(
            PlannedAction(
                f"preflight:{group.name}",
                0,
                "check_group",
                group.name,
                array,
                {"group": group.name, "array": array},
            )
        )
        params = {
            "group": group.name,
            "array": array,
            "snapshot": snapshots[group.name],
            "present_to": present_to.get(group.name),
        }
        actions.append(PlannedAction(f"storage:{group.name}", 2, "clone_group", group.name, array, params))
        actions.append(
            PlannedAction(
                f"integrity:{group.name}",
                3,
                "check_clone",
                group.name,
                params["present_to"] or array,
                {**params, "devices": sorted(d.target for vm in group.vms.all() for d in vm.disks.all())},
            )
        )

    # Memory: beside production at its current memory, unless the drill shrinks it.
    need: dict[str, int] = {}
    for vm in drill_vms:
        host_name = sv.placement[vm.name]
        need[host_name] = need.get(host_name, 0) + sv.dr_memory[vm.name]
    if shrink:
        if not sv.capacity.fits:
            plan.blocking.append(
                Problem("capacity", "the disaster profile does not fit without swapping, even shrunk")
            )
        for vm_name, host_name in sorted(running_at_target.items()):
            if vm_name in sv.dr_memory and look.domains[host_name][vm_name] != sv.dr_memory[vm_name]:
                target = sv.dr_memory[vm_name]
                plan.memory_changes.append(
                    {
                        "vm": vm_name,
                        "host": host_name,
                        "from_mb": look.domains[host_name][vm_name],
                        "to_mb": target,
                    }
                )
                actions.append(
                    PlannedAction(
                        f"shrink:{vm_name}",
                        4,
                        "set_memory",
                        vm_name,
                        host_name,
                        {"vm": vm_name, "memory_mb": target},
                    )
                )
        actions.extend(dom0_shrinks(sv, plan, always=False))
    else:
        for host in sv.target_hosts:
            if host.name not in look.total_mb:
                continue
            used = look.dom0.get(host.name, 0) + sum(look.domains.get(host.name, {}).values())
            free = look.total_mb[host.name] - used
            if need.get(host.name, 0) > free:
                plan.blocking.append(
                    Problem(
                        "capacity",
                        f"the drill clones need {need[host.name]} MB on {host.name}, which has {free} MB free "
                        "beside production at its current memory",
                        "drill with production shrunk to its disaster memory (--shrink), or free memory first",
                    )
                )
    for vm in drill_vms:
        host_name = sv.placement[vm.name]
        missing = config_missing(sv, vm, host_name)
        if missing:
            plan.blocking.append(missing)
        group = vm.dr_group.name
        plan.starts.append(
            {"vm": vm.name, "host": host_name, "memory_mb": sv.dr_memory[vm.name], "tier": vm.tier}
        )
        actions.append(
            PlannedAction(
                f"start:{vm.name}",
                5,
                "start_drill_vm",
                drill_domain(vm.name),
                host_name,
                {
                    "vm": vm.name,
                    "domain": drill_domain(vm.name),
                    "config_path": vm.config_path,
                    "memory_mb": sv.dr_memory[vm.name],
                    "tier": vm.tier,
                    "depends_on_vms": sorted(d.name for d in vm.depends_on.all()),
                    "group": group,
                    "array": vm.dr_group.target_array.name,
                    "snapshot": snapshots[group],
                    "disks": [[d.target, d.vdev, "w" if d.writable else "r"] for d in vm.disks.all()],
                    "vifs": [[nic.mac, bridge] for nic in sorted(vm.interfaces.all(), key=lambda n: n.index)],
                },
                [f"integrity:{group}"],
            )
        )
        for check in vm.checks.all():
            actions.append(
                PlannedAction(
                    f"verify:{vm.name}:{check.pk}",
                    6,
                    "functional_check",
                    f"{drill_domain(vm.name)}: {check.name}",
                    host_name,
                    {"vm": vm.name, "check_id": check.pk, "check": check.name, "drill": True},
                    [f"start:{vm.name}"],
                    optional=True,
                )
            )
    for host in sv.target_hosts:
        actions.append(PlannedAction(f"verify:noswap:{host.name}", 6, "check_no_swap", host.name, host.name))
    plan.actions = order_starts(actions)
    plan.groups = sorted(sv.groups)
    return plan


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
