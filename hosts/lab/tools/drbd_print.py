"""What the lab's ``drbdsetup status`` prints: the kernel's view of a resource (the records
below, built from the lab state by drbd_view.py) written the way drbd-utils 9.22.0
writes it. Re-written from the printers' formats, line by line, not from drportal's
parser (that would only agree with itself):

* text, DRBD 9: user/v9/drbdsetup.c resource_status 2925-2954, device_status 2965-2994,
  peer_device_status 3036-3100, connection_status 3115-3145, statistics 2507-2593 and
  2840-2923, status_cmd 3169-3275 (cited as v9:LINE);
* text, DRBD 8.4 (drbdsetup-84 of drbd-utils >= 8.9.2): user/v84/drbdsetup.c 2352-2455,
  2456-2641, 2668-2747 (v84:LINE);
* JSON (DRBD 9 only): v9:2600-2838 and v9:3215-3268;
* line wrapping: user/shared/wrap_printf.c:8-51 (``_Wrap``).

The records carry the kernel's words: a DRBD 9 host's states are DRBD 9's, an 8.4 host's
are 8.4's (its connection stays between StandAlone and WFReportParams, drbd_int.h of DRBD
8.4: "Only C_STANDALONE to C_WF_REPORT_PARAMS"; its peer devices carry the device's
connection state), and the 8.4 printer maps them as drbdsetup-84 does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Orders of the state enums, for the printers' comparisons (drbd-headers linux/drbd.h:
# 220-264; user/v84/linux/drbd.h:199-236).
_REPL_9 = (  # noqa: SIM905 - the enum as its source lists it
    "Off Established StartingSyncS StartingSyncT WFBitMapS WFBitMapT WFSyncUUID SyncSource "
    "SyncTarget VerifyS VerifyT PausedSyncS PausedSyncT Ahead Behind"
).split()
_CONN_84 = (  # noqa: SIM905
    "StandAlone Disconnecting Unconnected Timeout BrokenPipe NetworkFailure ProtocolError TearDown "
    "WFConnection WFReportParams Connected StartingSyncS StartingSyncT WFBitMapS WFBitMapT WFSyncUUID "
    "SyncSource SyncTarget VerifyS VerifyT PausedSyncS PausedSyncT Ahead Behind"
).split()
_CONN_84_RANK = {s: i for i, s in enumerate(_CONN_84)}
_REPL_9_RANK = {s: i for i, s in enumerate(_REPL_9)}
_SUSPEND_ORDER = ("user", "no-data", "fencing", "quorum")  # v9:2465-2491 index bits
_RESYNC_SUSPEND_ORDER = ("user", "peer", "dependency")  # v9:3016-3034


@dataclass
class Device:
    volume: int
    minor: int
    disk: str
    client: bool = False  # intentional diskless
    quorum: bool = True
    backing_dev: str = ""
    size_kib: int = 1048576
    read_kib: int = 0
    written_kib: int = 0
    al_writes: int = 0
    bm_writes: int = 0
    upper_pending: int = 0
    lower_pending: int = 0
    al_suspended: bool = False
    blocked_upper: bool = False
    blocked_lower: bool = False


@dataclass
class PeerDevice:
    volume: int
    replication: str  # DRBD 9: a replication state; 8.4: the device's connection state
    peer_disk: str
    peer_client: bool = False
    resync_suspended: tuple[str, ...] = ()
    received_kib: int = 0
    sent_kib: int = 0
    out_of_sync_kib: int = 0
    pending: int = 0
    unacked: int = 0
    rs_total: int = 0  # sectors of the running resync (0: none), DRBD 9's sync details
    rs_dt_start_ms: int = 0  # since the resync started
    rs_dt1_ms: int = 0  # the kernel's recent window, and the sectors it synced in it
    rs_db1_sectors: int = 0


@dataclass
class Connection:
    name: str
    peer_node_id: int
    state: str  # DRBD 9: a connection state; 8.4: StandAlone .. WFReportParams
    role: str = "Unknown"
    congested: bool = False
    ap_in_flight: int = 0
    rs_in_flight: int = 0
    peer_devices: list[PeerDevice] = field(default_factory=list)


@dataclass
class Resource:
    name: str
    node_id: int
    role: str
    suspended: tuple[str, ...] = ()  # of "user", "no-data", "fencing", "quorum"
    force_io_failures: bool = False
    write_ordering: str = "flush"
    devices: list[Device] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)


class _Wrap:
    """wrap_printf: a field that would pass the last column starts a new line (and a
    leading newline of its format is then dropped); a field at the start of a line loses
    its leading spaces and gets the indent; only a format ending in a newline resets the
    column, so a newline that had to wrap leaves the indent standing (wrap_printf.c:28-48)."""

    def __init__(self, columns: int = 80) -> None:
        self.columns, self.col, self.out = columns, 0, []

    def __call__(self, indent: int, text: str) -> None:
        n = len(text)
        if self.col + n > self.columns:
            self.out.append("\n")
            text = text[1:] if text.startswith("\n") else text
            self.col = 0
        if self.col == 0:
            text = text.lstrip(" ")
            self.col += indent
            self.out.append(" " * indent)
        self.out.append(text)
        self.col += len(text)
        if text.endswith("\n"):
            self.col = 0

    def text(self) -> str:
        return "".join(self.out)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _susp(reasons: tuple[str, ...], order: tuple[str, ...]) -> str:
    shown = [r for r in order if r in reasons]
    return ",".join(shown) if shown else "no"


def _blocked(dev: Device) -> str:
    parts = [p for p, on in (("upper", dev.blocked_upper), ("lower", dev.blocked_lower)) if on]
    return ",".join(parts) or "no"


def _mib_s(sectors: float, ms: float) -> str:
    return f"{sectors / (ms or 1) * 1000.0 / 2048.0:.2f}"  # sectors per ms -> MiB/s


def _c_float(value: float, digits: int) -> str:
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"  # printf("%.Nf", NAN) is "nan"


# --- text --------------------------------------------------------------------------------


def status_text(
    resources: list[Resource], *, drbd84: bool, verbose: int = 0, statistics: bool = False, tty: bool = False
) -> str:
    """The text of ``drbdsetup status`` for these resources (already those asked for)."""
    w = _Wrap()
    for res in sorted(resources, key=lambda r: r.name):  # sort_resources, v9:3470-3492
        single = len(res.devices) == 1
        if drbd84:
            _resource_84(w, res, verbose, statistics)
            for dev in res.devices:
                _device(w, dev, single, verbose, statistics, tty, drbd84=True)
            for conn in res.connections:
                _connection_84(w, conn, res, single, verbose, statistics)
        else:
            _resource_9(w, res, verbose, statistics)
            for dev in res.devices:
                _device(w, dev, single, verbose, statistics, tty, drbd84=False)
            # sort_connections, v9:3659-3690: by name
            for conn in sorted(res.connections, key=lambda c: c.name):
                _connection_9(w, conn, res, single, verbose, statistics, tty)
        w(0, "\n")
    return w.text()


def _resource_9(w: _Wrap, res: Resource, verbose: int, statistics: bool) -> None:
    w(0, res.name)
    if verbose:
        w(4, f" node-id:{res.node_id}")
    w(4, f" role:{res.role}")
    if verbose or res.suspended:
        w(4, f" suspended:{_susp(res.suspended, _SUSPEND_ORDER)}")
    if verbose or res.force_io_failures:
        w(4, f" force-io-failures:{_yes(res.force_io_failures)}")
    if statistics and verbose:
        w(4, "\n")
        w(4, f" write-ordering:{res.write_ordering}")
    w(0, "\n")


def _resource_84(w: _Wrap, res: Resource, verbose: int, statistics: bool) -> None:
    w(0, res.name)
    w(4, f" role:{res.role}")
    suspended = tuple(r for r in res.suspended if r != "quorum")  # 8.4 has no quorum
    if verbose or suspended:
        w(4, f" suspended:{_susp(suspended, _SUSPEND_ORDER)}")  # v84:2323-2338
    if statistics and verbose:
        w(4, "\n")
        w(4, f" write-ordering:{res.write_ordering}")
    w(0, "\n")


def _device(
    w: _Wrap, dev: Device, single: bool, verbose: int, statistics: bool, tty: bool, *, drbd84: bool
) -> None:
    indent = 2
    if verbose or not (single and dev.volume == 0):
        w(indent, f"volume:{dev.volume}")
        indent = 6
        if verbose:
            w(indent, f" minor:{dev.minor}")
    w(indent, f" disk:{dev.disk}")
    if not drbd84:  # v9:2978-2987; 8.4's device line ends with the disk (v84:2491-2513)
        if dev.disk == "Diskless" and (verbose or not tty):
            w(indent, f" client:{_yes(dev.client)}")
        if verbose:
            w(indent, f" backing_dev:{dev.backing_dev or 'none'}")
        if verbose or not dev.quorum:
            w(indent, f" quorum:{_yes(dev.quorum)}")
    indent = 6
    if statistics:  # the kernel always sends device statistics (dev_size != -1)
        w(indent, "\n")
        if verbose:
            w(indent, f" size:{dev.size_kib}")
        w(indent, f" read:{dev.read_kib}")
        w(indent, f" written:{dev.written_kib}")
        if verbose:
            w(indent, f" al-writes:{dev.al_writes}")
            w(indent, f" bm-writes:{dev.bm_writes}")
            w(indent, f" upper-pending:{dev.upper_pending}")
            w(indent, f" lower-pending:{dev.lower_pending}")
            w(indent, f" al-suspended:{_yes(dev.al_suspended)}")
    if verbose or dev.blocked_upper or dev.blocked_lower:
        w(indent, f" blocked:{_blocked(dev)}")
    w(indent, "\n")


def _connection_9(
    w: _Wrap, conn: Connection, res: Resource, single: bool, verbose: int, statistics: bool, tty: bool
) -> None:
    w(2, conn.name)
    if verbose:
        w(6, f" node-id:{conn.peer_node_id}")
    if verbose or conn.state != "Connected":
        w(6, f" connection:{conn.state}")
    if verbose or conn.state == "Connected":
        w(6, f" role:{conn.role}")
    if verbose or conn.congested:
        w(6, f" congested:{_yes(conn.congested)}")
        w(6, f" ap-in-flight:{conn.ap_in_flight}")
        w(6, f" rs-in-flight:{conn.rs_in_flight}")
    w(0, "\n")
    if verbose or statistics or conn.state == "Connected":
        for pd in conn.peer_devices:
            _peer_device(w, pd, _device_of(res, pd), single, verbose, statistics, tty, drbd84=False)


def _device_of(res: Resource, pd: PeerDevice) -> Device:
    return next(d for d in res.devices if d.volume == pd.volume)


def _peer_device(
    w: _Wrap,
    pd: PeerDevice,
    dev: Device,
    single: bool,
    verbose: int,
    statistics: bool,
    tty: bool,
    drbd84: bool,
) -> None:
    """peer_device_status, v9:3036-3100 and v84:2552-2600: one shape, 8.4's states.
    8.4 compares its connection states (printed through drbd_repl_str9) where 9 compares
    replication states, has no peer-client, and computes done: from the out-of-sync share."""
    indent = 4
    if drbd84:
        rank, above, idle, shown = (
            _CONN_84_RANK[pd.replication],
            _CONN_84_RANK["WFReportParams"],
            "WFReportParams",
            _repl_str9(pd.replication),
        )
    else:
        rank, above, idle, shown = (
            _REPL_9_RANK[pd.replication],
            _REPL_9_RANK["Established"],
            "Off",
            pd.replication,
        )
    if verbose or not (single and pd.volume == 0):
        w(indent, f"volume:{pd.volume}")
        indent = 8
    if verbose or rank > above:
        w(indent, f" replication:{shown}")
        indent = 8
    if verbose or statistics or pd.replication != idle or pd.peer_disk != "DUnknown":
        w(indent, f" peer-disk:{pd.peer_disk}")
        if not drbd84 and pd.peer_disk == "Diskless" and (verbose or not tty):
            w(indent, f" peer-client:{_yes(pd.peer_client)}")
        indent = 8
        if drbd84 and _CONN_84_RANK["SyncSource"] <= rank <= _CONN_84_RANK["PausedSyncT"]:
            w(indent, f" done:{100 * (1 - pd.out_of_sync_kib / dev.size_kib):.2f}")
        elif not drbd84 and pd.rs_total:  # the kernel's sync details (v9:3077-3085)
            w(indent, f" done:{100.0 * (pd.rs_total - _to_go(pd)) / pd.rs_total:.2f}")
        if verbose or pd.resync_suspended:
            w(indent, f" resync-suspended:{_susp(pd.resync_suspended, _RESYNC_SUSPEND_ORDER)}")
        if statistics:
            w(indent, "\n")
            _peer_statistics(w, indent, pd, verbose, details=not drbd84)
    w(0, "\n")


def _to_go(pd: PeerDevice) -> int:
    return pd.out_of_sync_kib * 2  # sectors still out of sync (no failed blocks in the lab)


def _peer_statistics(w: _Wrap, indent: int, pd: PeerDevice, verbose: int, *, details: bool) -> None:
    """print_peer_device_statistics, v9:2840-2923 (called with indent != 0); 8.4's
    (v84:2436-2454) is its first half, without the resync details."""
    w(indent, f" received:{pd.received_kib}")
    w(indent, f" sent:{pd.sent_kib}")
    if verbose or pd.out_of_sync_kib:
        w(indent, f" out-of-sync:{pd.out_of_sync_kib}")
    if not verbose:
        return
    w(indent, f" pending:{pd.pending}")
    w(indent, f" unacked:{pd.unacked}")
    if not details or not pd.rs_total:
        return
    if verbose > 1:  # the lab's resync runs at one rate: window 0 is window 1, nothing fails
        w(indent, f" rs-total:{pd.rs_total}")
        w(indent, f" rs-dt-start-ms:{pd.rs_dt_start_ms}")
        w(indent, " rs-paused-ms:0")
        w(indent, f" rs-dt0-ms:{pd.rs_dt1_ms}")
        w(indent, f" rs-db0-sectors:{pd.rs_db1_sectors}")
        w(indent, f" rs-dt1-ms:{pd.rs_dt1_ms}")
        w(indent, f" rs-db1-sectors:{pd.rs_db1_sectors}")
        w(indent, " rs-failed:0")
        w(indent, " rs-same-csum:0")
        w(indent, f" dbdt:{_mib_s(pd.rs_total - _to_go(pd), pd.rs_dt_start_ms)}")
        w(indent, f" dbdt0:{_mib_s(pd.rs_db1_sectors, pd.rs_dt1_ms)}")
    db, dt = float(pd.rs_db1_sectors), float(pd.rs_dt1_ms or 1)
    w(indent, f" dbdt1:{_mib_s(db, dt)}")
    w(indent, f" eta:{_c_float(dt * 1e-3 * _to_go(pd) / db if db > 0 else math.nan, 0)}")


def _connection_84(
    w: _Wrap, conn: Connection, res: Resource, single: bool, verbose: int, statistics: bool
) -> None:
    w(2, "peer")  # v84:2617: the connection has no name in 8.4
    rank = _CONN_84_RANK[conn.state]
    if verbose or rank < _CONN_84_RANK["WFReportParams"]:
        w(6, f" connection:{_conn_str9(conn.state)}")
    if verbose or conn.state == "WFReportParams":
        w(6, f" role:{conn.role}")
    if verbose or conn.congested:
        w(6, f" congested:{_yes(conn.congested)}")
    w(0, "\n")
    if verbose or statistics or conn.state == "WFReportParams":
        for pd in conn.peer_devices:
            _peer_device(w, pd, _device_of(res, pd), single, verbose, statistics, tty=False, drbd84=True)


def _conn_str9(state: str) -> str:  # v84:2543-2549
    return {"WFConnection": "Connecting", "WFReportParams": "Connected"}.get(state, state)


def _repl_str9(state: str) -> str:  # v84:2533-2539
    return {"WFReportParams": "Off", "Connected": "Established"}.get(state, state)


# --- JSON (DRBD 9) -----------------------------------------------------------------------


def _b(flag: bool) -> str:
    return "true" if flag else "false"


def status_json(resources: list[Resource]) -> str:
    """``drbdsetup status --json``: the same text drbdsetup prints, spaces included."""
    out = ["[\n"]  # puts("[")
    for i, res in enumerate(sorted(resources, key=lambda r: r.name)):
        if i:
            out.append(",\n")
        out.append(_resource_json(res))
        out.append(",\n".join(_device_json(d) for d in res.devices))
        out.append(' ],\n  "connections": [\n')
        conns = sorted(res.connections, key=lambda c: c.name)
        out.append(",\n".join(_connection_json(c, res) for c in conns))
        out.append(" ]\n}\n")
    out.append("]\n\n")  # puts("]\n")
    return "".join(out)


def _resource_json(res: Resource) -> str:
    s = set(res.suspended)
    return (
        "{\n"
        f'  "name": "{res.name}",\n'
        f'  "node-id": {res.node_id},\n'
        f'  "role": "{res.role}",\n'
        f'  "suspended": {_b(bool(s))},\n'
        f'  "suspended-user": {_b("user" in s)},\n'
        f'  "suspended-no-data": {_b("no-data" in s)},\n'
        f'  "suspended-fencing": {_b("fencing" in s)},\n'
        f'  "suspended-quorum": {_b("quorum" in s)},\n'
        f'  "force-io-failures": {_b(res.force_io_failures)},\n'
        f'  "write-ordering": "{res.write_ordering}",\n'
        '  "devices": [\n'
    )


def _device_json(dev: Device) -> str:
    return (
        "    {\n"
        f'      "volume": {dev.volume},\n'
        f'      "minor": {dev.minor},\n'
        f'      "disk-state": "{dev.disk}",\n'
        f'      "client": {_b(dev.client)},\n'
        f'      "quorum": {_b(dev.quorum)},\n'
        f'      "size": {dev.size_kib},\n'
        f'      "read": {dev.read_kib},\n'
        f'      "written": {dev.written_kib},\n'
        f'      "al-writes": {dev.al_writes},\n'
        f'      "bm-writes": {dev.bm_writes},\n'
        f'      "upper-pending": {dev.upper_pending},\n'
        f'      "lower-pending": {dev.lower_pending}\n'
        "    }"
    )


def _connection_json(conn: Connection, res: Resource) -> str:
    head = (
        "    {\n"
        f'      "peer-node-id": {conn.peer_node_id},\n'
        f'      "name": "{conn.name}",\n'
        f'      "connection-state": "{conn.state}", \n'  # sic: v9:2727 has that space
        f'      "congested": {_b(conn.congested)},\n'
        f'      "peer-role": "{conn.role}",\n'
        f'      "ap-in-flight": {conn.ap_in_flight},\n'
        f'      "rs-in-flight": {conn.rs_in_flight},\n'
        '      "peer_devices": [\n'
    )
    peers = ",\n".join(_peer_device_json(pd, _device_of(res, pd)) for pd in conn.peer_devices)
    return head + peers + " ]\n    }"


def _peer_device_json(pd: PeerDevice, dev: Device) -> str:
    sync = bool(pd.rs_total)
    in_sync = 0.0 if not dev.size_kib else 100 * (1 - pd.out_of_sync_kib / dev.size_kib)
    text = (
        "        {\n"
        f'          "volume": {pd.volume},\n'
        f'          "replication-state": "{pd.replication}",\n'
        f'          "peer-disk-state": "{pd.peer_disk}",\n'
        f'          "peer-client": {_b(pd.peer_client)},\n'
        f'          "resync-suspended": "{_susp(pd.resync_suspended, _RESYNC_SUSPEND_ORDER)}",\n'
        f'          "received": {pd.received_kib},\n'
        f'          "sent": {pd.sent_kib},\n'
        f'          "out-of-sync": {pd.out_of_sync_kib},\n'
        f'          "pending": {pd.pending},\n'
        f'          "unacked": {pd.unacked},\n'
        f'          "has-sync-details": {_b(sync)},\n'
        '          "has-online-verify-details": false,\n'
        f'          "percent-in-sync": {in_sync:.2f}{"," if sync else ""}\n'
    )
    if sync:  # v9:2648-2708, a resync (not an online verify) with the kernel's details
        to_go = _to_go(pd)
        db1, dt1 = float(pd.rs_db1_sectors), float(pd.rs_dt1_ms or 1)
        eta = 987654321.0 if db1 <= 0 else dt1 * 1e-3 * to_go / db1
        done = pd.rs_total - to_go
        text += (
            f'          "rs-total": {pd.rs_total},\n'
            f'          "rs-dt-start-ms": {pd.rs_dt_start_ms},\n'
            '          "rs-paused-ms": 0,\n'
            f'          "rs-dt0-ms": {pd.rs_dt1_ms},\n'
            f'          "rs-db0-sectors": {pd.rs_db1_sectors},\n'
            f'          "rs-dt1-ms": {pd.rs_dt1_ms},\n'
            f'          "rs-db1-sectors": {pd.rs_db1_sectors},\n'
            '          "rs-failed": 0,\n'
            '          "rs-same-csum": 0,\n'
            '          "want": 0.00,\n'
            f'          "db0/dt0 [MiB/s]": {_mib_s(pd.rs_db1_sectors, pd.rs_dt1_ms)},\n'
            f'          "db1/dt1 [MiB/s]": {_mib_s(pd.rs_db1_sectors, pd.rs_dt1_ms)},\n'
            f'          "estimated-seconds-to-finish": {eta:.0f},\n'
            f'          "db/dt [MiB/s]": {_mib_s(done, pd.rs_dt_start_ms)},\n'
            f'          "percent-resync-done": {100.0 * done / pd.rs_total:.2f}\n'
        )
    return text + "        }"
