"""DRBD 8.4 / 9 over SSH: the driver, and the small ``drbdadm role|dstate|cstate`` parsers.

The DR group name is the DRBD resource name; the driver is bound to the node its runner
reaches. Status is read with ``drbdsetup status <res> --json`` (drbd-utils >= 8.9.8 on a
DRBD 9 kernel); a drbdsetup that refuses ``--json`` (8.4's, user/v84/drbdsetup.c:286-291)
is asked ``drbdsetup status <res> --verbose --statistics`` instead, once per driver. Both
forms are read by hosts/drivers/drbd_status.py. Actions go through ``drbdadm`` (the lab
and the tests check every command line with the real ``drbdadm -d``):

* ``drbdadm role`` prints ``Primary/Secondary`` on 8.4 and just ``Primary`` on 9.
* Failures: ``<obj>: State change failed: (-1) Multiple primaries not allowed by config``
  (drbdsetup) then ``Command 'drbdsetup primary <res>' terminated with exit code 11``
  (drbdadm, user/shared/shared_main.c: m__system).
"""

from __future__ import annotations

import re
import shlex

from hosts.drivers.base import CommandResult, Runner
from hosts.drivers.drbd_status import (
    DrbdPeer,
    DrbdResource,
    DrbdVolume,
    StatusUnreadable,
    parse_status_text,
    worst_disk,
)
from hosts.drivers.drbd_status_json import parse_status_json
from hosts.drivers.storage import (
    GroupNotFound,
    GroupStatus,
    IntegrityReport,
    ManualStepRequired,
    NotConsistent,
    Replication,
    Role,
    SnapshotStatus,
    SnapshotUnsupported,
    SplitBrainRefused,
    StorageDriver,
    StorageError,
    check_name,
    integrity_report,
    tool_message,
)

__all__ = ["DrbdDriver", "DrbdPeer", "DrbdResource", "DrbdVolume", "StatusUnreadable", "group_status"]

# drbd.h enum drbd_repl_state (drbd-headers linux/drbd.h:242-264) and 8.4's conn states.
SYNCING_STATES = frozenset(
    {"StartingSyncS", "StartingSyncT", "WFBitMapS", "WFBitMapT", "WFSyncUUID", "SyncSource", "SyncTarget"}
)
PAUSED_STATES = frozenset({"PausedSyncS", "PausedSyncT"})
# Ahead/Behind: congestion on protocol A; the peer is Outdated until it catches up.
CATCHING_UP_STATES = frozenset({"Ahead", "Behind"})
REPLICATING_STATES = frozenset({"Established", "VerifyS", "VerifyT"})

parse_status = parse_status_text  # the text form, as ``drbdadm status`` prints it


def parse_role(text: str) -> tuple[str, str | None]:
    """``Primary/Secondary`` (8.4) -> (local, peer); ``Primary`` (9) -> (local, None)."""
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not line:
        raise StorageError("drbdadm role printed nothing")
    local, sep, peer = line.partition("/")
    return local, (peer if sep else None)


def parse_dstate(text: str) -> tuple[str, tuple[str, ...]]:
    """``UpToDate/Outdated`` -> (local, (peer, ...)); one line per volume, first wins."""
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not line:
        raise StorageError("drbdadm dstate printed nothing")
    local, *peers = line.split("/")
    return local, tuple(peers)


def parse_cstate(text: str) -> tuple[str, ...]:
    """One connection state per line (9 prints one per peer, 8.4 one per volume)."""
    return tuple(line.strip() for line in text.splitlines() if line.strip())


_ROLE: dict[str, Role] = {"Primary": "primary", "Secondary": "secondary"}


