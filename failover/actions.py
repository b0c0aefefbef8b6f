"""What each kind of action does: observe first, act only when the estate is not yet in
the target state, then observe again — an action is done only when the estate says so.

Handlers run outside any transaction and know the estate only through the drivers.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hosts.connect import ssh_target, storage_driver
from hosts.drivers.base import CommandResult, DriverError, quote_command
from hosts.drivers.ssh import SSHConnectError, SSHConnection, SSHPool, SSHTarget, SSHTimeout
from hosts.drivers.storage import StorageError
from hosts.drivers.xen import DuplicateDomain, XenDriver
from hosts.models import FunctionalCheck, Host, StorageArray

from . import rows
from .models import Action, Run


class ActionFailed(DriverError):
    """The estate did not reach the target state; the message says what it shows instead."""


@dataclass
class Observation:
    done: bool | None  # True: in the target state; False: not yet (safe to act); None: cannot tell
    detail: str
    facts: dict = field(default_factory=dict)


@dataclass
class Outcome:
    detail: str
    result: dict = field(default_factory=dict)
    outcome: str = ""  # functional tests: ok, down, note
    undo: dict = field(default_factory=dict)


def lend_back_connection() -> None:
    """With a connection pool (DB_POOL_MAX_SIZE), give this thread's database connection
    back to it before every SSH command and every wait. An action waits on
    SSH for seconds and needs the database only for a few short reads, so the threads of
    a worker running hundreds of actions at once share a few connections. Without a
    pool, keep it: a new connection costs more than the reads."""
    from django.db import connection

    if connection.settings_dict.get("OPTIONS", {}).get("pool") and not connection.in_atomic_block:
        connection.close()


class LoggedRunner:
    """A shared connection seen through one action: every command it sends, and every
    failure, goes into that action's log (connections are shared between actions)."""

    def __init__(self, conn: SSHConnection, ctx: Context) -> None:
        self._conn, self._ctx = conn, ctx
        self.name = conn.name

    def run(self, argv, *, timeout: float | None = None) -> CommandResult:
        lend_back_connection()  # no database connection held while the host answers
        try:
            result = self._conn.run(argv, timeout=timeout)
        except DriverError as exc:
            self._ctx.lines.append(f"[{self.name}] $ {quote_command(argv)}  -> {exc}")
            raise
        self._ctx.log_command(result)
        return result


class Context:
    """One action's execution: its run, a connection pool, and a log of every command."""

    def __init__(self, action: Action, pool: SSHPool) -> None:
        self.action = action
        self.params = action.params
        self.pool = pool
        self.lines: list[str] = []
        self._hosts: dict[str, Host] = {}
        # What observe() read, for act() right after it (a handler's own business).
        self.seen: dict = {}
        self._arrays: dict[str, StorageArray] = {}

    @functools.cached_property
    def run(self) -> Run:
        """The action's run with its disaster and sites; read when a handler asks (only the
        fencing check does), fresh for every attempt."""
        return (
            Run.objects.select_related("disaster__isolation_confirmed_by", "lost_site")
            .defer("plan")
            .get(pk=self.action.run_id)
        )

    def note(self, line: str) -> None:
        self.lines.append(line)

    def log_command(self, result: CommandResult) -> None:
        text = f"[{result.host}] $ {result.command}  -> exit {result.exit_status} ({result.seconds:.2f} s)"
        output = (result.stdout.strip() + "\n" + result.stderr.strip()).strip()
        if output:
            text += "\n" + "\n".join("    " + line for line in output.splitlines()[:40])
        self.lines.append(text)

    def host(self, name: str) -> Host:
        # Read once per action (observe and act both ask): a fix made in the inventory
        # between two attempts still counts, since each attempt has its own context.
        host = self._hosts.get(name)
        if host is None:
            host = self._hosts[name] = rows.get(Host, "name", name)
        return host

    def conn(self, target: SSHTarget) -> LoggedRunner:
        return LoggedRunner(self.pool.get(target), self)

    def xen(self, host_name: str) -> XenDriver:
        host = self.host(host_name)
        return XenDriver(self.conn(ssh_target(host)), host.toolstack)

    def storage(self, array_name: str):
        array = self._arrays.get(array_name)
        if array is None:
            array = self._arrays[array_name] = rows.get(StorageArray, "name", array_name)
        runner = None if array.kind == "manual" else self.conn(ssh_target(array))
        return storage_driver(array, runner)


