"""Failback: after a disaster, move the estate home, planned, and restore the normal
memory profile — generated from the failover's undo ledger.

The failover run recorded how to undo each of its effects: a DR group failed over
("reverse_group": replicate back toward the old source), a VM started at the surviving
site ("shutdown_vm"), a VM or dom0 shrunk ("set_memory", with the memory before). The
failback turns those records into a planned migration back, stopping on any error:

  0 preflight   both sites answer; nothing of the moved VMs already runs at home
  1 replication reverse each group (full copy home) and wait until it is consistent
  2 shutdown    shut the moved VMs down at the surviving site (highest tier first)
  3 storage     final sync, demote at the surviving array, fail over at home, present
  4 start       start the VMs at their home dom0 with their normal memory
  5 memory      give the surviving site's VMs and dom0s their normal memory back
  6 verify      functional checks at home and at the surviving site; no swapping
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from failover.choices import ActionKindChoices as K
from failover.choices import ActionStateChoices as A
from failover.choices import FailbackStep as B
from failover.choices import RunKindChoices, RunModeChoices
from failover.choices import RunStateChoices as R
from failover.models import Run
from hosts.connect import ssh_target
from hosts.drivers.base import DriverError
from hosts.drivers.ssh import SSHPool
from hosts.drivers.xen import XenDriver
from hosts.models import VM, DRGroup, Host, Site
from hosts.selectors import capacity_inputs

from .blocks import (
    final_sync_and_demote,
    functional_checks,
    group_failover,
    host_checks,
    noswap_checks,
    order_starts,
    set_memory,
    shutdown_vm,
    start_vm,
)
from .create import check_override, start_claimed_run
from .forecast import apply_forecast
from .plan import Plan, PlannedAction, Problem

PERM_FAILBACK = "failover.declare_disaster"
FAILS_BACK = (RunKindChoices.FAILOVER, RunKindChoices.MIGRATION)


def _ledger(run: Run, kind: str) -> list[dict]:
    """The undo records of ``kind`` of the actions that took effect, in run order."""
    rows = run.actions.filter(state=A.SUCCEEDED).exclude(undo={}).order_by("step__number", "order")
    return [dict(a.undo, action=a.pk) for a in rows if a.undo.get("kind") == kind]


def build_failback_plan(*, failover: Run, pool: SSHPool | None = None) -> Plan:
    """The failback of ``failover``: from its target site back to the site it lost."""
    home, away = failover.lost_site, failover.target_site
    plan = Plan(lost_site=away.code, target_site=home.code, mode=RunModeChoices.PLANNED)
    plan.kind = RunKindChoices.FAILBACK
    plan.options = {"failover": failover.pk}
    apply_forecast(plan, away.code)
    inputs = capacity_inputs()
    normal_vm = {v.name: v.memory_mb for v in inputs.vms}
    normal_dom0 = {h.name: h.dom0_mb for h in inputs.hosts}

    groups = _ledger(failover, "reverse_group")
    started = _ledger(failover, "shutdown_vm")
    shrunk = _ledger(failover, "set_memory")
    if failover.kind not in FAILS_BACK or failover.state != R.SUCCEEDED:
        plan.blocking.append(
            Problem(
                "not-failed-over",
                f"run {failover.pk} is a {failover.get_kind_display().lower()} in state "
                f"{failover.get_state_display().lower()}: only a finished failover or planned migration can be failed back",
            )
        )
    if Run.objects.filter(parent=failover, kind=RunKindChoices.FAILBACK).exclude(state=R.ABORTED).exists():
        plan.blocking.append(Problem("failback-exists", f"failover run {failover.pk} already has a failback"))

    home_hosts = list(Host.objects.filter(site=home).order_by("name"))
    away_hosts = list(Host.objects.filter(site=away).order_by("name"))
    vms = {
        vm.name: vm
        for vm in VM.objects.filter(name__in=[s["vm"] for s in started])
        .select_related("home_host", "dr_group__source_array", "dr_group__target_array")
        .prefetch_related("checks", "depends_on")
    }
    _look_at_both_sites(plan, home_hosts + away_hosts, home=home, away=away, moved=vms, pool=pool)

    actions = host_checks(home_hosts + away_hosts, step=B.PREFLIGHT)
    known_groups = set(
        DRGroup.objects.filter(name__in=[g["group"] for g in groups]).values_list("name", flat=True)
    )
    first_home_host: dict[str, str] = {}
    for vm in vms.values():
        if vm.dr_group is not None:
            first_home_host.setdefault(vm.dr_group.name, vm.home_host.name)
    for record in groups:
        group, now_primary, home_array = record["group"], record["array"], record["source_array"]
        actions += _reverse_and_sync(group, array=now_primary, source_array=home_array)
        actions += final_sync_and_demote(
            group, array=now_primary, source_array=home_array, step=B.STORAGE, tier=0
        )
        actions.append(
            group_failover(
                group,
                array=home_array,
                source_array=now_primary,
                present_to=first_home_host.get(group),
                tier=2,
                step=B.STORAGE,
            )
        )
        if group not in known_groups:
            plan.blocking.append(Problem("unknown-group", f"DR group {group} is no longer in the inventory"))
    failed_over = {g["group"] for g in groups}
    max_tier = max((vm.tier for vm in vms.values()), default=0)
    for record in started:
        moved = vms.get(record["vm"])
        if moved is None:
            plan.blocking.append(Problem("unknown-vm", f"{record['vm']} is no longer in the inventory"))
            continue
        actions.append(
            shutdown_vm(moved.name, host=record["host"], tier=max_tier - moved.tier, step=B.SHUTDOWN)
        )
        group_name = moved.dr_group.name if moved.dr_group is not None else None
        memory = normal_vm[moved.name]
        plan.starts.append(
            {"vm": moved.name, "host": moved.home_host.name, "memory_mb": memory, "tier": moved.tier}
        )
        actions.append(
            start_vm(
                moved,
                host=moved.home_host.name,
                memory_mb=memory,
                step=B.START,
                depends_on=[f"storage:{group_name}"] if group_name in failed_over else [],
            )
        )
        actions += functional_checks(moved, moved.home_host.name, after=f"start:{moved.name}")
    for record in shrunk:
        name, host = record["vm"], record["host"]
        if name == "Domain-0":
            target = normal_dom0.get(host, record.get("memory_mb"))
            label = f"Domain-0 on {host}"
        else:
            target = normal_vm.get(name, record.get("memory_mb"))
            label = name
        plan.memory_changes.append({"vm": name, "host": host, "to_mb": target})
        actions.append(
            set_memory(
                key=f"memory:{name}@{host}", vm=name, target=label, host=host, memory_mb=target, step=B.MEMORY
            )
        )
    actions += noswap_checks(home_hosts + away_hosts, step=B.VERIFY)
    plan.actions = order_starts(actions)
    plan.groups = sorted(g["group"] for g in groups)
    return plan


def _look_at_both_sites(plan: Plan, hosts: list[Host], *, home: Site, away: Site, moved: dict, pool) -> None:
    """A live look: is every dom0 of both sites up, and does any moved VM run at home already?"""
    owns = pool is None
    pool = pool or SSHPool()
    try:
        for host in hosts:
            try:
                domains = XenDriver(pool.get(ssh_target(host)), host.toolstack).list_domains()
            except DriverError as exc:
                # Nothing can move home to (or away from) a dom0 that does not answer.
                where = home.code if host.site_id == home.pk else away.code
                plan.blocking.append(
                    Problem(
                        "unreachable",
                        f"{host.name} at {where} is unreachable: {exc}",
                        f"bring {host.name} up first, then fail back",
                        hard=True,
                    )
                )
                continue
            if host.site_id != home.pk:
                continue
            for d in domains:
                if d.name in moved and d.is_alive:
                    plan.blocking.append(
                        Problem(
                            "running-twice",
                            f"{d.name} already runs at home on {host.name} while its failed-over copy runs at {away.code}",
                            f"shut the stale copy down on {host.name} (xl shutdown {d.name}) before failing back",
                        )
                    )
    finally:
        if owns:
            pool.close()


def _reverse_and_sync(group: str, *, array: str, source_array: str) -> list[PlannedAction]:
    """Step 1: at ``array`` (primary since the failover) replicate back toward the old
    source (tier 0), then wait until the copy is consistent (tier 1)."""
    common = {"group": group, "array": array, "source_array": source_array}
    return [
        PlannedAction(
            key=f"reverse:{group}",
            step=B.REPLICATION,
            kind=K.REVERSE_GROUP,
            target=group,
            host=array,
            params={**common, "tier": 0},
        ),
        PlannedAction(
            key=f"sync:{group}",
            step=B.REPLICATION,
            kind=K.WAIT_CONSISTENT,
            target=group,
            host=array,
            params={**common, "tier": 1},
        ),
    ]


def failback_start(*, user, failover_id: int, plan: Plan | None = None, override_reason: str = "") -> Run:
    """Freeze the failback plan into a run and start it (the Manager on Duty only)."""
    if not user.has_perm(PERM_FAILBACK):
        raise PermissionDenied("only the Manager on Duty starts a failback")
    failover = Run.objects.select_related("lost_site", "target_site").get(pk=failover_id)
    plan = plan or build_failback_plan(failover=failover)
    check_override(plan, override_reason, "the failback")
    return start_claimed_run(
        plan=plan, user=user, kind=RunKindChoices.FAILBACK, override_reason=override_reason, parent=failover
    )
