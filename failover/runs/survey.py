"""What losing a site means, before any plan: the inventory's capacity proof (where each
VM goes, with how much memory) and a live look at the surviving site (what runs there,
its memory, config files, bridges, the DR groups' state), and the problems every plan
kind finds in them."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from failover.models import Run
from hosts.capacity import CapacityResult, Scenario, check_scenario, no_cycle_collection
from hosts.connect import ssh_target, storage_driver
from hosts.drivers.base import DriverError
from hosts.drivers.ssh import SSHPool
from hosts.drivers.storage import StorageError, driver_class
from hosts.drivers.xen import ConfigNotFound, XenDriver, XenError
from hosts.models import VM, DRGroup, Host, Site, StorageArray
from hosts.selectors import capacity_inputs, estate_vms, reserve_mb

from .plan import Plan, PlannedAction, Problem

log = logging.getLogger(__name__)


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
    # What xl would start from each config to be started, read as xl reads it (one `grep`
    # of all a dom0's files, XenDriver.read_vm_configs): warnings for what drportal does not interpret, and the error of one xl refuses.
    config_warnings: dict[str, list[str]] = field(default_factory=dict)  # "host:path" -> warnings
    config_errors: dict[str, dict[str, str]] = field(default_factory=dict)  # host -> path -> error
    # The "lost" site's dom0s that answer, with the VMs of the plan they run (a disaster's
    # preview asks them too: a lost site that answers and runs its VMs is no lost site).
    lost_running: dict[str, list[str]] = field(default_factory=dict)  # host -> [VM]


def parse_brctl_show(text: str) -> list[str]:
    """Bridge names from `brctl show`: the first word of every line that does not start
    with white space (continuation lines list more interfaces of the same bridge)."""
    lines = text.splitlines()[1:]
    return [line.split()[0] for line in lines if line.strip() and not line[0].isspace()]


# Dom0s looked at at once; each is asked its questions at once too, on channels of one
# connection (see ``_look_host``): 200 dom0s at 0.2 s a command take about a second.
LOOK_THREADS = 64


GROUPS_PER_THREAD = 32


def _look_host(
    host: Host, paths: list[str], pool: SSHPool, look: LiveLook, channels: ThreadPoolExecutor
) -> None:
    """What one surviving dom0 runs, its memory, bridges and the config files of the VMs
    it will start: four commands, sent at once on one connection (the config files all
    in one, ``XenDriver.read_vm_configs``)."""
    try:
        conn = pool.get(ssh_target(host))
    except DriverError as exc:
        look.unreachable[host.name] = str(exc)
        return
    xen = XenDriver(conn, host.toolstack)
    domains = channels.submit(xen.list_domains)
    info = channels.submit(xen.info)
    configs = channels.submit(xen.read_vm_configs, paths) if paths else None
    bridges = channels.submit(conn.run, ["brctl", "show"])
    try:
        running = domains.result()
        look.total_mb[host.name] = info.result().total_memory_mb
        look.domains[host.name] = {d.name: d.memory_mb for d in running if not d.is_dom0 and d.is_alive}
        look.dom0[host.name] = next((d.memory_mb for d in running if d.is_dom0), 0)
        if configs is not None:
            _configs_seen(host.name, configs, look)
        shown = bridges.result()
        if shown.ok:
            look.bridges[host.name] = parse_brctl_show(shown.stdout)
    except DriverError as exc:
        look.unreachable[host.name] = str(exc)
    finally:
        for job in (domains, info, configs, bridges):
            if job is not None:
                job.exception()  # all four answered (or failed) before the look goes on


def _configs_seen(host: str, configs: Future, look: LiveLook) -> None:
    try:
        seen = configs.result()
    except XenError as exc:
        # An answer we cannot read is not "nothing missing".
        look.unreachable[host] = f"cannot check config files: {exc}"
        return
    look.missing_files[host] = [path for path, config in seen.items() if isinstance(config, ConfigNotFound)]
    for path, config in seen.items():
        if isinstance(config, ConfigNotFound):
            continue
        if isinstance(config, XenError):
            look.config_errors.setdefault(host, {})[path] = str(config)
        elif config.warnings:
            look.config_warnings[f"{host}:{path}"] = list(config.warnings)


def _look_lost_host(host: Host, vms: set[str], pool: SSHPool, look: LiveLook) -> None:
    """Does a dom0 of the lost site answer, and which of ``vms`` does it run? Not
    answering is what a lost site does: nothing is recorded then, after one attempt
    (retrying a dom0 expected dead would make every plan wait for the retries: ~1 s in the
    lab, ~20 s for a site whose packets are dropped)."""
    try:
        domains = XenDriver(pool.get(ssh_target(host, connect_attempts=1)), host.toolstack).list_domains()
    except DriverError:
        return
    look.lost_running[host.name] = sorted(d.name for d in domains if d.is_alive and d.name in vms)


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
                    "members": list(status.members),
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
    target_hosts: list[Host],
    configs_by_host: dict[str, list[str]],
    groups: list[DRGroup],
    pool: SSHPool,
    lost_hosts: tuple[list[Host], set[str]] = ([], set()),
) -> LiveLook:
    """Ask every surviving dom0 and array at once (threads): a plan of hundreds of VMs
    must not take minutes to preview at 3 a.m."""
    look = LiveLook()
    by_array: dict[str, list[DRGroup]] = defaultdict(list)
    for group in groups:
        by_array[group.target_array.name].append(group)
    with (
        ThreadPoolExecutor(max_workers=LOOK_THREADS, thread_name_prefix="plan-look") as threads,
        ThreadPoolExecutor(max_workers=4 * LOOK_THREADS, thread_name_prefix="plan-look-cmd") as channels,
    ):
        jobs = [
            threads.submit(
                _look_host, host, sorted(set(configs_by_host.get(host.name, ()))), pool, look, channels
            )
            for host in target_hosts
        ]
        jobs += [threads.submit(_look_lost_host, host, lost_hosts[1], pool, look) for host in lost_hosts[0]]
        for members in by_array.values():
            array = members[0].target_array
            # An array that lists every group in one call is asked once; else chunks in parallel.
            chunk = len(members) if _bulk(array.kind) else GROUPS_PER_THREAD
            for i in range(0, len(members), chunk):
                jobs.append(threads.submit(_look_groups, array, members[i : i + chunk], look))
        for job in jobs:
            job.result()
    return look


def _moving_groups(placed: Iterable[VM], vm_rows: list[VM], target_site: Site) -> dict[str, DRGroup]:
    """The DR groups of the placed VMs not homed at ``target_site`` (that have a surviving
    array), by name in the order of their VMs, each with its VMs (and their disks) as
    ``group.vms.all()`` gives them: taken from ``vm_rows`` (every VM, in the model's
    order, disks prefetched), so no query. The plan presents each group to its first
    VM's host and checks its devices there."""
    members: dict[int, list[VM]] = defaultdict(list)
    for vm in vm_rows:
        if vm.dr_group_id is not None:
            members[vm.dr_group_id].append(vm)
    groups: dict[str, DRGroup] = {}
    for vm in placed:
        group = vm.dr_group
        if vm.home_host.site_id == target_site.pk or group is None or group.target_array is None:
            continue
        if group.name not in groups:
            _fill_related_cache(group, "vms", members[group.pk])
            groups[group.name] = group
    return groups