# -- the handlers ---------------------------------------------------------------------------


class Handler:
    """Read-only handlers observe nothing: running them again is always safe."""

    side_effects = False

    def observe(self, ctx: Context) -> Observation:
        return Observation(False, "read-only check: runs every time")

    def act(self, ctx: Context) -> Outcome:
        raise NotImplementedError


class CheckHost(Handler):
    def act(self, ctx: Context) -> Outcome:
        info = ctx.xen(ctx.action.host).info()
        return Outcome(
            f"{ctx.action.host} answers: {info.total_memory_mb} MB RAM, {info.free_memory_mb} MB free, "
            f"{info.nr_cpus} CPUs, Xen {info.xen_version}",
            {"total_mb": info.total_memory_mb, "free_mb": info.free_memory_mb},
        )


class CheckGroup(Handler):
    def act(self, ctx: Context) -> Outcome:
        status = ctx.storage(ctx.params["array"]).status(ctx.params["group"])
        result = {"role": status.role, "replication": status.replication, "lag_seconds": status.lag_seconds}
        if status.role != "primary" and status.replication in ("broken", "none"):
            raise ActionFailed(
                f"{status.group}: replica is not consistent ({status.replication}): {status.detail}"
            )
        return Outcome(f"{status.group}: {status.role}, {status.replication}; {status.detail}", result)


class InventoryHost(Handler):
    def act(self, ctx: Context) -> Outcome:
        domains = ctx.xen(ctx.action.host).list_domains()
        running = {d.name: d.memory_mb for d in domains if d.is_alive and not d.is_dom0}
        listed = ", ".join(f"{n} ({mb} MB)" for n, mb in sorted(running.items())) or "none"
        return Outcome(f"already running on {ctx.action.host}: {listed}", {"running": running})


def _source_reachable(ctx: Context, array_name: str) -> tuple[bool, str]:
    """Try the lost side's array with a short timeout: in a disaster it must not answer."""
    array = StorageArray.objects.get(name=array_name)
    if array.kind == "manual":
        return False, "manual array: the storage team fences it"
    target = ssh_target(array)
    target = SSHTarget(
        name=target.name,
        address=target.address,
        port=target.port,
        user=target.user,
        key_path=target.key_path,
        fingerprint=target.fingerprint,
        connect_timeout=min(target.connect_timeout, 5.0),
        command_timeout=10.0,
    )
    try:
        with SSHConnection(target) as conn:
            conn.run(["true"])
    except (SSHConnectError, SSHTimeout) as exc:
        return False, str(exc)
    except DriverError as exc:
        return True, f"answers, but: {exc}"
    return True, f"{array_name} answers on {target.address}:{target.port}"


class FailoverGroup(Handler):
    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        status = ctx.storage(ctx.params["array"]).status(ctx.params["group"])
        ctx.seen["status"] = status  # act() follows at once: it starts from this reading
        present_to = ctx.params.get("present_to")
        done = status.is_primary and (not present_to or present_to in status.presented_to)
        return Observation(
            done,
            f"{status.group} at {ctx.params['array']}: {status.role}, presented to "
            f"{', '.join(status.presented_to) or 'nobody'}",
            {"role": status.role, "presented_to": list(status.presented_to)},
        )

    def fence_check(self, ctx: Context) -> str:
        """No split brain: fail over only when the source side is fenced."""
        run = ctx.run
        group = ctx.params["group"]
        if run.mode == "disaster":
            disaster = run.disaster
            if disaster is None or disaster.isolation_confirmed_at is None:
                raise ActionFailed(
                    f"refusing to fail over {group}: nobody has confirmed that {run.lost_site.code} is isolated "
                    "(the MoD confirms isolation on the declaration)"
                )
            reachable, how = _source_reachable(ctx, ctx.params["source_array"])
            if reachable:
                raise ActionFailed(
                    f"refusing to fail over {group}: the source array {ctx.params['source_array']} is still "
                    f"reachable ({how}); fence it (power it off or cut its links) first, then Retry"
                )
            return (
                f"source fenced: isolation confirmed by {disaster.isolation_confirmed_by} at "
                f"{disaster.isolation_confirmed_at:%Y-%m-%d %H:%M}; {ctx.params['source_array']} unreachable ({how})"
            )
        source = ctx.storage(ctx.params["source_array"]).status(group)
        if source.is_primary and source.presented_to:
            raise ActionFailed(
                f"refusing a planned failover of {group}: the source copy is still presented to "
                f"{', '.join(source.presented_to)}; shut the VMs down and demote it first"
            )
        return f"source demoted: {source.detail}"

    def act(self, ctx: Context) -> Outcome:
        group, array = ctx.params["group"], ctx.params["array"]
        driver = ctx.storage(array)
        status = ctx.seen.pop("status", None) or driver.status(group)
        if not status.is_primary:
            ctx.note(self.fence_check(ctx))
            force = ctx.run.mode == "disaster" and driver.kind == "drbd"
            status = driver.promote(group, force=force, current=status)
        present_to = ctx.params.get("present_to")
        if present_to and present_to not in status.presented_to:
            status = driver.present(group, present_to, current=status)
        return Outcome(
            f"{group} is primary at {array} and presented to {', '.join(status.presented_to)}",
            {"role": status.role, "presented_to": list(status.presented_to)},
            undo={
                "kind": "reverse_group",
                "group": group,
                "array": array,
                "source_array": ctx.params["source_array"],
            },
        )


