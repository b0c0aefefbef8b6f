"""DRBD 8.4 / 9 over SSH with ``drbdadm``: parsers (pure functions) and the driver.

The DR group name is the DRBD resource name; the driver is bound to the node its runner
reaches. Formats follow the reference (xen-storage-cli-reference.md section 3):

* ``drbdadm status <res>`` (drbd-utils >= 8.9 on 8.4 kernels, and DRBD 9): indentation
  0 = resource, 2 = local volume or peer connection, 4+ = peer volume; 8.4-era utils
  name the peer ``peer`` and always print ``replication:Established``; lines wrap at
  80 columns when stdout is not a tty, continuation lines keep the current indent.
* ``drbdadm role`` prints ``Primary/Secondary`` on 8.4 and just ``Primary`` on 9.
* Failures: ``<obj>: State change failed: (-1) Multiple primaries not allowed by config``
  then ``Command 'drbdsetup primary <res>' terminated with exit code 11``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from hosts.drivers.base import CommandResult, Runner
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

SYNCING_STATES = frozenset(
    {"StartingSyncS", "StartingSyncT", "WFBitMapS", "WFBitMapT", "WFSyncUUID", "SyncSource", "SyncTarget"}
)
PAUSED_STATES = frozenset({"PausedSyncS", "PausedSyncT"})
# 8.4 mixes connection and replication states into one ``cs:``; these mean "connected".
CONNECTED_STATES = frozenset({"Connected", "Established", "Ahead", "Behind", "VerifyS", "VerifyT"}) | (
    SYNCING_STATES | PAUSED_STATES
)


@dataclass(frozen=True)
class DrbdPeer:
    name: str
    connection: str  # "Connected" unless the status line says otherwise
    role: str  # "Unknown" when not connected
    disks: tuple[str, ...]  # peer disk state per volume; empty when not connected
    replication: tuple[str, ...]  # per volume; "Established" when not printed
    done: float | None  # resync progress in percent, lowest over volumes

    @property
    def connected(self) -> bool:
        return self.connection in CONNECTED_STATES


@dataclass(frozen=True)
class DrbdResource:
    name: str
    role: str
    disks: tuple[str, ...]  # local disk state per volume
    suspended: str | None
    peers: tuple[DrbdPeer, ...]

    @property
    def disk(self) -> str:
        """The worst local disk state: what decides whether this node may be primary."""
        return _worst(self.disks) if self.disks else "Unknown"


_DISK_ORDER = (
    "Failed",
    "Diskless",
    "Attaching",
    "Detaching",
    "Negotiating",
    "Inconsistent",
    "Outdated",
    "DUnknown",
    "Consistent",
    "UpToDate",
)


def _worst(states: tuple[str, ...]) -> str:
    rank = {s: i for i, s in enumerate(_DISK_ORDER)}
    return min(states, key=lambda s: rank.get(s, -1))


def _pairs(words: list[str]) -> dict[str, str]:
    return dict(word.split(":", 1) for word in words if ":" in word)


def parse_status(text: str) -> dict[str, DrbdResource]:
    """Parse ``drbdadm status`` / ``drbdsetup status`` (non-JSON) output of 8.4-era and
    9 utils, including ``--verbose --statistics`` and 80-column wrapping."""
    resources: dict[str, DrbdResource] = {}
    res: dict | None = None
    dev: dict | None = None
    peer: dict | None = None
    pvol: dict | None = None

    def close() -> None:
        if res is not None:
            resources[res["name"]] = _build_resource(res)

    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        words = raw.split()
        first = words[0]
        if indent == 0 and ":" not in first:
            close()
            res = {"name": first, "fields": _pairs(words[1:]), "devices": [], "peers": []}
            dev = peer = pvol = None
            continue
        if res is None:
            continue
        fields = _pairs(words)
        if indent == 2 and ":" not in first:
            peer = {"name": first, "fields": _pairs(words[1:]), "volumes": []}
            res["peers"].append(peer)
            pvol = None
        elif peer is not None and indent == 2:
            peer["fields"].update(fields)  # wrapped continuation of the connection line
        elif peer is not None and indent >= 4:
            # A peer volume line, or a wrapped continuation of the current one.
            if pvol is None or ("volume" in fields and "volume" in pvol):
                pvol = {}
                peer["volumes"].append(pvol)
            pvol.update(fields)
        elif peer is None and indent >= 2 and ("volume" in fields or "disk" in fields or dev is not None):
            if (
                dev is None
                or ("volume" in fields and "volume" in dev)
                or ("disk" in fields and "disk" in dev)
            ):
                dev = {}
                res["devices"].append(dev)
            dev.update(fields)
        else:
            res["fields"].update(fields)  # e.g. verbose "write-ordering:flush" under the resource
    close()
    return resources


def _build_resource(res: dict) -> DrbdResource:
    peers = []
    for p in res["peers"]:
        f = p["fields"]
        connection = f.get("connection", "Connected")
        vols = p["volumes"]
        # 9 utils of some versions print "disk:" instead of "peer-disk:" under a peer.
        disks = tuple(v.get("peer-disk", v.get("disk", "DUnknown")) for v in vols)
        dones = [float(v["done"]) for v in vols if _is_float(v.get("done", ""))]
        peers.append(
            DrbdPeer(
                name=p["name"],
                connection=connection,
                role=f.get("role", "Unknown"),
                disks=disks,
                replication=tuple(v.get("replication", "Established") for v in vols),
                done=min(dones) if dones else None,
            )
        )
    suspended = res["fields"].get("suspended")
    return DrbdResource(
        name=res["name"],
        role=res["fields"].get("role", "Unknown"),
        disks=tuple(d.get("disk", "Unknown") for d in res["devices"]),
        suspended=None if suspended in (None, "no") else suspended,
        peers=tuple(peers),
    )


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


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
    """One connection state per line (9 prints one per peer, 8.4 one in total)."""
    return tuple(line.strip() for line in text.splitlines() if line.strip())


_ROLE: dict[str, Role] = {"Primary": "primary", "Secondary": "secondary"}


def group_status(group: str, node: str, res: DrbdResource) -> GroupStatus:
    """Translate the DRBD view into the engine's vocabulary."""
    role = _ROLE.get(res.role, "unknown")
    peer_roles = {_ROLE.get(p.role, "unknown") for p in res.peers if p.connected}
    peer_role: Role = "primary" if "primary" in peer_roles else "secondary" if peer_roles else "unknown"
    parts = [f"{res.name} role:{res.role} disk:{res.disk}"]
    for p in res.peers:
        if p.connected:
            sync = "/".join(s for s in p.replication if s != "Established")
            parts.append(
                f"{p.name} role:{p.role} peer-disk:{_worst(p.disks) if p.disks else 'DUnknown'}"
                + (f" replication:{sync}" if sync else "")
                + (f" done:{p.done:.2f}" if p.done is not None else "")
            )
        else:
            parts.append(f"{p.name} connection:{p.connection}")
    if res.suspended:
        parts.append(f"suspended:{res.suspended}")
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
    if not res.peers:
        return "none"
    states = {s for p in res.peers for s in p.replication}
    if not all(p.connected for p in res.peers):
        return "broken"  # StandAlone / Connecting / WFConnection: nothing is replicated now
    if states & PAUSED_STATES or res.suspended:
        return "suspended"
    if states & SYNCING_STATES:
        return "syncing"
    disks = {res.disk} | {d for p in res.peers for d in p.disks}
    return "consistent" if disks == {"UpToDate"} else "broken"


