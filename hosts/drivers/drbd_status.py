"""Reading what ``drbdsetup status`` (and ``drbdadm status``, which runs it) prints on
DRBD 8.4 and 9: the text form, plain or ``--verbose --statistics``, and ``--json``.

Written from drbd-utils 9.22.0 (the version Debian 12 ships), ``user/v9/drbdsetup.c``
and ``user/v84/drbdsetup.c`` (the 8.4 printer of drbd-utils >= 8.9.2), cited below as
v9:LINE and v84:LINE. The text form (v9:2925-3144, v84:2456-2641):

* each resource: its line at column 0 (``<name> role:.. [suspended:..]``), then its
  devices at indent 2 (``[volume:N] disk:..``), then its connections at indent 2
  (``<peer name> role:..`` or ``connection:<state>``), each followed by its peer devices
  at indent 4 (``[volume:N] [replication:..] peer-disk:..``); a blank line ends it.
  ``volume:N`` is left out when a resource has exactly one volume, number 0 (unless
  ``--verbose``). 8.4 names every connection ``peer`` and prints
  ``replication:Established`` (v84:2561: any state above WFReportParams).
* every field goes through ``wrap_printf`` (user/shared/wrap_printf.c:8-51): a field
  that would pass column 80 (the width when stdout is no terminal, wrap_printf.c:20-21)
  starts a new line indented by the element's continuation indent: 4 for a resource,
  6 for a device (2 while a single volume's first fields are printed) and a connection,
  8 for a peer device. A ``--statistics`` block starts a line at that indent too. When a
  line ends exactly at column 80, the next line keeps a stray indent (wrap_printf.c:28-40
  put the newline first and the indent after it), so a device or connection may start
  at indent 6 and a statistics line at 5, 7 or 9; all of these are read.

The JSON form (``--json``) is read by drbd_status_json.py into the same records.

Nothing is returned from a half-read answer: any line (or JSON value) this module cannot
place raises ``StatusUnreadable`` naming the host, the command, the line and what was
expected. Fields drportal does not know (a newer drbd-utils adds some: ``open:``,
``tls:``) are kept but not interpreted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from hosts.drivers.storage import StorageError

# drbd-headers drbd_strings.c (the submodule commit of drbd-utils 9.22.0), lines 71-75,
# 30-41, 48-64 and 82-93. 8.4's printer maps its connection states onto the DRBD 9 words
# (v84:2543-2549: WFConnection -> Connecting, WFReportParams -> Connected) and its peer
# device states through drbd_repl_str9 (v84:2533-2539), which passes the other 8.4
# names through unchanged (user/v84/drbd_strings.c:29-54).
ROLES = ("Unknown", "Primary", "Secondary")
# fmt: off
CONNECTION_STATES = (
    "StandAlone", "Disconnecting", "Unconnected", "Timeout", "BrokenPipe", "NetworkFailure",
    "ProtocolError", "TearDown", "Connecting", "Connected",
)
REPLICATION_STATES = (
    "Off", "Established", "StartingSyncS", "StartingSyncT", "WFBitMapS", "WFBitMapT", "WFSyncUUID",
    "SyncSource", "SyncTarget", "VerifyS", "VerifyT", "PausedSyncS", "PausedSyncT", "Ahead", "Behind",
)
DISK_STATES = (
    "Diskless", "Attaching", "Detaching", "Failed", "Negotiating", "Inconsistent", "Outdated",
    "DUnknown", "Consistent", "UpToDate",
)
# fmt: on
# What 8.4 prints as a peer device's replication while it is not connected (--verbose):
# its own names for the states below WFReportParams.
REPLICATION_STATES_84 = (*CONNECTION_STATES[:8], "WFConnection")
SUSPEND_REASONS = ("user", "no-data", "fencing", "quorum")  # v9:2465-2491 (8.4: v84:2323-2338)
RESYNC_SUSPEND_REASONS = ("user", "peer", "dependency", "max-parallel")  # v9:3016-3034 (+ HEAD)
BLOCKED = ("no", "upper", "lower", "upper,lower")  # v9:2559-2577
YES_NO = ("yes", "no")
YES_NO_UNKNOWN = ("yes", "no", "unknown")  # v9:2996-3005 (client:, peer-client:)


class StatusUnreadable(StorageError):
    """A status answer drportal cannot read; nothing of it may be used."""

    def __init__(self, host: str, command: str, line: int | None, text: str, expected: str) -> None:
        where = f"line {line}: {text!r}" if line is not None else text
        super().__init__(f"{host}: cannot read what '{command}' printed: {where}: expected {expected}")
        self.host, self.command, self.line, self.expected = host, command, line, expected


@dataclass(frozen=True)
class DrbdVolume:
    """One local device of a resource."""

    volume: int
    disk: str
    minor: int | None = None
    client: str | None = None  # intentional diskless: "yes"/"no"/"unknown"; None = not printed
    quorum: bool = True
    blocked: str = "no"
    size_kib: int | None = None


@dataclass(frozen=True)
class DrbdPeerVolume:
    """One peer device: how one volume of this resource replicates to one peer."""

    volume: int
    replication: str
    peer_disk: str  # "DUnknown" when the printer left it out (replication Off, disk unknown)
    peer_client: str | None = None
    done: float | None = None  # resync progress in percent
    resync_suspended: tuple[str, ...] = ()
    out_of_sync_kib: int | None = None
    eta_seconds: float | None = None


@dataclass(frozen=True)
class DrbdPeer:
    name: str  # the connection name; "node-id:N" when the connection has none
    connection: str
    role: str  # "Unknown" when not connected
    volumes: tuple[DrbdPeerVolume, ...] = ()
    node_id: int | None = None
    congested: bool | None = None

    @property
    def connected(self) -> bool:
        return self.connection == "Connected"

    @property
    def disks(self) -> tuple[str, ...]:
        return tuple(v.peer_disk for v in self.volumes)

    @property
    def replication(self) -> tuple[str, ...]:
        return tuple(v.replication for v in self.volumes)

    @property
    def done(self) -> float | None:
        dones = [v.done for v in self.volumes if v.done is not None]
        return min(dones) if dones else None

    @property
    def diskless(self) -> bool:
        """An intentionally diskless peer (a DRBD client): it holds no copy of the data."""
        return bool(self.volumes) and all(
            v.peer_disk == "Diskless" and v.peer_client != "no" for v in self.volumes
        )


@dataclass(frozen=True)
class DrbdResource:
    name: str
    role: str
    volumes: tuple[DrbdVolume, ...] = ()
    peers: tuple[DrbdPeer, ...] = ()
    suspended: tuple[str, ...] = ()  # empty: I/O is not suspended
    node_id: int | None = None
    force_io_failures: bool | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def disks(self) -> tuple[str, ...]:
        return tuple(v.disk for v in self.volumes)

    @property
    def disk(self) -> str:
        """The worst local disk state: what decides whether this node may be primary."""
        return worst_disk(self.disks) if self.volumes else "DUnknown"

    @property
    def quorum(self) -> bool:
        return all(v.quorum for v in self.volumes)

    @property
    def client(self) -> bool:
        """This node is an intentionally diskless client of the resource."""
        return bool(self.volumes) and all(v.disk == "Diskless" and v.client == "yes" for v in self.volumes)


# Worst first: Failed and Diskless hold no usable data; DUnknown never describes a local disk.
_WORST_FIRST = ("Failed", "Diskless", "Detaching", "Attaching", "Negotiating", "Inconsistent", "Outdated")
_WORST_FIRST += ("DUnknown", "Consistent", "UpToDate")
_DISK_RANK = {s: i for i, s in enumerate(_WORST_FIRST)}


def worst_disk(states: tuple[str, ...]) -> str:
    return min(states, key=lambda s: _DISK_RANK.get(s, -1))


# --- the text form ---------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # --color=always (a terminal): never over SSH exec
# Indents a continuation line may have per element (see the module docstring).
_CONTINUATION = {"resource": (4, 5), "device": (2, 6, 7), "connection": (6, 7), "peer": (8, 9)}
_STARTS = {"device": (2, 6), "connection": (2, 6), "peer": (4,)}


@dataclass
class _Rec:
    kind: str
    line: int
    text: str
    fields: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # key -> value, line, text
    name: str | None = None
    children: list[_Rec] = field(default_factory=list)


class _TextReader:
    def __init__(self, text: str, host: str, command: str) -> None:
        self.text, self.host, self.command = text, host, command

    def fail(self, line: int | None, text: str, expected: str) -> StatusUnreadable:
        return StatusUnreadable(self.host, self.command, line, text, expected)

    def records(self) -> list[_Rec]:
        resources: list[_Rec] = []
        res = dev = conn = peer = None
        for number, raw in enumerate(self.text.splitlines(), start=1):
            line = _ANSI.sub("", raw).rstrip()
            if not line.strip():
                continue
            if line.startswith("#") and res is None:
                continue  # "# No currently configured DRBD found." (v9:3207-3208)
            if "\t" in line:
                raise self.fail(number, raw, "fields separated by spaces (drbdsetup prints no tabs)")
            indent = len(line) - len(line.lstrip(" "))
            words = line.split()
            first = words[0]
            if indent == 0:
                if ":" in first:
                    raise self.fail(number, raw, "a resource name at the start of the line")
                res = _Rec("resource", number, raw, name=first)
                resources.append(res)
                dev = conn = peer = None
                self.add_fields(res, words[1:], number, raw)
                continue
            if res is None:
                raise self.fail(number, raw, "a resource line (the resource name in column 1) first")
            key = first.partition(":")[0]
            if ":" not in first:  # a connection's name
                self.check_indent(number, raw, indent, _STARTS["connection"] + (7,), "a connection")
                conn = _Rec("connection", number, raw, name=first)
                res.children.append(conn)
                peer = None
                self.add_fields(conn, words[1:], number, raw)
            elif key == "node-id" and indent == 2:  # a connection without a name (v9:3123-3125)
                conn = _Rec("connection", number, raw, name=None)
                res.children.append(conn)
                peer = None
                self.add_fields(conn, words, number, raw)
            elif conn is not None and indent == 4:
                if key != "volume" and any(c.kind == "peer" for c in conn.children):
                    raise self.fail(number, raw, "volume:N before the fields of a second peer volume")
                peer = _Rec("peer", number, raw)
                conn.children.append(peer)
                self.add_fields(peer, words, number, raw)
            elif conn is None and (
                key == "volume" or (key == "disk" and (dev is None or "disk" in dev.fields))
            ):
                self.check_indent(number, raw, indent, _STARTS["device"] + (7,), "a volume of the resource")
                dev = _Rec("device", number, raw)
                res.children.append(dev)
                self.add_fields(dev, words, number, raw)
            else:
                target = peer or conn or dev or res
                self.check_indent(
                    number,
                    raw,
                    indent,
                    _CONTINUATION[target.kind],
                    f"a continuation of the {target.kind} line",
                )
                self.add_fields(target, words, number, raw)
        return resources

    def check_indent(self, number: int, raw: str, indent: int, allowed: tuple[int, ...], what: str) -> None:
        if indent not in allowed:
            spaces = " or ".join(str(a) for a in allowed)
            raise self.fail(number, raw, f"{what} indented by {spaces} spaces, not {indent}")

    def add_fields(self, rec: _Rec, words: list[str], number: int, raw: str) -> None:
        for word in words:
            key, sep, value = word.partition(":")
            if not sep or not key or not value:
                raise self.fail(number, raw, f"key:value fields, not {word!r}")
            if key in rec.fields:
                raise self.fail(number, raw, f"{key}: only once per {rec.kind}")
            rec.fields[key] = (value, number, raw)


class _Fields:
    """Typed access to one record's fields; every failure names the line it came from."""

    def __init__(self, reader: _TextReader, rec: _Rec) -> None:
        self.reader, self.rec = reader, rec

    def _raw(self, key: str) -> tuple[str, int, str] | None:
        return self.rec.fields.get(key)

    def word(self, key: str, allowed: tuple[str, ...], default: str | None = None) -> str | None:
        found = self._raw(key)
        if found is None:
            return default
        value, line, text = found
        if value not in allowed:
            raise self.reader.fail(line, text, f"{key}: one of {', '.join(allowed)}")
        return value

    def number(self, key: str, kind: type = int) -> int | float | None:
        found = self._raw(key)
        if found is None:
            return None
        value, line, text = found
        try:
            return kind(value)
        except ValueError:
            raise self.reader.fail(line, text, f"{key}: a number") from None

    def reasons(self, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        found = self._raw(key)
        if found is None or found[0] == "no":
            return ()
        value, line, text = found
        parts = tuple(value.split(","))
        if any(p not in allowed for p in parts):
            raise self.reader.fail(line, text, f"{key}: no, or a comma list of {', '.join(allowed)}")
        return parts


def parse_status_text(
    text: str, *, host: str = "?", command: str = "drbdsetup status"
) -> dict[str, DrbdResource]:
    """Parse the text form of ``drbdsetup status`` / ``drbdadm status`` (8.4 or 9, plain,
    ``--verbose`` and/or ``--statistics``). Raises StatusUnreadable, never half-reads."""
    reader = _TextReader(text, host, command)
    out: dict[str, DrbdResource] = {}
    for rec in reader.records():
        out[rec.name or ""] = _resource_from_text(reader, rec)
    return out


def _resource_from_text(reader: _TextReader, rec: _Rec) -> DrbdResource:
    f = _Fields(reader, rec)
    role = f.word("role", ROLES)
    if role is None:
        raise reader.fail(rec.line, rec.text, "role: on the resource line")
    volumes, peers = [], []
    for child in rec.children:
        c = _Fields(reader, child)
        if child.kind == "device":
            disk = c.word("disk", DISK_STATES)
            if disk is None:
                raise reader.fail(child.line, child.text, "disk: on the volume line")
            volumes.append(
                DrbdVolume(
                    volume=int(c.number("volume") or 0),
                    disk=disk,
                    minor=c.number("minor"),  # type: ignore[arg-type]
                    client=c.word("client", YES_NO_UNKNOWN),
                    quorum=c.word("quorum", YES_NO, "yes") == "yes",
                    blocked=c.word("blocked", BLOCKED, "no") or "no",
                    size_kib=c.number("size"),  # type: ignore[arg-type]
                )
            )
        else:
            peers.append(_peer_from_text(reader, child))
    _check_unique(reader, rec, [v.volume for v in volumes], "volume")
    return DrbdResource(
        name=rec.name or "",
        role=role,
        volumes=tuple(volumes),
        peers=tuple(peers),
        suspended=f.reasons("suspended", SUSPEND_REASONS),
        node_id=f.number("node-id"),  # type: ignore[arg-type]
        force_io_failures=None
        if "force-io-failures" not in rec.fields
        else f.word("force-io-failures", YES_NO) == "yes",
        extra={k: v[0] for k, v in rec.fields.items()},
    )


def _peer_from_text(reader: _TextReader, rec: _Rec) -> DrbdPeer:
    c = _Fields(reader, rec)
    connection = c.word("connection", CONNECTION_STATES, "Connected") or "Connected"
    role = c.word("role", ROLES)
    if role is None and connection == "Connected":
        raise reader.fail(rec.line, rec.text, "role: or connection: on the connection line")
    volumes = []
    for child in rec.children:
        p = _Fields(reader, child)
        # Without replication: it is Established (v9:3047 prints only states above it) or
        # Off; 8.4 prints Established (v84:2561), so there it is Off.
        replication = p.word("replication", REPLICATION_STATES + REPLICATION_STATES_84, "Established")
        # DRBD 9 user guides show "disk:" under a peer; the printer says "peer-disk:" since
        # drbd-utils commit c79c3393 (2013). Both are read.
        peer_disk = p.word("peer-disk", DISK_STATES) or p.word("disk", DISK_STATES) or "DUnknown"
        eta = p.number("eta", float)
        volumes.append(
            DrbdPeerVolume(
                volume=int(p.number("volume") or 0),
                replication=replication or "Established",
                peer_disk=peer_disk,
                peer_client=p.word("peer-client", YES_NO_UNKNOWN),
                done=p.number("done", float),  # type: ignore[arg-type]
                resync_suspended=p.reasons("resync-suspended", RESYNC_SUSPEND_REASONS),
                out_of_sync_kib=p.number("out-of-sync"),  # type: ignore[arg-type]
                eta_seconds=None if eta is None or math.isnan(eta) else eta,
            )
        )
    _check_unique(reader, rec, [v.volume for v in volumes], "peer volume")
    node_id = c.number("node-id")
    return DrbdPeer(
        name=rec.name if rec.name is not None else f"node-id:{node_id}",
        connection=connection,
        role=role or "Unknown",
        volumes=tuple(volumes),
        node_id=node_id,  # type: ignore[arg-type]
        congested=None if "congested" not in rec.fields else c.word("congested", YES_NO) == "yes",
    )


def _check_unique(reader: _TextReader, rec: _Rec, numbers: list[int], what: str) -> None:
    if len(set(numbers)) != len(numbers):
        raise reader.fail(rec.line, rec.text, f"each {what} number once")