class IntegrityCheck(Handler):
    def act(self, ctx: Context) -> Outcome:
        report = ctx.storage(ctx.params["array"]).integrity_check(ctx.params["group"])
        findings = list(report.findings)
        host = ctx.params.get("host")
        missing = []
        if host:
            conn = ctx.conn(ssh_target(ctx.host(host)))
            for device in ctx.params.get("devices", ()):
                if conn.run(["test", "-b", device]).exit_status != 0:
                    missing.append(device)
        if missing:
            findings.append(f"problem: {host} does not see block device(s) {', '.join(missing)}")
        if not report.ok or missing:
            raise ActionFailed("; ".join(f for f in findings if f.startswith("problem:")))
        return Outcome("; ".join(findings) or "consistent", {"findings": findings})


class SetMemory(Handler):
    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        name, target = ctx.params["vm"], ctx.params["memory_mb"]
        domain = next((d for d in ctx.xen(ctx.action.host).list_domains() if d.name == name), None)
        if domain is None or not domain.is_alive:
            return Observation(None, f"{name} is not running on {ctx.action.host}")
        return Observation(
            domain.memory_mb == target,
            f"{name} has {domain.memory_mb} MB (target {target} MB)",
            {"memory_mb": domain.memory_mb},
        )

    def act(self, ctx: Context) -> Outcome:
        before = self.observe(ctx)
        if before.done is None:
            raise ActionFailed(before.detail)
        name, target = ctx.params["vm"], ctx.params["memory_mb"]
        ctx.xen(ctx.action.host).mem_set(name, target)
        # xl returns before the balloon driver has finished: confirm, briefly.
        after = _confirm(lambda: self.observe(ctx))
        if not after.done:
            raise ActionFailed(f"mem-set sent, but {after.detail}")
        return Outcome(
            f"{name}: {before.facts.get('memory_mb')} MB -> {target} MB",
            {"memory_mb": target},
            undo={
                "kind": "set_memory",
                "vm": name,
                "host": ctx.action.host,
                "memory_mb": before.facts.get("memory_mb"),
            },
        )


def observe_running(ctx: Context, name: str) -> Observation:
    """Is domain ``name`` running on the action's host? Done if alive, not yet if absent,
    and "cannot tell" if it is there but crashed, dying or paused."""
    domain = next((d for d in ctx.xen(ctx.action.host).list_domains() if d.name == name), None)
    if domain is None:
        return Observation(False, f"{name} is not running on {ctx.action.host}")
    if domain.is_alive:
        return Observation(
            True,
            f"{name} runs on {ctx.action.host} with {domain.memory_mb} MB ({domain.state})",
            {"memory_mb": domain.memory_mb},
        )
    return Observation(None, f"{name} is on {ctx.action.host} but {domain.state}: a person must look at it")