def _peer_words(p: DrbdPeer) -> str:
    if not p.connected:
        return f"{p.name} connection:{p.connection}"
    if p.diskless:
        return f"{p.name} role:{p.role} peer-disk:Diskless peer-client:yes"
    moving = "/".join(dict.fromkeys(s for s in p.replication if s not in REPLICATING_STATES))
    return (
        f"{p.name} role:{p.role} peer-disk:{worst_disk(p.disks) if p.disks else 'DUnknown'}"
        + (f" replication:{moving}" if moving else "")
        + (f" done:{p.done:.2f}" if p.done is not None else "")
    )


def group_status(group: str, node: str, res: DrbdResource) -> GroupStatus:
    """Translate the DRBD view into the engine's vocabulary."""
    role = _ROLE.get(res.role, "unknown")
    peer_roles = {_ROLE.get(p.role, "unknown") for p in res.peers if p.connected}
    peer_role: Role = "primary" if "primary" in peer_roles else "secondary" if peer_roles else "unknown"
    local = f"{res.name} role:{res.role} disk:{res.disk}"
    if res.client:
        local += " client:yes"
    if not res.quorum:
        local += " quorum:no"
    parts = [local, *(_peer_words(p) for p in res.peers)]
    if res.suspended:
        parts.append(f"suspended:{','.join(res.suspended)}")
    return GroupStatus(
        group=group,
        role=role,
        replication=_replication(res),
        lag_seconds=None,  # DRBD has no lag figure; protocol A/C is configuration
        presented_to=(node,) if role == "primary" else (),
        peer_role=peer_role,
        detail="; ".join(parts),
    )


def _replication(res: DrbdResource) -> Replication:
    # A diskless client (local or peer) holds no copy: it does not make a replica.
    replicas = [p for p in res.peers if not p.diskless]
    if not replicas or res.client:
        return "none"
    if not all(p.connected for p in replicas):
        return "broken"  # StandAlone / Connecting / a disconnect reason: nothing replicates now
    states = {s for p in replicas for s in p.replication}
    resync_paused = any(v.resync_suspended for p in replicas for v in p.volumes)
    if states & PAUSED_STATES or res.suspended or resync_paused:
        return "suspended"
    if states & (SYNCING_STATES | CATCHING_UP_STATES):
        return "syncing"
    if not states <= REPLICATING_STATES:
        return "unknown"  # Connected but not yet Established (the handshake): look again
    disks = {res.disk} | {d for p in replicas for d in p.disks}
    return "consistent" if disks == {"UpToDate"} else "broken"


# drbdsetup's state-change error numbers (drbd-headers drbd_strings.c:100-128) that mean
# something to the engine.
_SPLIT_BRAIN_CODES = ("(-1)",)  # Multiple primaries not allowed by config
_NOT_CONSISTENT_CODES = ("(-2)", "(-7)", "(-16)")  # no UpToDate data / peer not outdated / < Outdated
_NOT_FOUND = ("not defined in your config", "No such resource", "Unknown resource")
# glibc getopt's complaint (``unrecognized option '--json'``; glibc < 2.24 quoted with `)
_REFUSES_JSON = re.compile(r"unrecognized option [`']--json'")


def error_for(result: CommandResult) -> StorageError:
    """Map a failed drbdadm call to a typed error, keeping drbdadm's own message."""
    message = tool_message(result)
    if any(code in message for code in _SPLIT_BRAIN_CODES):
        return SplitBrainRefused(message, result=result)
    if any(code in message for code in _NOT_CONSISTENT_CODES):
        return NotConsistent(message, result=result)
    if any(text in message for text in _NOT_FOUND):
        return GroupNotFound(message, result=result)
    return StorageError(message, result=result)


def _status_error(result: CommandResult) -> StorageError:
    if result.exit_status == 20 and "invalid command" in result.stdout:
        # print_usage_and_exit("invalid command"): drbd-utils before 8.9.2 (which added
        # status for 8.4, commit 38f1a1fd) have no "drbdsetup status" at all.
        return StorageError(
            f"{result.host}: its drbdsetup has no 'status' command (drbd-utils before 8.9.2); "
            "drportal needs drbd-utils 8.9.2 or newer on every DRBD node",
            result=result,
        )
    return error_for(result)


