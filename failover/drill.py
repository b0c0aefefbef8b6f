"""Drills: the failover rehearsed on clones, beside production, then cleaned up.

A drill of site X (the site whose loss it rehearses) snapshots the replicas of X's DR
groups on the surviving array, presents the snapshots to the surviving dom0s, starts
each VM as ``drill-<vm>`` from the snapshot devices with its NICs on the site's isolated
drill bridge and its disaster memory, and runs the VMs' functional checks against their
drill addresses. Production at the surviving site is not shrunk unless the drill asks.
Nothing at site X is touched, and no DR group changes role.

The cleanup is a run of its own, generated from the drill's undo ledger (every action
records how to undo what it did); it starts when the drill ends (at once, or after the
hold the MoD asked for), and a drill left up past ``DRPORTAL_DRILL_MAX_S`` is stopped
and cleaned up by the reaper.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from hosts.drivers.ssh import SSHPool
from hosts.models import Site

from .choices import CLEANUP_STEPS, RunKindChoices, RunModeChoices
from .choices import ActionStateChoices as A
from .choices import RunStateChoices as R
from .events import record_event
from .models import Run
from .plan import (
    Plan,
    PlannedAction,
    Problem,
    apply_forecast,
    config_missing,
    config_warnings,
    dom0_shrinks,
    drill_up_problems,
    group_problems,
    survey,
    unreachable_problems,
)

log = logging.getLogger(__name__)

PERM_DRILL = "failover.declare_disaster"  # the Manager on Duty runs drills
DRILL_PREFIX = "drill-"


def drill_bridge(site_code: str) -> str:
    bridges = getattr(settings, "DRPORTAL_DRILL_BRIDGES", {}) or {}
    return bridges.get(site_code) or getattr(settings, "DRPORTAL_DRILL_BRIDGE", "xenbr-drill")


def drill_domain(vm: str) -> str:
    return f"{DRILL_PREFIX}{vm}"


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
    plan.warnings.extend(config_warnings(look))
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
    from .plan import _order_starts

    plan.actions = _order_starts(actions)
    plan.groups = sorted(sv.groups)
    return plan


# -- starting a drill, ending it, cleaning up ------------------------------------------------


def drill_start(*, user, plan: Plan, override_reason: str = "") -> Run:
    """Freeze the drill's plan into a run and start it (the Manager on Duty only)."""
    from .services import _run_create, check_override

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
        return _run_create(
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


def _undo_of(action) -> dict | None:
    """The undo of one drill action: what its ledger says, or, if it was attempted but
    the worker died before recording, what it would have recorded."""
    if action.undo:
        return action.undo
    if action.attempt == 0 and action.state in (A.PENDING, A.SKIPPED):
        return None
    p = action.params
    if action.kind == "start_drill_vm":
        return {"kind": "destroy_domain", "domain": p["domain"], "host": action.host}
    if action.kind == "clone_group":
        return {
            "kind": "delete_snapshot",
            "snapshot": p["snapshot"],
            "array": p["array"],
            "hosts": [p["present_to"]] if p.get("present_to") else [],
        }
    return None


def cleanup_plan(drill: Run) -> Plan:
    """The cleanup of ``drill``, generated from its undo ledger, newest effect first."""
    plan = Plan(
        lost_site=drill.lost_site.code, target_site=drill.target_site.code, mode=RunModeChoices.PLANNED
    )
    plan.kind = RunKindChoices.CLEANUP
    plan.options = {"drill": drill.pk}
    plan.step_minutes = {n: float(m) for n, _k, _name, m in CLEANUP_STEPS}
    actions: list[PlannedAction] = []
    hosts, arrays, snapshots = set(), set(), []
    for action in drill.actions.order_by("-step__number", "-order"):
        undo = _undo_of(action)
        if not undo:
            continue
        if undo["kind"] == "destroy_domain":
            hosts.add(undo["host"])
            actions.append(
                PlannedAction(
                    f"stop:{undo['domain']}",
                    0,
                    "destroy_drill_domain",
                    undo["domain"],
                    undo["host"],
                    {**undo, "of": action.pk},
                )
            )
        elif undo["kind"] == "set_memory":
            actions.append(
                PlannedAction(
                    f"memory:{undo['vm']}",
                    1,
                    "set_memory",
                    undo["vm"],
                    undo["host"],
                    {"vm": undo["vm"], "memory_mb": undo["memory_mb"], "of": action.pk},
                )
            )
        elif undo["kind"] == "delete_snapshot":
            arrays.add(undo["array"])
            snapshots.append(undo["snapshot"])
            actions.append(
                PlannedAction(
                    f"storage:{undo['snapshot']}",
                    2,
                    "delete_snapshot",
                    undo["snapshot"],
                    undo["array"],
                    {**undo, "of": action.pk},
                )
            )
    for host in sorted(hosts | {a.host for a in drill.actions.filter(kind="check_host")}):
        actions.append(PlannedAction(f"verify:{host}", 3, "verify_drill_gone", host, host, {"host": host}))
    for array in sorted(arrays):
        actions.append(
            PlannedAction(
                f"verify:{array}",
                3,
                "verify_drill_gone",
                array,
                array,
                {"array": array, "snapshots": sorted(snapshots)},
            )
        )
    plan.actions = actions
    return plan


def cleanup_create(*, drill: Run, user=None) -> Run | None:
    """Start the cleanup of ``drill`` (once: a second call, or a second reaper, gets the
    same run back)."""
    from .services import _run_create

    existing = drill.followups.filter(kind=RunKindChoices.CLEANUP).first()
    if existing:
        return existing
    plan = cleanup_plan(drill)
    try:
        with transaction.atomic():
            run = _run_create(
                plan=plan,
                disaster=None,
                user=user or drill.created_by,
                kind=RunKindChoices.CLEANUP,
                override_reason="",
                groups=[],
                parent=drill,
            )
            record_event(
                run_id=drill.pk,
                kind="cleanup_started",
                message=f"Cleanup started as run {run.pk}: {len(plan.actions)} actions from the undo ledger",
                data={"cleanup_run": run.pk},
            )
            return run
    except IntegrityError:
        return drill.followups.filter(kind=RunKindChoices.CLEANUP).first()


def held_until(drill: Run):
    """Until when a finished drill's clones stay up for people to test: the hold the
    MoD asked for after its end, unless ended earlier."""
    if drill.hold_until is not None:
        return drill.hold_until
    minutes = float(drill.plan.get("options", {}).get("hold_minutes") or 0)
    return (drill.finished_at or drill.created_at) + timedelta(minutes=minutes)


def followups(now=None) -> dict:
    """Run by the reaper: start the cleanup of drills that ended (and are not held),
    stop and clean up drills left up past the limit, and mark drills clean when their
    cleanup succeeded."""
    now = now or timezone.now()
    limit = timedelta(seconds=float(getattr(settings, "DRPORTAL_DRILL_MAX_S", 4 * 3600)))
    done = {"cleanups": 0, "expired": 0, "cleaned": 0}
    drills = Run.objects.filter(kind=RunKindChoices.DRILL, cleaned_up_at=None).select_related(
        "lost_site", "target_site", "created_by"
    )
    for drill in drills:
        cleanup = drill.followups.filter(kind=RunKindChoices.CLEANUP).first()
        if cleanup is not None:
            if cleanup.state == R.SUCCEEDED:
                Run.objects.filter(pk=drill.pk, cleaned_up_at=None).update(
                    cleaned_up_at=cleanup.finished_at or now
                )
                record_event(
                    run_id=drill.pk,
                    kind="cleaned_up",
                    message=f"Drill cleaned up by run {cleanup.pk}: nothing of it is left",
                )
                done["cleaned"] += 1
            continue
        expired = drill.created_at + limit <= now
        if drill.active and not expired:
            continue
        if held_until(drill) > now and drill.state == R.SUCCEEDED and not expired:
            continue
        if expired:
            if Run.objects.filter(pk=drill.pk, state__in=R.active()).update(state=R.ABORTED, finished_at=now):
                record_event(
                    run_id=drill.pk,
                    kind="run_aborted",
                    message=f"Drill stopped: it was up longer than the limit of {limit}",
                )
            done["expired"] += 1
        if cleanup_create(drill=drill):
            done["cleanups"] += 1
    return done