def create_and_confirm(
    ctx: Context, handler: Handler, name: str, create: Callable[[], object]
) -> Outcome | None:
    """Run ``create`` (an ``xl create``) and confirm the domain runs. If an earlier
    attempt's create (its worker died mid-way) won the race, Xen refuses a second domain
    of that name: that start is the outcome (None: this attempt started it)."""
    try:
        create()
    except DuplicateDomain:
        seen = handler.observe(ctx)
        if seen.done:
            return Outcome(f"{name} was started by an earlier attempt: {seen.detail}", seen.facts)
        raise
    after = _confirm(lambda: handler.observe(ctx))
    if not after.done:
        raise ActionFailed(f"xl create returned, but {after.detail}")
    return None


class StartVM(Handler):
    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        return observe_running(ctx, ctx.params["vm"])

    def act(self, ctx: Context) -> Outcome:
        name, memory = ctx.params["vm"], ctx.params["memory_mb"]
        earlier = create_and_confirm(
            ctx, self, name, lambda: ctx.xen(ctx.action.host).create(ctx.params["config_path"], memory)
        )
        if earlier:
            return earlier
        return Outcome(
            f"started {name} on {ctx.action.host} with {memory} MB",
            {"memory_mb": memory},
            undo={"kind": "shutdown_vm", "vm": name, "host": ctx.action.host},
        )


class CheckNoSwap(Handler):
    def act(self, ctx: Context) -> Outcome:
        xen = ctx.xen(ctx.action.host)
        info = xen.info()
        used = sum(d.memory_mb for d in xen.list_domains() if d.domid is not None)
        if used > info.total_memory_mb:
            raise ActionFailed(f"{ctx.action.host}: domains hold {used} MB of {info.total_memory_mb} MB")
        return Outcome(
            f"{ctx.action.host}: {used} of {info.total_memory_mb} MB in use, {info.free_memory_mb} MB free: no swapping",
            {"used_mb": used, "total_mb": info.total_memory_mb},
        )


def check_pauses(poll: float, first: float = 0.25):
    """The pauses between a check's answers: doubling from ``first`` up to ``poll``, so a
    service that opens a moment after its VM started is seen a moment later, while one
    that takes minutes to boot is asked every ``poll`` seconds."""
    pause = min(first, poll)
    while True:
        yield pause
        pause = min(pause * 2, poll)


class FunctionalCheckHandler(Handler):
    """A VM this run started needs time to boot: a "down" answer is asked again until
    DRPORTAL_CHECK_SETTLE_S after its start (at most every DRPORTAL_CHECK_POLL_S, sooner
    at first: see ``check_pauses``); a VM that was running already, and a "note", get one
    answer."""

    def act(self, ctx: Context) -> Outcome:
        from django.conf import settings
        from django.utils import timezone

        from .checks import run_check

        check = FunctionalCheck.objects.select_related("vm").get(pk=ctx.params["check_id"])
        started = (
            ctx.action.depends_on.filter(kind__in=("start_vm", "start_drill_vm"))
            .exclude(finished_at=None)
            .values_list("finished_at", flat=True)
            .first()
        )
        settle = float(getattr(settings, "DRPORTAL_CHECK_SETTLE_S", 120))
        until = time.monotonic() + (
            max(0.0, settle - (timezone.now() - started).total_seconds()) if started else 0.0
        )
        lend_back_connection()  # checks wait on the network, and between answers
        tries = 0
        pauses = check_pauses(float(getattr(settings, "DRPORTAL_CHECK_POLL_S", 2)))
        while True:
            tries += 1
            verdict = run_check(check, pool=ctx.pool, drill=bool(ctx.params.get("drill")))
            if verdict.outcome != "down" or time.monotonic() >= until:
                break
            time.sleep(max(0.0, min(next(pauses), until - time.monotonic())))
        ctx.note(
            f"{check.kind} check '{check.name}': {verdict.outcome}: {verdict.detail}"
            + (f" (answer {tries}; the VM was started by this run)" if tries > 1 else "")
        )
        if verdict.outcome != "ok":
            raise CheckDown(verdict.outcome, verdict.detail)
        return Outcome(verdict.detail, {"outcome": verdict.outcome}, outcome=verdict.outcome)


class CheckDown(ActionFailed):
    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome


def _confirm(observe: Callable[[], Observation], tries: int = 10, pause: float = 0.3) -> Observation:
    seen = observe()
    for _ in range(tries - 1):
        if seen.done:
            return seen
        time.sleep(pause)
        seen = observe()
    return seen