# drbdsetup's state-change error numbers (reference 3.1) that mean something to the engine.
_SPLIT_BRAIN_CODES = ("(-1)",)  # Multiple primaries not allowed by config
_NOT_CONSISTENT_CODES = ("(-2)", "(-7)", "(-16)")  # no UpToDate data / peer not outdated / < Outdated
_NOT_FOUND = ("not defined in your config", "No such resource", "Unknown resource")


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


class DrbdDriver(StorageDriver):
    """``peer_runner`` (optional) reaches the other node; only ``reverse`` needs it, and
    without it ``reverse`` asks a person to run the two commands instead."""

    kind = "drbd"

    def __init__(
        self,
        runner: Runner,
        *,
        peer_runner: Runner | None = None,
        drbdadm: str = "drbdadm",
        timeout: float = 60.0,
    ) -> None:
        self.runner = runner
        self.peer_runner = peer_runner
        self.drbdadm = drbdadm
        self.timeout = timeout

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
        result = self._run("status", group, runner=runner)
        res = parse_status(result.stdout).get(group)
        if res is None:
            raise StorageError(f"drbdadm status printed no resource {group!r}", result=result)
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
        current = self.status(group)
        if current.role != "primary":
            raise StorageError(
                f"reverse {group} from the new source: {self.node} is {current.role}, not primary"
            )
        if current.replication in ("consistent", "syncing"):
            return current
        if self.peer_runner is None:
            raise ManualStepRequired(
                f"On the old source node run: drbdadm secondary {shlex.quote(group)}; "
                f"drbdadm connect --discard-my-data {shlex.quote(group)}. "
                f"Then on {self.node} run: drbdadm connect {shlex.quote(group)}. "
                "Then press 'Mark done' on the board.",
                group=group,
                action="reverse",
            )
        peer = self._status_on(self.peer_runner, group)
        if peer.role == "primary":
            raise SplitBrainRefused(
                f"{group} is primary on both {self.node} and {self.peer_runner.name}; "
                "resolve the split brain by hand before reversing"
            )
        # The documented split-brain recovery (reference 3.8): the old source discards its
        # changes and becomes the sync target; the survivor reconnects.
        self._run("connect", "--discard-my-data", group, runner=self.peer_runner)
        self._run("connect", group)
        return self.status(group)

    def integrity_check(self, group: str) -> IntegrityReport:
        res = self._resource_on(self.runner, group)
        current = group_status(group, self.node, res)
        disk = res.disk
        problems: list[str] = []
        notes: list[str] = [current.detail]
        if current.role != "primary":
            problems.append(f"{group} is {current.role} on {self.node}, not primary")
        if disk != "UpToDate":
            problems.append(f"local disk of {group} on {self.node} is {disk}, not UpToDate")
        if current.replication in ("broken", "none", "suspended"):
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
