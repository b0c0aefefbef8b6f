"""The lab's ``drbdsetup status`` prints what drbd-utils 9.22.0 prints: the outputs in
drbd_fixtures.py were written by hand from the real printers' formats; the lab's
printer (hosts/lab/tools/drbd_print.py, written separately from the same source) must
produce them byte for byte, from kernel records and from lab states."""

from __future__ import annotations

from hosts.lab.tools.base import ToolContext
from hosts.lab.tools.drbd_print import Connection, Device, PeerDevice, Resource, status_json, status_text
from hosts.lab.tools.drbd_view import resource_view
from tests.lab.storage_states import make_state, tool
from tests.storage import drbd_fixtures as fx


def connected(
    name: str, node_id: int, role: str, *peer_devices: PeerDevice, state: str = "Connected"
) -> Connection:
    return Connection(
        name=name, peer_node_id=node_id, state=state, role=role, peer_devices=list(peer_devices)
    )


def two_volumes(name: str, minors: tuple[int, int], disks: tuple[str, str], *peer: PeerDevice) -> Resource:
    """Primary node 0 with volumes 0 and 1, connected to xenka01 (node 1, Secondary)."""
    devices = [Device(v, minors[v], "UpToDate", backing_dev=disks[v]) for v in (0, 1)]
    return Resource(
        name, 0, "Primary", devices=devices, connections=[connected("xenka01", 1, "Secondary", *peer)]
    )


def one_volume(name: str, role: str, device: Device, *connections: Connection) -> Resource:
    return Resource(name, 0, role, devices=[device], connections=list(connections))


def test_it_prints_84_plain_and_verbose_statistics():
    peer = connected(
        "xenka01", 1, "Secondary", PeerDevice(0, "Connected", "UpToDate"), state="WFReportParams"
    )
    home = one_volume("home", "Secondary", Device(0, 0, "UpToDate", size_kib=5033792), peer)
    assert status_text([home], drbd84=True) == fx.UG84_PLAIN
    assert status_text([home], drbd84=True, verbose=1, statistics=True) == fx.V84_VERBOSE_STATISTICS


def test_it_prints_84_connecting_and_a_resync():
    gone = connected("x", 1, "Unknown", PeerDevice(0, "WFConnection", "DUnknown"), state="WFConnection")
    assert status_text([one_volume("r0", "Primary", Device(0, 0, "UpToDate"), gone)], drbd84=True) == (
        fx.V84_PEER_LOST
    )
    volume = PeerDevice(0, "SyncSource", "Inconsistent", out_of_sync_kib=655360)
    syncing = connected("x", 1, "Secondary", volume, state="WFReportParams")
    assert status_text([one_volume("r0", "Primary", Device(0, 0, "UpToDate"), syncing)], drbd84=True) == (
        fx.V84_SYNCING
    )


def _syncing_volume(**extra) -> PeerDevice:
    return PeerDevice(0, "SyncSource", "Inconsistent", out_of_sync_kib=655360, rs_total=2097152, **extra)


def test_it_prints_9_volumes_statistics_and_wrapped_lines():
    data = two_volumes("data", (1, 2), ("", ""), _syncing_volume(), PeerDevice(1, "Established", "UpToDate"))
    assert status_text([data], drbd84=False) == fx.V9_TWO_VOLUMES_SYNCING
    peer = connected("xenka01", 1, "Secondary", _syncing_volume(sent_kib=655360))
    one = one_volume("r0", "Primary", Device(0, 0, "UpToDate"), peer)
    assert status_text([one], drbd84=False, statistics=True) == fx.V9_STATISTICS_SYNCING
    wrapped = two_volumes(
        "r0",
        (0, 1),
        ("/dev/vg0/lv00", "/dev/vg0/lv01"),
        PeerDevice(0, "Established", "UpToDate"),
        PeerDevice(1, "Established", "UpToDate"),
    )
    assert status_text([wrapped], drbd84=False, verbose=1) == fx.V9_VERBOSE_WRAPPED