HANDLERS: dict[str, Handler] = {
    "check_host": CheckHost(),
    "check_group": CheckGroup(),
    "inventory_host": InventoryHost(),
    "failover_group": FailoverGroup(),
    "integrity_check": IntegrityCheck(),
    "set_memory": SetMemory(),
    "start_vm": StartVM(),
    "check_no_swap": CheckNoSwap(),
    "functional_check": FunctionalCheckHandler(),
}

__all__ = ["HANDLERS", "ActionFailed", "CheckDown", "Context", "Observation", "Outcome", "StorageError"]


# -- failback and planned migration ------------------------------------------------------------


class ReverseGroup(Handler):
    """At the array that is primary now: replicate back toward the old source (a full
    copy when the old source's copy diverged)."""

    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        status = ctx.storage(ctx.params["array"]).status(ctx.params["group"])
        if not status.is_primary:
            return Observation(
                None, f"{status.group} is {status.role} at {ctx.params['array']}, not the source"
            )
        return Observation(
            status.replication in ("consistent", "syncing"),
            f"{status.group} at {ctx.params['array']}: replication {status.replication}; {status.detail}",
        )

    def act(self, ctx: Context) -> Outcome:
        before = self.observe(ctx)
        if before.done is None:
            raise ActionFailed(before.detail)
        status = ctx.storage(ctx.params["array"]).reverse(ctx.params["group"])
        return Outcome(
            f"{status.group}: replicating from {ctx.params['array']} to {ctx.params['source_array']} "
            f"({status.replication})",
            {"replication": status.replication},
        )


class WaitConsistent(Handler):
    """Read-only: the mirror is consistent (after a reverse, or as the final sync before
    a planned role swap), polled up to DRPORTAL_SYNC_WAIT_S."""

    def act(self, ctx: Context) -> Outcome:
        from django.conf import settings

        driver = ctx.storage(ctx.params["array"])
        deadline = time.monotonic() + float(getattr(settings, "DRPORTAL_SYNC_WAIT_S", 600))
        while True:
            status = driver.status(ctx.params["group"])
            if status.replication == "consistent":
                return Outcome(
                    f"{status.group}: consistent; {status.detail}", {"lag_seconds": status.lag_seconds}
                )
            if status.replication in ("broken", "none"):
                raise ActionFailed(f"{status.group}: replication {status.replication}: {status.detail}")
            if time.monotonic() >= deadline:
                raise ActionFailed(
                    f"{status.group} is still {status.replication} ({status.detail}); Retry when the copy is done"
                )
            time.sleep(0.5)


class DemoteGroup(Handler):
    """At the current source array: unpresent the group from every host (the VMs are
    shut down), so the other site can take over without split brain."""

    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        status = ctx.storage(ctx.params["array"]).status(ctx.params["group"])
        return Observation(
            not (status.is_primary and status.presented_to),
            f"{status.group} at {ctx.params['array']}: {status.role}, presented to "
            f"{', '.join(status.presented_to) or 'nobody'}",
            {"presented_to": list(status.presented_to)},
        )

    def act(self, ctx: Context) -> Outcome:
        before = self.observe(ctx)
        status = ctx.storage(ctx.params["array"]).demote(ctx.params["group"])
        if status.is_primary and status.presented_to:
            raise ActionFailed(f"{status.group} is still presented to {', '.join(status.presented_to)}")
        return Outcome(
            f"{status.group} demoted at {ctx.params['array']} (unpresented from "
            f"{', '.join(before.facts.get('presented_to', [])) or 'nobody'})",
            undo={
                "kind": "present_group",
                "group": ctx.params["group"],
                "array": ctx.params["array"],
                "hosts": before.facts.get("presented_to", []),
            },
        )


class ShutdownVM(Handler):
    """Shut a VM down cleanly (``xl shutdown -w``); a VM that does not stop is left to a
    person (it is never destroyed behind their back)."""

    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        name = ctx.params["vm"]
        domain = next((d for d in ctx.xen(ctx.action.host).list_domains() if d.name == name), None)
        if domain is None:
            return Observation(True, f"{name} is not running on {ctx.action.host}")
        return Observation(
            False,
            f"{name} runs on {ctx.action.host} with {domain.memory_mb} MB",
            {"memory_mb": domain.memory_mb},
        )

    def act(self, ctx: Context) -> Outcome:
        from django.conf import settings

        before = self.observe(ctx)
        name = ctx.params["vm"]
        if not before.done:
            ctx.xen(ctx.action.host).shutdown(name, float(getattr(settings, "DRPORTAL_SHUTDOWN_WAIT_S", 300)))
        after = _confirm(lambda: self.observe(ctx))
        if not after.done:
            raise ActionFailed(f"xl shutdown returned, but {after.detail}; shut it down by hand, then Retry")
        return Outcome(
            f"{name} shut down on {ctx.action.host}",
            undo={
                "kind": "start_vm",
                "vm": name,
                "host": ctx.action.host,
                "memory_mb": before.facts.get("memory_mb"),
            },
        )


