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
from hosts.drivers.storage import StorageError, driver_class
from hosts.drivers.xen import ConfigParseError, XenDriver
from hosts.models import VM, DRGroup, Host, Site
from hosts.selectors import capacity_inputs, reserve_mb

from .choices import steps_for

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
    kind: str = "failover"
    forecast: dict = field(default_factory=dict)  # where step_minutes come from
    options: dict = field(default_factory=dict)  # a drill's shrink and hold, a failback's parent

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
    # What xl would start from each config to be started, read as xl reads it (one `cat` per
    # file): warnings for what drportal does not interpret, and the error of one xl refuses.
    config_warnings: dict[str, list[str]] = field(default_factory=dict)  # "host:path" -> warnings
    config_errors: dict[str, dict[str, str]] = field(default_factory=dict)  # host -> path -> error


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
            for path in (p for p in paths if p not in missing):
                try:
                    warnings = xen.read_vm_config(path).warnings
                except ConfigParseError as exc:
                    look.config_errors.setdefault(host.name, {})[path] = str(exc)
                else:
                    if warnings:
                        look.config_warnings[f"{host.name}:{path}"] = list(warnings)
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
            for name, status in driver.statuses([group.name for group in groups]).items():
                look.group_status[name] = {
                    "role": status.role,
                    "replication": status.replication,
                    "lag_seconds": status.lag_seconds,
                    "presented_to": list(status.presented_to),
                    "detail": status.detail,
                }
        except DriverError as exc:
            if array.kind != "manual":
                look.unreachable.setdefault(array.name, str(exc))


def _bulk(kind: str) -> bool:
    try:
        return driver_class(kind).bulk_status
    except StorageError:
        return False  # the group's own look reports the unknown kind


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
            # An array that lists every group in one call is asked once; else chunks in parallel.
            chunk = len(members) if _bulk(array.kind) else GROUPS_PER_THREAD
            for i in range(0, len(members), chunk):
                jobs.append(threads.submit(_look_groups, array, members[i : i + chunk], look))
        for job in jobs:
            job.result()
    return look


def apply_forecast(plan: Plan, site_code: str) -> None:
    """Predicted minutes per step: the measured step times of the last successful drill
    of this site (steps are barriers, so their sum is the critical path), else the
    thesis' planned minutes. A failback, whose steps a drill does not rehearse, uses the
    last failback from this site. A drill (or failback) more than 20 % slower than the
    one before is flagged."""
    from .selectors import drill_history

    plan.step_minutes = {number: float(minutes) for number, _key, _name, minutes in steps_for(plan.kind)}
    source = "failback" if plan.kind == "failback" else "drill"
    history = drill_history(site_code, limit=2, kind=source)
    if not history:
        plan.forecast = {"source": "thesis", "detail": f"planned minutes (no {source} measured yet)"}
        return
    last = history[0]
    measured = {s["key"]: s["actual_minutes"] for s in last["steps"]}
    for number, key, _name, _minutes in steps_for(plan.kind):
        if key in measured:
            plan.step_minutes[number] = round(float(measured[key]), 3)
    plan.forecast = {
        "source": source,
        "run": last["run"],
        "finished_at": last["finished_at"],
        "detail": f"measured step times of {source} run {last['run']} ({last['finished_at'][:16]})",
    }
    if last.get("slower_pct") is not None and last["slower_pct"] > 20:
        plan.warnings.append(
            f"the last {source} (run {last['run']}) took {last['minutes']:.1f} min, "
            f"{last['slower_pct']:.0f} % slower than the one before (run {last['previous_run']}): find out why"
        )


def drill_up_problems(target_site: Site) -> list[Problem]:
    """A drill still up at the surviving site holds memory and clones: end it first."""
    from .models import Run

    up = Run.objects.filter(kind="drill", target_site=target_site, cleaned_up_at__isnull=True).order_by("pk")
    return [
        Problem(
            "drill-up",
            f"drill run {run.pk} is still up at {target_site.code}: its clones hold memory and snapshots",
            f"end the drill (run {run.pk}) and let its cleanup finish, or override with a reason",
        )
        for run in up
    ]


@dataclass
class Survey:
    """The inventory and the live look at the surviving site, shared by every plan kind."""

    lost: Site
    target_site: Site
    scenario: object
    capacity: object
    placement: dict[str, str]  # VM -> host at the surviving site
    dr_memory: dict[str, int]
    target_hosts: list[Host]
    host_by_name: dict[str, Host]
    vms: dict[str, VM]
    groups: dict[str, DRGroup]  # the DR groups that move to the surviving site
    look: LiveLook


