"""What a dom0's DRBD kernel would report, derived from the lab state: its resources as
the records drbd_print.py writes, and as the resource file drbd_check.py gives drbdadm.

State keys read beyond the schema in base.py (all optional):

* host["drbd_version"]: "9" (default), "8.4" or a full version such as "8.4.11";
* group["devices"]: one DRBD device per volume, "/dev/drbdN" gives minor N (else
  group["minor"] + the volume number); group["size_kib"] per volume (default 1 GiB);
  group["mode"] "sync" is protocol C, "async" protocol A;
* side["client"]: an intentionally diskless node (DRBD 9): its disk is Diskless;
  side["quorum"] False: quorum lost; side["suspended"]: I/O suspended, a list of
  "user", "no-data", "fencing", "quorum"; side["blocked"]: "upper", "lower" or both;
* side["standalone"]: True when this node's connection is StandAlone (it gave up or was
  disconnected), False while it keeps trying (Connecting); absent means what the group's
  replication says: connected while consistent or syncing, StandAlone otherwise.
  side["discard_my_data"]: set by ``connect --discard-my-data`` until the handshake.
"""

from __future__ import annotations

import re
import threading

from hosts.lab.tools.base import ToolContext
from hosts.lab.tools.drbd_check import Resource as ResourceConf
from hosts.lab.tools.drbd_check import Volume, is_84, render
from hosts.lab.tools.drbd_print import Connection, Device, PeerDevice, Resource
from hosts.lab.tools.replication import partners

_DRBD_DEVICE = re.compile(r"^/dev/drbd(\d+)$")
SYNC_WINDOW_MS = 3000  # the kernel's recent-rate window the lab reports (rs-dt1-ms)


def version(ctx: ToolContext) -> str:
    return str(ctx.host_state.get("drbd_version", "9"))


def drbd_groups(state: dict, host: str) -> list[tuple[str, dict]]:
    """The DRBD resources configured on ``host`` (those it is a side of), by name."""
    return sorted(
        (name, g)
        for name, g in state.get("groups", {}).items()
        if g.get("kind") == "drbd" and host in g.get("sides", {})
    )


def volumes(group: dict) -> list[Volume]:
    out = []
    for number, device in enumerate(group.get("devices") or ["/dev/drbd0"]):
        match = _DRBD_DEVICE.match(device)
        minor = int(match.group(1)) if match else int(group.get("minor", 0)) + number
        out.append(Volume(number, minor))
    return out


def config_of(state: dict, host: str) -> list[ResourceConf]:
    """The resource file's content for ``host`` (drbd_check.render writes it)."""
    return [
        ResourceConf(
            name=name,
            protocol="A" if group.get("mode") == "async" else "C",
            volumes=tuple(volumes(group)),
            nodes=tuple(
                (side, state["hosts"].get(side, {}).get("address", "127.0.0.1")) for side in group["sides"]
            ),
        )
        for name, group in drbd_groups(state, host)
    ]


_rendered: dict[tuple[str, str], tuple[dict, int, str]] = {}
_rendered_lock = threading.Lock()


def config_text(ctx: ToolContext) -> str:
    """The resource file of ``ctx.host``, rendered once per state revision: the lab's
    server bumps state["revision"] on every change, and within one revision the file
    cannot change (drbdadm and drbdsetup never touch resources, volumes or addresses).
    The cache holds the state object itself, so an entry can never be taken for another
    state that got the same id(). A state without a revision (tests that build one in
    memory) is rendered every time."""
    ver = version(ctx)
    revision = ctx.state.get("revision")
    key = (ctx.host, ver)
    if isinstance(revision, int):
        with _rendered_lock:
            hit = _rendered.get(key)
        if hit is not None and hit[0] is ctx.state and hit[1] == revision:
            return hit[2]
    text = render(config_of(ctx.state, ctx.host), host=ctx.host, version=ver)
    if isinstance(revision, int):
        with _rendered_lock:
            _rendered[key] = (ctx.state, revision, text)
    return text


def connection_state(ctx: ToolContext, group: dict, me: str, peer: str) -> str:
    """The DRBD 9 connection state of ``me`` toward ``peer``."""
    mine = group["sides"][me].get("standalone")
    if ctx.host_is_down(peer):
        return "StandAlone" if mine else "Connecting"
    if group.get("replication") in ("consistent", "syncing"):
        return "Connected"
    return "Connecting" if mine is False else "StandAlone"


