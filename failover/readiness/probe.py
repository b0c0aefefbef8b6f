"""The live look of the readiness check: every dom0 and every target array, at once.

Read-only and bounded: one SSH connection per host (pinned key, timeouts from the
settings), a handful of commands each, all hosts and arrays in parallel threads. Knows
drivers and inventory rows, nothing of verdicts (that is ``assess``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from failover.runs.survey import parse_brctl_show
from hosts.connect import ssh_target, storage_driver
from hosts.drivers.base import DriverError
from hosts.drivers.ssh import HostKeyMismatch, SSHPool
from hosts.drivers.storage import GroupStatus, StorageError
from hosts.drivers.xen import XenDriver
from hosts.models import DRGroup, Host, StorageArray

log = logging.getLogger(__name__)

THREADS = 16
# Config paths per `ls` call: far below any command-line limit, few round trips.
PATHS_PER_CALL = 200

UNREACHABLE = "unreachable"
HOST_KEY = "host-key"
TOOLSTACK = "toolstack"


@dataclass
class HostLook:
    """One dom0 as the check saw it. ``problem`` is "" when SSH and the toolstack answered."""

    name: str
    problem: str = ""  # "", UNREACHABLE, HOST_KEY or TOOLSTACK
    error: str = ""
    bridges: list[str] | None = None  # None: not read (host down, or brctl failed)
    bridges_error: str = ""
    missing_files: list[str] = field(default_factory=list)
    files_error: str = ""

    @property
    def reachable(self) -> bool:
        return self.problem in ("", TOOLSTACK)


@dataclass
class ArrayLook:
    """The DR groups of one target array as that array reports them."""

    name: str
    problem: str = ""  # "", UNREACHABLE or HOST_KEY
    error: str = ""
    groups: dict[str, GroupStatus] = field(default_factory=dict)
    group_errors: dict[str, str] = field(default_factory=dict)


@dataclass
class EstateLook:
    hosts: dict[str, HostLook] = field(default_factory=dict)
    arrays: dict[str, ArrayLook] = field(default_factory=dict)


def _problem_of(exc: DriverError) -> str:
    return HOST_KEY if isinstance(exc, HostKeyMismatch) else UNREACHABLE


def _guarded(look_at, subject, *args):
    """One host's surprise (a bug, an odd answer) must not cost the verdicts of all sites:
    it becomes that host's problem, in words, and the log keeps the traceback."""
    try:
        return look_at(subject, *args)
    except Exception as exc:
        log.exception("readiness: looking at %s failed", subject.name)
        look = HostLook(name=subject.name) if isinstance(subject, Host) else ArrayLook(name=subject.name)
        look.problem, look.error = UNREACHABLE, f"unexpected error: {type(exc).__name__}: {exc}"
        return look


def _look_host(host: Host, paths: list[str], pool: SSHPool) -> HostLook:
    look = HostLook(name=host.name)
    try:
        conn = pool.get(ssh_target(host))
    except DriverError as exc:
        look.problem, look.error = _problem_of(exc), str(exc)
        return look
    try:
        XenDriver(conn, host.toolstack).info()
    except DriverError as exc:
        look.problem, look.error = TOOLSTACK, str(exc)
    try:
        bridges = conn.run(["brctl", "show"])
        if bridges.ok:
            look.bridges = parse_brctl_show(bridges.stdout)
        else:
            look.bridges_error = (bridges.stderr or bridges.stdout).strip() or f"exit {bridges.exit_status}"
        for i in range(0, len(paths), PATHS_PER_CALL):
            chunk = paths[i : i + PATHS_PER_CALL]
            # GNU ls names every file that exists on stdout, one per line when not on a tty;
            # exit 2 means some did not. Anything else is an answer we cannot read.
            result = conn.run(["ls", "-d", "--", *chunk])
            if result.exit_status not in (0, 2):
                look.files_error = (result.stderr or result.stdout).strip() or f"exit {result.exit_status}"
                break
            present = set(result.stdout.splitlines())
            look.missing_files += [p for p in chunk if p not in present]
    except DriverError as exc:
        # The connection broke half-way: say so rather than report half an answer.
        look.problem, look.error = _problem_of(exc), str(exc)
    return look


def _look_array(array: StorageArray, groups: list[str]) -> ArrayLook:
    look = ArrayLook(name=array.name)
    # Its own pool: arrays and hosts are looked at in parallel, each on one connection.
    with SSHPool() as pool:
        try:
            runner = None if array.kind == "manual" else pool.get(ssh_target(array))
            driver = storage_driver(array, runner)
        except DriverError as exc:
            look.problem, look.error = _problem_of(exc), str(exc)
            return look
        # One session for every group where the array lists them all in one (an EVA's LS
        # DR_GROUP FULL): a pass over 5,000 groups one by one held a Command View session
        # for 40 minutes at 0.5 s a call, longer than the interval, beside a failover's own.
        errors: dict[str, StorageError] = {}
        try:
            look.groups = driver.statuses(groups, errors=errors)
        except DriverError as exc:  # the array stopped answering: not each group's fault
            look.problem, look.error = _problem_of(exc), str(exc)
        look.group_errors = {name: str(exc) for name, exc in errors.items()}
    return look


def look_at_estate(*, hosts: list[Host], configs: dict[str, list[str]], groups: list[DRGroup]) -> EstateLook:
    """Ask every dom0 in ``hosts`` (reachable, key, toolstack, bridges, the config files in
    ``configs[host]``) and every target array of ``groups`` (their replication status)."""
    by_array: dict[int, list[DRGroup]] = defaultdict(list)
    for group in groups:
        if group.target_array_id is not None:
            by_array[group.target_array_id].append(group)
    estate = EstateLook()
    with (
        SSHPool() as pool,
        ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="readiness") as threads,
    ):
        host_jobs = {
            host.name: threads.submit(
                _guarded, _look_host, host, sorted(set(configs.get(host.name, ()))), pool
            )
            for host in hosts
        }
        array_jobs = {
            members[0].target_array.name: threads.submit(
                _guarded, _look_array, members[0].target_array, [g.name for g in members]
            )
            for members in by_array.values()
        }
        estate.hosts = {name: job.result() for name, job in host_jobs.items()}
        estate.arrays = {name: job.result() for name, job in array_jobs.items()}
    return estate