def _link(res: DrbdResource, toward: str) -> DrbdPeer:
    """The connection of ``res`` toward node ``toward`` (8.4 names its only one ``peer``)."""
    named = [p for p in res.peers if p.name == toward]
    if named:
        return named[0]
    if len(res.peers) == 1:
        return res.peers[0]
    raise StorageError(
        f"{res.name} has no connection to {toward} (it has {', '.join(p.name for p in res.peers) or 'none'})"
    )


class DrbdDriver(StorageDriver):
    """``peer_runner`` (optional) reaches the other node; only ``reverse`` needs it, and
    without it ``reverse`` asks a person to run the commands instead."""

    kind = "drbd"

    def __init__(
        self,
        runner: Runner,
        *,
        peer_runner: Runner | None = None,
        drbdadm: str = "drbdadm",
        drbdsetup: str = "drbdsetup",
        timeout: float = 60.0,
    ) -> None:
        self.runner = runner
        self.peer_runner = peer_runner
        self.drbdadm = drbdadm
        self.drbdsetup = drbdsetup
        self.timeout = timeout
        self._text_only: set[str] = set()  # nodes whose drbdsetup refused --json

    @property
    def node(self) -> str:
        return self.runner.name

    def _run(self, *words: str, runner: Runner | None = None) -> CommandResult:
        result = (runner or self.runner).run([self.drbdadm, *words], timeout=self.timeout)
        if not result.ok:
            raise error_for(result)
        return result

    def _resource_on(self, runner: Runner, group: str) -> DrbdResource:
        check_name(group, "DRBD resource")
        if runner.name not in self._text_only:
            result = runner.run([self.drbdsetup, "status", group, "--json"], timeout=self.timeout)
            if result.ok:
                parsed = parse_status_json(result.stdout, host=runner.name, command=result.command)
                return self._pick(result, group, parsed)
            if result.exit_status != 20 or not _REFUSES_JSON.search(result.stderr):
                raise _status_error(result)
            self._text_only.add(runner.name)  # an 8.4 drbdsetup: it has only the text form
        result = runner.run(
            [self.drbdsetup, "status", group, "--verbose", "--statistics"], timeout=self.timeout
        )
        if not result.ok:
            raise _status_error(result)
        return self._pick(
            result, group, parse_status_text(result.stdout, host=runner.name, command=result.command)
        )

    @staticmethod
    def _pick(result: CommandResult, group: str, resources: dict[str, DrbdResource]) -> DrbdResource:
        res = resources.get(group)
        if res is None:
            raise StorageError(
                f"{result.host}: '{result.command}' printed no resource {group!r}", result=result
            )
        return res

    def _status_on(self, runner: Runner, group: str) -> GroupStatus:
        return group_status(group, runner.name, self._resource_on(runner, group))

    def status(self, group: str) -> GroupStatus:
        return self._status_on(self.runner, group)

    def promote(self, group: str, *, force: bool = False, current: GroupStatus | None = None) -> GroupStatus:
        current = current or self.status(group)
        if current.role == "primary":
            return current
        self._run("primary", *(["--force"] if force else []), group)
        return self.status(group)

    def demote(self, group: str) -> GroupStatus:
        current = self.status(group)
        if current.role == "secondary":
            return current
        self._run("secondary", group)  # "(-12) Device is held open by someone" while a domU runs
        return self.status(group)

    def present(self, group: str, host: str, *, current: GroupStatus | None = None) -> GroupStatus:
        check_name(host, "host name")
        current = current or self.status(group)
        if host != self.node:
            raise StorageError(
                f"DRBD resource {group} is local to {self.node}; it cannot be presented to {host}"
            )
        if current.role != "primary":
            raise StorageError(f"DRBD resource {group} is {current.role} on {self.node}; promote it first")
        return current

    def reverse(self, group: str) -> GroupStatus:
        mine = self._resource_on(self.runner, group)
        current = group_status(group, self.node, mine)
        if current.role != "primary":
            raise StorageError(
                f"reverse {group} from the new source: {self.node} is {current.role}, not primary"
            )
        if current.replication in ("consistent", "syncing"):
            return current
        if self.peer_runner is None:
            q = shlex.quote(group)
            raise ManualStepRequired(
                f"On the old source node run: drbdadm disconnect {q}; drbdadm secondary {q}; "
                f"drbdadm connect --discard-my-data {q}. "
                f"Then on {self.node}, if 'drbdadm status {q}' shows it StandAlone, run: drbdadm connect {q}. "
                "Then press 'Mark done' on the board.",
                group=group,
                action="reverse",
            )
        old = self._resource_on(self.peer_runner, group)
        if old.role == "Primary":
            raise SplitBrainRefused(
                f"{group} is primary on both {self.node} and {self.peer_runner.name}; "
                "resolve the split brain by hand before reversing"
            )
        # The documented split-brain recovery (DRBD user guides, "Manual split brain
        # recovery"): the old source must be StandAlone, discards its changes and becomes
        # the sync target; the survivor connects again if it gave up (StandAlone).
        if _link(old, self.node).connection != "StandAlone":
            self._run("disconnect", group, runner=self.peer_runner)
        self._run("connect", "--discard-my-data", group, runner=self.peer_runner)
        if _link(mine, self.peer_runner.name).connection == "StandAlone":
            self._run("connect", group)
        return self.status(group)

    def integrity_check(self, group: str) -> IntegrityReport:
        res = self._resource_on(self.runner, group)
        current = group_status(group, self.node, res)
        problems: list[str] = []
        notes: list[str] = [current.detail]
        if current.role != "primary":
            problems.append(f"{group} is {current.role} on {self.node}, not primary")
        if res.client:
            problems.append(f"{self.node} is a diskless client of {group}: it holds no copy of the data")
        elif res.disk != "UpToDate":
            problems.append(f"local disk of {group} on {self.node} is {res.disk}, not UpToDate")
        if not res.quorum:
            problems.append(f"{group} has no quorum on {self.node}: DRBD refuses writes (quorum:no)")
        if res.suspended:
            problems.append(
                f"I/O of {group} is suspended on {self.node} ({','.join(res.suspended)}): writes hang "
                "until it is resumed"
            )
        if current.replication in ("broken", "none", "suspended", "unknown"):
            notes.append(f"replication of {group} is {current.replication}")
        return integrity_report(group, problems, notes)

    # -- drills -------------------------------------------------------------------------

    def _no_snapshots(self, what: str) -> SnapshotUnsupported:
        return SnapshotUnsupported(
            f"{what}: DRBD has no snapshots of its own; a drill on DRBD needs an LVM snapshot of the "
            f"backing device on {self.node}, which drportal does not do. Use the manual storage driver "
            "for this group's drills (a person takes and removes the snapshot)."
        )

    def snapshot(self, group: str, name: str) -> SnapshotStatus:
        raise self._no_snapshots(f"cannot snapshot DRBD resource {check_name(group, 'DR group')}")

    def snapshot_status(self, name: str) -> SnapshotStatus | None:
        raise self._no_snapshots(f"cannot look up snapshot {check_name(name, 'snapshot name')}")

    def present_snapshot(self, name: str, host: str) -> SnapshotStatus:
        raise self._no_snapshots(f"cannot present snapshot {check_name(name, 'snapshot name')}")

    def unpresent_snapshot(self, name: str, host: str) -> SnapshotStatus:
        raise self._no_snapshots(f"cannot unpresent snapshot {check_name(name, 'snapshot name')}")

    def delete_snapshot(self, name: str) -> None:
        raise self._no_snapshots(f"cannot delete snapshot {check_name(name, 'snapshot name')}")

    def list_snapshots(self) -> tuple[str, ...]:
        raise self._no_snapshots("cannot list snapshots")