def survey(*, lost_site: str, pool: SSHPool | None = None) -> Survey:
    """What losing ``lost_site`` means: where each VM goes and with how much memory (the
    capacity proof), and what the surviving dom0s and arrays say right now."""
    lost = Site.objects.get(code=lost_site)
    survivors = list(Site.objects.exclude(pk=lost.pk).order_by("code"))
    if not survivors:
        raise ValueError(f"no site survives the loss of {lost_site}")
    target_site = survivors[0]
    inputs = capacity_inputs(lost_site=lost.code)
    scenario = next(s for s in inputs.scenarios if s.lost_site == lost.code)
    capacity = check_scenario(inputs.hosts, inputs.vms, scenario, reserve_mb=reserve_mb())
    placement = {vm: h.host for h in capacity.hosts for vm, _mb in h.placed}
    dr_memory = {vm: mb for h in capacity.hosts for vm, mb in h.placed}
    target_hosts = list(Host.objects.filter(site=target_site).order_by("name"))
    vms = {
        vm.name: vm
        for vm in VM.objects.filter(name__in=placement)
        .select_related("dr_group__source_array__site", "dr_group__target_array__site", "home_host")
        .prefetch_related("interfaces", "depends_on", "checks", "disks")
    }
    # VMs homed at the surviving site run there already (observed live);
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
    return Survey(
        lost=lost,
        target_site=target_site,
        scenario=scenario,
        capacity=capacity,
        placement=placement,
        dr_memory=dr_memory,
        target_hosts=target_hosts,
        host_by_name={h.name: h for h in target_hosts},
        vms=vms,
        groups=groups,
        look=look,
    )


def config_warnings(look: LiveLook) -> list[str]:
    """What xl would start that drportal does not interpret, config by config."""
    return [
        f"config {where}: {warning}"
        for where, warnings in sorted(look.config_warnings.items())
        for warning in warnings
    ]


def unreachable_problems(look: LiveLook) -> list[Problem]:
    return [
        Problem(
            "unreachable",
            f"{name} at the surviving site is unreachable: {error}",
            "bring it up, then look again",
        )
        for name, error in look.unreachable.items()
    ]


def group_problems(sv: Survey, plan: Plan) -> None:
    for group in sv.groups.values():
        status = sv.look.group_status.get(group.name)
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


def config_missing(sv: Survey, vm: VM, host_name: str) -> Problem | None:
    if vm.config_path in sv.look.missing_files.get(host_name, ()):
        return Problem(
            "config-missing",
            f"{vm.name}'s config file {vm.config_path} is missing on {host_name}",
            f"copy it to {host_name}:{vm.config_path}",
        )
    error = sv.look.config_errors.get(host_name, {}).get(vm.config_path)
    if error:
        return Problem(
            "config-unreadable",
            f"{vm.name}'s config file {host_name}:{vm.config_path} would be refused by xl: {error}",
            f"fix {host_name}:{vm.config_path} (the line is named above), then look again",
        )
    return None


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
    plan.warnings.extend(config_warnings(look))
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
            actions.extend(_checks(vm, running_host, after=f"shrink:{vm_name}"))
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
        actions.extend(_checks(vm, host_name, after=f"start:{vm_name}"))
    handover_tier = 0
    if mode == "planned":
        handover, handover_tier = _planned_handover(sv)
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
    plan.actions = _order_starts(actions)
    plan.groups = sorted(groups)
    return plan


def dom0_shrinks(sv: Survey, plan: Plan, *, always: bool) -> list[PlannedAction]:
    """Step 4 for the dom0s of the surviving site: their disaster memory (the change is
    listed in the plan); ``always``: an action even when it is there already (it
    confirms), else only where it changes."""
    actions = []
    for host in sv.target_hosts:
        target = sv.scenario.dom0_memory.get(host.name)
        current = sv.look.dom0.get(host.name)
        if not target:
            continue
        if current is not None and current != target:
            plan.memory_changes.append(
                {"vm": "Domain-0", "host": host.name, "from_mb": current, "to_mb": target}
            )
        elif not always:
            continue
        actions.append(
            PlannedAction(
                f"shrink:Domain-0@{host.name}",
                4,
                "set_memory",
                f"Domain-0 on {host.name}",
                host.name,
                {"vm": "Domain-0", "memory_mb": target},
            )
        )
    return actions


def _planned_handover(sv: Survey) -> tuple[list[PlannedAction], int]:
    """Step 2 of a planned migration (both sites up), stopping on any error: shut the
    VMs down at the source (highest tier first), wait for the final sync, demote the
    source copy; the failover of each group (the tier returned) then promotes and
    presents it."""
    moving = [vm for vm in sv.vms.values() if vm.home_host.site_id != sv.target_site.pk]
    top = max((vm.tier for vm in moving), default=0)
    actions = [
        PlannedAction(
            f"shutdown:{vm.name}",
            2,
            "shutdown_vm",
            vm.name,
            vm.home_host.name,
            {"vm": vm.name, "tier": top - vm.tier},
        )
        for vm in sorted(moving, key=lambda v: (-v.tier, v.name))
    ]
    for group in sv.groups.values():
        common = {
            "group": group.name,
            "array": group.source_array.name,
            "source_array": group.source_array.name,
        }
        actions.append(
            PlannedAction(
                f"finalsync:{group.name}",
                2,
                "wait_consistent",
                group.name,
                group.source_array.name,
                {**common, "tier": top + 1},
            )
        )
        actions.append(
            PlannedAction(
                f"demote:{group.name}",
                2,
                "demote_group",
                group.name,
                group.source_array.name,
                {**common, "tier": top + 2},
            )
        )
    return actions, top + 3


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