def test_it_prints_diskless_nodes_suspended_io_and_lost_quorum():
    up_to_date = PeerDevice(0, "Established", "UpToDate")
    client = one_volume(
        "r0",
        "Primary",
        Device(0, 0, "Diskless", client=True),
        connected("xenwsl01", 0, "Secondary", up_to_date),
        connected("xenka01", 1, "Secondary", up_to_date),
    )
    assert status_text([client], drbd84=False) == fx.V9_DISKLESS_CLIENT
    witness = one_volume(
        "r0",
        "Primary",
        Device(0, 0, "UpToDate"),
        connected("xenka01", 1, "Secondary", up_to_date),
        connected("witness", 2, "Secondary", PeerDevice(0, "Established", "Diskless", peer_client=True)),
    )
    assert status_text([witness], drbd84=False) == fx.V9_DISKLESS_PEER
    lost = connected("xenka01", 1, "Unknown", PeerDevice(0, "Off", "DUnknown"), state="Connecting")
    frozen = one_volume("r0", "Primary", Device(0, 0, "UpToDate", quorum=False, blocked_upper=True), lost)
    frozen.suspended = ("quorum",)
    assert status_text([frozen], drbd84=False) == fx.V9_SUSPENDED_NO_QUORUM


def test_it_prints_json_with_drbdsetups_spacing():
    figures = {"rs_dt_start_ms": 3750, "rs_dt1_ms": 3000, "rs_db1_sectors": 629146}
    data = two_volumes(
        "data", (1, 2), ("", ""), _syncing_volume(**figures), PeerDevice(1, "Established", "UpToDate")
    )
    assert status_json([data]) == fx.V9_JSON_TWO_VOLUMES_SYNCING
    assert status_json([]) == "[\n]\n\n"  # puts("[") and puts("]\n") around nothing


def _syncing_state(name: str, version: str, devices: list[str]) -> dict:
    """A lab state: xenwsl01 primary, resyncing xenka01 for 10 s from t=1000."""
    state = make_state(drbd_version=version, resync_seconds=10.0)
    group = state["groups"].pop("DRG-dns-xen01")
    group.update(devices=devices, replication="syncing", resync_started_at=1000.0, resync_done_at=1010.0)
    group["sides"]["xenka01"]["disk_state"] = "Inconsistent"
    state["groups"][name] = group
    return state


def test_the_lab_state_gives_the_kernel_records_of_a_resync():
    state = _syncing_state("data", "9", ["/dev/drbd1", "/dev/drbd2"])
    ctx = ToolContext(host="xenwsl01", state=state, now=1003.75)
    figures = {"rs_dt_start_ms": 3750, "rs_dt1_ms": 3000, "rs_db1_sectors": 629146}
    assert resource_view(ctx, "data", state["groups"]["data"]) == two_volumes(
        "data",
        (1, 2),
        ("/dev/drbdpool/data_0", "/dev/drbdpool/data_1"),
        _syncing_volume(**figures),
        PeerDevice(1, "SyncSource", "Inconsistent", out_of_sync_kib=655360, rs_total=2097152, **figures),
    )


def test_the_lab_prints_the_fixtures_from_its_state_through_drbdadm():
    plain_9 = fx.V9_STATISTICS_SYNCING.replace("      read:0 written:0\n", "").replace(
        "        received:0 sent:655360 out-of-sync:655360\n", ""
    )
    state = _syncing_state("r0", "9", ["/dev/drbd0"])
    assert tool(state, "xenwsl01", "drbdadm", "status", "r0", now=1003.75) == (0, plain_9, "")
    state = _syncing_state("r0", "8.4", ["/dev/drbd0"])
    assert tool(state, "xenwsl01", "drbdadm", "status", "r0", now=1003.75) == (0, fx.V84_SYNCING, "")