# -- drills ------------------------------------------------------------------------------------


def _drill_domain_guard(name: str) -> str:
    """Drill handlers act on drill domains only: never on a production domain."""
    from .drill import DRILL_PREFIX

    if not name.startswith(DRILL_PREFIX):
        raise ActionFailed(
            f"refusing to touch {name}: not a drill domain (they are named {DRILL_PREFIX}<vm>)"
        )
    return name


class CloneGroup(Handler):
    """Snapshot the replica of a DR group on the surviving array and present the
    snapshot to the surviving dom0. The group itself is not touched."""

    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        snap = ctx.storage(ctx.params["array"]).snapshot_status(ctx.params["snapshot"])
        if snap is None:
            return Observation(False, f"no snapshot {ctx.params['snapshot']} yet")
        host = ctx.params.get("present_to")
        return Observation(
            not host or host in snap.presented_to,
            f"snapshot {snap.name} of {snap.group}: {len(snap.devices)} device(s), presented to "
            f"{', '.join(snap.presented_to) or 'nobody'}",
            {"devices": dict(snap.devices)},
        )

    def act(self, ctx: Context) -> Outcome:
        p = ctx.params
        driver = ctx.storage(p["array"])
        snap = driver.snapshot(p["group"], p["snapshot"])
        if p.get("present_to") and p["present_to"] not in snap.presented_to:
            snap = driver.present_snapshot(p["snapshot"], p["present_to"])
        return Outcome(
            f"snapshot {snap.name} of {snap.group} presented to {', '.join(snap.presented_to) or 'nobody'}: "
            + ", ".join(f"{src} -> {dst}" for src, dst in sorted(snap.devices.items())),
            {"devices": dict(snap.devices), "presented_to": list(snap.presented_to)},
            undo={
                "kind": "delete_snapshot",
                "snapshot": p["snapshot"],
                "array": p["array"],
                "hosts": [p["present_to"]] if p.get("present_to") else [],
            },
        )


class CheckClone(Handler):
    """The surviving dom0 sees every device of the snapshot as a block device."""

    def act(self, ctx: Context) -> Outcome:
        p = ctx.params
        snap = ctx.storage(p["array"]).snapshot_status(p["snapshot"])
        if snap is None:
            raise ActionFailed(f"snapshot {p['snapshot']} is gone from {p['array']}")
        missing = [
            dev for src, dev in sorted(snap.devices.items()) if src not in p.get("devices", snap.devices)
        ]
        if missing:
            raise ActionFailed(
                f"snapshot {snap.name} holds devices not of {p['group']}: {', '.join(missing)}"
            )
        host = p.get("present_to")
        if not host:
            return Outcome(f"snapshot {snap.name}: nothing to start from it", {})
        conn = ctx.conn(ssh_target(ctx.host(host)))
        absent = [
            dev for dev in sorted(snap.devices.values()) if conn.run(["test", "-b", dev]).exit_status != 0
        ]
        if absent:
            raise ActionFailed(f"{host} does not see the clone device(s) {', '.join(absent)}")
        return Outcome(
            f"{host} sees the {len(snap.devices)} clone device(s) of {snap.group}", {"devices": snap.devices}
        )