def _fill_related_cache(obj: DRGroup, name: str, rows: list[VM]) -> None:
    """Make ``obj.<name>.all()`` answer ``rows`` without a query, as prefetch_related does."""
    queryset = getattr(obj, name).all()
    queryset._result_cache = rows
    queryset._prefetch_done = True
    cache = {**getattr(obj, "_prefetched_objects_cache", {}), name: queryset}
    obj._prefetched_objects_cache = cache  # type: ignore[attr-defined]


@dataclass
class Survey:
    """The inventory and the live look at the surviving site, shared by every plan kind."""

    lost: Site
    target_site: Site
    scenario: Scenario
    capacity: CapacityResult
    placement: dict[str, str]  # VM -> host at the surviving site
    dr_memory: dict[str, int]
    target_hosts: list[Host]
    host_by_name: dict[str, Host]
    vms: dict[str, VM]
    groups: dict[str, DRGroup]  # the DR groups that move to the surviving site
    look: LiveLook


def survey(*, lost_site: str, pool: SSHPool | None = None, look_at_lost: bool = False) -> Survey:
    """What losing ``lost_site`` means: where each VM goes and with how much memory (the
    capacity proof), and what the surviving dom0s and arrays say right now (with
    ``look_at_lost`` also whether the lost site's dom0s answer, and what they run).

    The cyclic garbage collector pauses meanwhile: the estate's rows (5,000 VMs are some
    25,000 model instances, all kept) and the look's answers made it walk every object
    alive again and again, half the inventory read's CPU."""
    with no_cycle_collection():
        return _survey(lost_site=lost_site, pool=pool, look_at_lost=look_at_lost)