def sync_state(ctx: ToolContext, group: dict, me: str) -> tuple[str, float | None]:
    """(replication state, fraction done) of a connected peer device seen from ``me``."""
    if group.get("replication") != "syncing":
        return "Established", None
    state = "SyncTarget" if group["sides"][me].get("disk_state") == "Inconsistent" else "SyncSource"
    start, end = group.get("resync_started_at"), group.get("resync_done_at")
    if not (start and end and end > start):
        return state, 0.0
    return state, max(0.0, min(1.0, (ctx.now - start) / (end - start)))


def _disk(side: dict) -> str:
    return "Diskless" if side.get("client") else str(side.get("disk_state", "UpToDate"))


def resource_view(ctx: ToolContext, name: str, group: dict) -> Resource:
    """The kernel's view of one resource on ``ctx.host``, in its version's words."""
    drbd84 = is_84(version(ctx))
    sides = group["sides"]
    me = sides[ctx.host]
    node_ids = {n: i for i, n in enumerate(sides)}
    size = int(group.get("size_kib", 1048576))
    blocked = str(me.get("blocked", ""))
    vols = volumes(group)
    devices = [
        Device(
            volume=v.number,
            minor=v.minor,
            disk=_disk(me),
            client=bool(me.get("client")) and not drbd84,
            quorum=bool(me.get("quorum", True)) or drbd84,
            backing_dev="" if me.get("client") else f"/dev/drbdpool/{name}_{v.number}",
            size_kib=size,
            blocked_upper="upper" in blocked,
            blocked_lower="lower" in blocked,
        )
        for v in vols
    ]
    connections = []
    for peer in partners(group, ctx.host):
        side = sides[peer]
        state = connection_state(ctx, group, ctx.host, peer)
        connected = state == "Connected"
        peer_devices = []
        for v in vols:
            if connected:
                replication, done = sync_state(ctx, group, ctx.host)
                pd = PeerDevice(v.number, replication, _disk(side), peer_client=bool(side.get("client")))
                if done is not None:
                    _resync_figures(pd, ctx, group, size, done)
            else:
                pd = PeerDevice(v.number, "Off", "DUnknown")
            if drbd84:  # the device's 8.4 connection state (v84: drbd_repl_str9 maps it)
                pd.replication = {"Off": _state_84(state), "Established": "Connected"}.get(
                    pd.replication, pd.replication
                )
            peer_devices.append(pd)
        connections.append(
            Connection(
                name=peer,
                peer_node_id=node_ids[peer],
                state=_state_84(state) if drbd84 else state,
                role=str(side["role"]).capitalize() if connected else "Unknown",
                peer_devices=peer_devices,
            )
        )
    suspended = tuple(str(r) for r in me.get("suspended", ()))
    return Resource(
        name=name,
        node_id=node_ids[ctx.host],
        role=str(me["role"]).capitalize(),
        suspended=suspended,
        devices=devices,
        connections=connections,
    )


def _state_84(state: str) -> str:
    """8.4 keeps its connection between StandAlone and WFReportParams (drbd_int.h)."""
    return {"Connecting": "WFConnection", "Connected": "WFReportParams"}.get(state, state)


def _resync_figures(pd: PeerDevice, ctx: ToolContext, group: dict, size_kib: int, done: float) -> None:
    """A resync at one rate from resync_started_at to resync_done_at."""
    start, end = (
        float(group.get("resync_started_at") or ctx.now),
        float(group.get("resync_done_at") or ctx.now),
    )
    pd.rs_total = size_kib * 2
    pd.out_of_sync_kib = round(size_kib * (1.0 - done))
    elapsed_ms = max(0, round((ctx.now - start) * 1000))
    pd.rs_dt_start_ms = elapsed_ms
    pd.rs_dt1_ms = min(elapsed_ms, SYNC_WINDOW_MS)
    rate = pd.rs_total / max((end - start) * 1000.0, 1.0)  # sectors per ms
    pd.rs_db1_sectors = round(rate * pd.rs_dt1_ms)