class StartDrillVM(Handler):
    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        return observe_running(ctx, _drill_domain_guard(ctx.params["domain"]))

    def act(self, ctx: Context) -> Outcome:
        p = ctx.params
        name = _drill_domain_guard(p["domain"])
        snap = ctx.storage(p["array"]).snapshot_status(p["snapshot"])
        if snap is None:
            raise ActionFailed(f"snapshot {p['snapshot']} is gone from {p['array']}: nothing to start from")
        disks = []
        for target, vdev, mode in p["disks"]:
            if target not in snap.devices:
                raise ActionFailed(f"snapshot {snap.name} has no copy of {p['vm']}'s disk {target}")
            disks.append((snap.devices[target], vdev, mode))
        earlier = create_and_confirm(
            ctx,
            self,
            name,
            lambda: ctx.xen(ctx.action.host).create_clone(
                p["config_path"],
                name=name,
                memory_mb=p["memory_mb"],
                disks=disks,
                vifs=[tuple(v) for v in p["vifs"]],
            ),
        )
        if earlier:
            return earlier
        return Outcome(
            f"started {name} (a clone of {p['vm']}) on {ctx.action.host} with {p['memory_mb']} MB on "
            f"{', '.join(sorted({b for _m, b in p['vifs']}))}, disks {', '.join(d for d, _v, _m in disks)}",
            {"memory_mb": p["memory_mb"], "disks": [d for d, _v, _m in disks]},
            undo={"kind": "destroy_domain", "domain": name, "host": ctx.action.host},
        )


class DestroyDrillDomain(Handler):
    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        name = _drill_domain_guard(ctx.params["domain"])
        domain = next((d for d in ctx.xen(ctx.action.host).list_domains() if d.name == name), None)
        if domain is None:
            return Observation(True, f"{name} is not on {ctx.action.host}")
        return Observation(False, f"{name} is on {ctx.action.host} ({domain.state})")

    def act(self, ctx: Context) -> Outcome:
        name = _drill_domain_guard(ctx.params["domain"])
        xen = ctx.xen(ctx.action.host)
        if not self.observe(ctx).done:
            xen.destroy(name)
        after = _confirm(lambda: self.observe(ctx))
        if not after.done:
            raise ActionFailed(f"xl destroy returned, but {after.detail}")
        return Outcome(f"destroyed {name} on {ctx.action.host}")


class DeleteSnapshot(Handler):
    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        snap = ctx.storage(ctx.params["array"]).snapshot_status(ctx.params["snapshot"])
        if snap is None:
            return Observation(True, f"no snapshot {ctx.params['snapshot']} on {ctx.params['array']}")
        return Observation(
            False, f"snapshot {snap.name} is presented to {', '.join(snap.presented_to) or 'nobody'}"
        )

    def act(self, ctx: Context) -> Outcome:
        p = ctx.params
        driver = ctx.storage(p["array"])
        snap = driver.snapshot_status(p["snapshot"])
        if snap is not None:
            if not snap.name.startswith("drill-"):
                raise ActionFailed(f"refusing to delete {snap.name}: not a drill snapshot")
            for host in snap.presented_to:
                driver.unpresent_snapshot(snap.name, host)
            driver.delete_snapshot(snap.name)
        after = self.observe(ctx)
        if not after.done:
            raise ActionFailed(f"delete sent, but {after.detail}")
        return Outcome(f"snapshot {p['snapshot']} unpresented and deleted on {p['array']}")


class VerifyDrillGone(Handler):
    """Read-only: no drill domain on the dom0, no snapshot of this drill on the array."""

    def act(self, ctx: Context) -> Outcome:
        from .drill import DRILL_PREFIX

        p = ctx.params
        if "host" in p:
            left = [d.name for d in ctx.xen(p["host"]).list_domains() if d.name.startswith(DRILL_PREFIX)]
            if left:
                raise ActionFailed(f"drill domain(s) still on {p['host']}: {', '.join(left)}")
            return Outcome(f"no drill domain on {p['host']}")
        present = set(ctx.storage(p["array"]).list_snapshots())
        left = sorted(present & set(p.get("snapshots", ())))
        if left:
            raise ActionFailed(f"snapshot(s) of the drill still on {p['array']}: {', '.join(left)}")
        return Outcome(f"no snapshot of the drill on {p['array']}")


HANDLERS.update(
    {
        "clone_group": CloneGroup(),
        "check_clone": CheckClone(),
        "start_drill_vm": StartDrillVM(),
        "destroy_drill_domain": DestroyDrillDomain(),
        "delete_snapshot": DeleteSnapshot(),
        "verify_drill_gone": VerifyDrillGone(),
        "reverse_group": ReverseGroup(),
        "wait_consistent": WaitConsistent(),
        "demote_group": DemoteGroup(),
        "shutdown_vm": ShutdownVM(),
    }
)