def _survey(*, lost_site: str, pool: SSHPool | None, look_at_lost: bool) -> Survey:
    lost = Site.objects.get(code=lost_site)
    survivors = list(Site.objects.exclude(pk=lost.pk).order_by("code"))
    if not survivors:
        raise ValueError(f"no site survives the loss of {lost_site}")
    target_site = survivors[0]
    # Every VM once, with all the plan reads of it: the capacity model takes the same rows.
    vm_rows = estate_vms("interfaces", "depends_on", "checks", "disks")
    inputs = capacity_inputs(lost_site=lost.code, vm_rows=vm_rows)
    scenario = next(s for s in inputs.scenarios if s.lost_site == lost.code)
    capacity = check_scenario(inputs.hosts, inputs.vms, scenario, reserve_mb=reserve_mb())
    placement = {vm: h.host for h in capacity.hosts for vm, _mb in h.placed}
    dr_memory = {vm: mb for h in capacity.hosts for vm, mb in h.placed}
    target_hosts = list(Host.objects.filter(site=target_site).order_by("name"))
    vms = {vm.name: vm for vm in vm_rows if vm.name in placement}
    # VMs homed at the surviving site run there already (observed live);
    # the others need their DR group failed over, then a start. In the order of their VMs.
    groups = _moving_groups(vms.values(), vm_rows, target_site)
    configs_by_host: dict[str, list[str]] = defaultdict(list)
    for name, vm in vms.items():
        if vm.home_host.site_id != target_site.pk:
            configs_by_host[placement[name]].append(vm.config_path)
    owns_pool = pool is None
    pool = pool or SSHPool()
    try:
        lost_hosts = list(Host.objects.filter(site=lost).order_by("name")) if look_at_lost else []
        moving = {name for name, vm in vms.items() if vm.home_host.site_id == lost.pk}
        look = _look(target_hosts, configs_by_host, list(groups.values()), pool, (lost_hosts, moving))
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


def target_array(group: DRGroup) -> StorageArray:
    """The surviving array of a group the survey kept: only groups with one move."""
    array = group.target_array
    if array is None:
        raise ValueError(f"DR group {group.name} has no target array: it cannot fail over")
    return array


# The actions that read a DR group at its surviving array (params "group" and "array").
GROUP_READERS = ("check_group", "failover_group", "integrity_check")


def hint_group_members(actions: list[PlannedAction], look: LiveLook) -> None:
    """Give each action that reads a group at the surviving array what the look saw the
    group hold (its virtual disks), so that the action's read of the group is one call
    (an EVA's SSSU needs the vdisks' names to read them with the group). A hint only:
    the driver checks the group's own member list on every read."""
    for action in actions:
        if action.kind in GROUP_READERS:
            members = look.group_status.get(action.params.get("group", ""), {}).get("members")
            if members:
                action.params["members"] = members


def config_warnings(look: LiveLook) -> list[str]:
    """What xl would start that drportal does not interpret, config by config."""
    return [
        f"config {where}: {warning}"
        for where, warnings in sorted(look.config_warnings.items())
        for warning in warnings
    ]


def lost_site_answers(sv: Survey) -> list[Problem]:
    """A "lost" site whose dom0 answers and runs the VMs about to be started elsewhere:
    starting them would run them twice (one blocking problem per answering dom0)."""
    problems = []
    for host, running in sorted(sv.look.lost_running.items()):
        if not running:
            continue  # up again without its VMs (a power cut's reboot): a warning, see below
        message = f"{sv.lost.code} answers: {host} runs {', '.join(running)}"
        problems.append(
            Problem(
                "lost-site-answers",
                message,
                f"if {sv.lost.code} is really lost, isolate it first (power off {host} or cut it off "
                "from the storage network); if it is up, this is no disaster: use a planned migration",
            )
        )
    return problems


def lost_site_warnings(sv: Survey) -> list[str]:
    return [
        f"{sv.lost.code} answers: {host} is up, though it runs none of the VMs to move; make sure it stays isolated"
        for host, running in sorted(sv.look.lost_running.items())
        if not running
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


def drill_up_problems(target_site: Site) -> list[Problem]:
    """A drill still up at the surviving site holds memory and clones: end it first."""
    up = Run.objects.filter(kind="drill", target_site=target_site, cleaned_up_at__isnull=True).order_by("pk")
    return [
        Problem(
            "drill-up",
            f"drill run {run.pk} is still up at {target_site.code}: its clones hold memory and snapshots",
            f"end the drill (run {run.pk}) and let its cleanup finish, or override with a reason",
        )
        for run in up
    ]
