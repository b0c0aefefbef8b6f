"""The plan of a failover: computed from the inventory plus a live look at the
surviving site, shown before anything starts, frozen into Steps and Actions at start.

Blocking problems stop a run unless the MoD overrides them with a typed reason.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from hosts.capacity import check_scenario
from hosts.connect import ssh_target, storage_driver
from hosts.drivers.base import DriverError
from hosts.drivers.ssh import SSHPool
from hosts.drivers.xen import XenDriver
from hosts.models import VM, DRGroup, Host, Site
from hosts.selectors import capacity_inputs, reserve_mb

from .choices import STEPS

log = logging.getLogger(__name__)


@dataclass
class Problem:
    code: str
    message: str
    fix: str = ""


@dataclass
class PlannedAction:
    key: str  # unique within the plan, e.g. "start:proxy-xen01"
    step: int
    kind: str
    target: str
    host: str  # the SSH host it talks to
    params: dict = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)
    optional: bool = False


@dataclass
class Plan:
    lost_site: str
    target_site: str
    mode: str
    actions: list[PlannedAction] = field(default_factory=list)
    already_running: list[dict] = field(default_factory=list)
    memory_changes: list[dict] = field(default_factory=list)
    starts: list[dict] = field(default_factory=list)
    unrecoverable: list[dict] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    blocking: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    step_minutes: dict[int, float] = field(default_factory=dict)

    @property
    def predicted_minutes(self) -> float:
        return sum(self.step_minutes.values())

    def as_dict(self) -> dict:
        data = asdict(self)
        data["predicted_minutes"] = self.predicted_minutes
        return data


@dataclass
class LiveLook:
    """What the surviving site says right now."""

    domains: dict[str, dict[str, int]] = field(default_factory=dict)  # host -> {domain: memory}
    dom0: dict[str, int] = field(default_factory=dict)
    total_mb: dict[str, int] = field(default_factory=dict)
    missing_files: dict[str, list[str]] = field(default_factory=dict)
    bridges: dict[str, list[str]] = field(default_factory=dict)
    group_status: dict[str, dict] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)


def parse_brctl_show(text: str) -> list[str]:
    """Bridge names from `brctl show`: the first word of every line that does not start
    with white space (continuation lines list more interfaces of the same bridge)."""
    lines = text.splitlines()[1:]
    return [line.split()[0] for line in lines if line.strip() and not line[0].isspace()]


LOOK_THREADS = 16
GROUPS_PER_THREAD = 32


def _look_host(host: Host, paths: list[str], pool: SSHPool, look: LiveLook) -> None:
    try:
        conn = pool.get(ssh_target(host))
        xen = XenDriver(conn, host.toolstack)
        domains = xen.list_domains()
        look.total_mb[host.name] = xen.info().total_memory_mb
        look.domains[host.name] = {d.name: d.memory_mb for d in domains if not d.is_dom0 and d.is_alive}
        look.dom0[host.name] = next((d.memory_mb for d in domains if d.is_dom0), 0)
        if paths:
            # One round trip for all config files: GNU ls names each missing one.
            result = conn.run(["ls", "-d", "--", *paths])
            missing = [p for p in paths if f"'{p}'" in result.stderr or f" {p}:" in result.stderr]
            if result.exit_status not in (0, 2) or (result.exit_status == 2 and not missing):
                # An answer we cannot read is not "nothing missing".
                look.unreachable[host.name] = f"cannot check config files: {result.stderr.strip()}"
            look.missing_files[host.name] = missing
        bridges = conn.run(["brctl", "show"])
        if bridges.ok:
            look.bridges[host.name] = parse_brctl_show(bridges.stdout)
    except DriverError as exc:
        look.unreachable[host.name] = str(exc)


def _look_groups(array, groups: list[DRGroup], look: LiveLook) -> None:
    # Its own connection: several chunks of one array's groups are read in parallel.
    with SSHPool() as pool:
        try:
            driver = storage_driver(array, pool.get(ssh_target(array)) if array.kind != "manual" else None)
            for group in groups:
                status = driver.status(group.name)
                look.group_status[group.name] = {
                    "role": status.role,
                    "replication": status.replication,
                    "lag_seconds": status.lag_seconds,
                    "presented_to": list(status.presented_to),
                    "detail": status.detail,
                }
        except DriverError as exc:
            if array.kind != "manual":
                look.unreachable.setdefault(array.name, str(exc))


def _look(
    target_hosts: list[Host], configs_by_host: dict[str, list[str]], groups: list[DRGroup], pool: SSHPool
) -> LiveLook:
    """Ask every surviving dom0 and array at once (threads): a plan of hundreds of VMs
    must not take minutes to preview at 3 a.m."""
    look = LiveLook()
    by_array: dict[str, list[DRGroup]] = defaultdict(list)
    for group in groups:
        by_array[group.target_array.name].append(group)
    with ThreadPoolExecutor(max_workers=LOOK_THREADS, thread_name_prefix="plan-look") as threads:
        jobs = [
            threads.submit(_look_host, host, sorted(set(configs_by_host.get(host.name, ()))), pool, look)
            for host in target_hosts
        ]
        for members in by_array.values():
            array = members[0].target_array
            for i in range(0, len(members), GROUPS_PER_THREAD):
                jobs.append(threads.submit(_look_groups, array, members[i : i + GROUPS_PER_THREAD], look))
        for job in jobs:
            job.result()
    return look


def build_plan(*, lost_site: str, mode: str = "disaster", pool: SSHPool | None = None) -> Plan:
    """The failover plan for losing ``lost_site``. Talks to the surviving site over SSH."""
    lost = Site.objects.get(code=lost_site)
    survivors = list(Site.objects.exclude(pk=lost.pk).order_by("code"))
    if not survivors:
        raise ValueError(f"no site survives the loss of {lost_site}")
    target_site = survivors[0]
    plan = Plan(lost_site=lost.code, target_site=target_site.code, mode=mode)
    plan.step_minutes = {number: float(minutes) for number, _key, _name, minutes in STEPS}

    inputs = capacity_inputs(lost_site=lost.code)
    scenario = next(s for s in inputs.scenarios if s.lost_site == lost.code)
    capacity = check_scenario(inputs.hosts, inputs.vms, scenario, reserve_mb=reserve_mb())
    placement = {vm: h.host for h in capacity.hosts for vm, _mb in h.placed}
    dr_memory = {vm: mb for h in capacity.hosts for vm, mb in h.placed}
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

    target_hosts = list(Host.objects.filter(site=target_site).order_by("name"))
    host_by_name = {h.name: h for h in target_hosts}
    vms = {
        vm.name: vm
        for vm in VM.objects.filter(name__in=placement)
        .select_related("dr_group__source_array__site", "dr_group__target_array__site", "home_host")
        .prefetch_related("interfaces", "depends_on", "checks")
    }
    # VMs homed at the surviving site run there already (observed live below);
    # the others need their DR group failed over, then a start.
    groups: dict[str, DRGroup] = {}
    for vm in vms.values():
        if vm.home_host.site_id != target_site.pk and vm.dr_group and vm.dr_group.target_array:
            groups[vm.dr_group.name] = vm.dr_group
    configs_by_host: dict[str, list[str]] = defaultdict(list)
    for name, vm in vms.items():
        if vm.home_host.site_id != target_site.pk:
            configs_by_host[placement[name]].append(vm.config_path)
    owns_pool = pool is None
    pool = pool or SSHPool()
    try:
        look = _look(target_hosts, configs_by_host, list(groups.values()), pool)
    finally:
        if owns_pool:
            pool.close()
    for name, error in look.unreachable.items():
        plan.blocking.append(
            Problem(
                "unreachable",
                f"{name} at the surviving site is unreachable: {error}",
                "bring it up, then look again",
            )
        )

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

    for group in groups.values():
        status = look.group_status.get(group.name)
        if status is None:
            continue
        if status["replication"] in {"broken", "none"} and status["role"] != "primary":
            plan.blocking.append(
                Problem(
                    "group-inconsistent",
                    f"DR group {group.name} at {group.target_array.name} is not consistent "
                    f"({status['replication']}): {status['detail']}",
                    "ask the storage team to repair replication, or override with a reason to fail over stale data",
                )
            )
        elif status["replication"] not in {"consistent", "suspended"} and status["role"] != "primary":
            plan.warnings.append(
                f"DR group {group.name}: replication {status['replication']} ({status['detail']})"
            )

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
            actions.extend(_checks(vm, running_host, after=f"shrink:{vm_name}"))
            continue
        if vm.config_path in look.missing_files.get(host_name, ()):
            plan.blocking.append(
                Problem(
                    "config-missing",
                    f"{vm_name}'s config file {vm.config_path} is missing on {host_name}",
                    f"copy it to {host_name}:{vm.config_path}",
                )
            )
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
        actions.extend(_checks(vm, host_name, after=f"start:{vm_name}"))
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
    for host in target_hosts:
        dom0_target = scenario.dom0_memory.get(host.name)
        current = look.dom0.get(host.name)
        if dom0_target and current is not None and current != dom0_target:
            plan.memory_changes.append(
                {"vm": "Domain-0", "host": host.name, "from_mb": current, "to_mb": dom0_target}
            )
        if dom0_target:
            actions.append(
                PlannedAction(
                    f"shrink:Domain-0@{host.name}",
                    4,
                    "set_memory",
                    f"Domain-0 on {host.name}",
                    host.name,
                    {"vm": "Domain-0", "memory_mb": dom0_target},
                )
            )
        actions.append(
            PlannedAction(
                f"verify:noswap:{host.name}", 6, "check_no_swap", host.name, host.name, {}, optional=False
            )
        )
    plan.actions = _order_starts(actions)
    plan.groups = sorted(groups)
    return plan


def _checks(vm: VM, host_name: str, *, after: str) -> list[PlannedAction]:
    """Step 6, thesis tables 3.1/3.2: every check of every VM at the surviving site, those
    that ran there already included. A failed check is recorded; the run goes on."""
    return [
        PlannedAction(
            f"verify:{vm.name}:{check.pk}",
            6,
            "functional_check",
            f"{vm.name}: {check.name}",
            host_name,
            {"vm": vm.name, "check_id": check.pk, "check": check.name},
            [after],
            optional=True,
        )
        for check in vm.checks.all()
    ]


def _order_starts(actions: list[PlannedAction]) -> list[PlannedAction]:
    """Starts go after the VMs they depend on (explicit edges); tiers are ordered by the
    engine (a lower tier of a step finishes before a higher one starts), which needs no
    edges, so a plan of n starts does not carry n² of them."""
    starts = {a.params["vm"]: a for a in actions if a.kind == "start_vm"}
    for action in starts.values():
        for vm in action.params["depends_on_vms"]:
            if vm in starts:
                action.depends_on.append(starts[vm].key)
    return sorted(actions, key=lambda a: (a.step, a.params.get("tier", 0), a.key))
