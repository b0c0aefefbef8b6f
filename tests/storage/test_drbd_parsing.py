"""Reading ``drbdsetup status`` / ``drbdadm status`` of DRBD 8.4 and 9 (text, verbose,
statistics, JSON) and ``drbdadm role|dstate|cstate``, on outputs written from the real
printers' formats (tests/storage/drbd_fixtures.py says where each comes from)."""

from __future__ import annotations

import pytest

from hosts.drivers.drbd import group_status, parse_cstate, parse_dstate, parse_role
from hosts.drivers.drbd_status import (
    CONNECTION_STATES,
    DISK_STATES,
    StatusUnreadable,
    parse_status_text,
)
from hosts.drivers.drbd_status_json import parse_status_json
from hosts.drivers.storage import StorageError
from tests.storage import drbd_fixtures as fx


def one(text: str, name: str):
    return parse_status_text(text, host="xenka01", command="drbdadm status")[name]


# --- 8.4 -------------------------------------------------------------------------------------


def test_it_reads_the_84_user_guide_sample_with_its_peer_called_peer():
    res = one(fx.UG84_PLAIN, "home")
    assert [(p.name, p.role, p.replication, p.disks) for p in res.peers] == [
        ("peer", "Secondary", ("Established",), ("UpToDate",))
    ]
    assert group_status("home", "n", res).replication == "consistent"


@pytest.mark.parametrize("text", [fx.UG84_VERBOSE, fx.V84_VERBOSE_STATISTICS], ids=["guide", "printer"])
def test_it_reads_84_verbose_statistics_with_wrapped_lines(text):
    res = one(text, "home")
    assert (res.role, res.suspended, res.disks) == ("Secondary", (), ("UpToDate",))
    assert (res.volumes[0].minor, res.volumes[0].size_kib, res.volumes[0].blocked) == (0, 5033792, "no")
    peer = res.peers[0]
    assert (peer.connection, peer.role, peer.congested) == ("Connected", "Secondary", False)
    assert (peer.volumes[0].replication, peer.volumes[0].out_of_sync_kib) == ("Established", 0)


def test_it_reads_an_84_peer_that_is_gone_as_broken():
    res = one(fx.V84_PEER_LOST, "r0")
    assert (res.peers[0].connection, res.peers[0].role, res.peers[0].volumes) == ("Connecting", "Unknown", ())
    status = group_status("r0", "xenka01", res)
    assert (status.replication, status.peer_role) == ("broken", "unknown")
    assert status.detail == "r0 role:Primary disk:UpToDate; peer connection:Connecting"


def test_it_reads_an_84_resync_with_its_progress():
    peer = one(fx.V84_SYNCING, "r0").peers[0]
    assert (peer.replication, peer.disks, peer.done) == (("SyncSource",), ("Inconsistent",), 37.5)


# --- 9 ---------------------------------------------------------------------------------------


def test_it_keeps_the_volumes_of_a_resource_and_of_its_peer_apart():
    res = one(fx.V9_TWO_VOLUMES_SYNCING, "data")
    assert [(v.volume, v.disk) for v in res.volumes] == [(0, "UpToDate"), (1, "UpToDate")]
    peer = res.peers[0]
    assert [(v.volume, v.replication, v.peer_disk, v.done) for v in peer.volumes] == [
        (0, "SyncSource", "Inconsistent", 37.5),
        (1, "Established", "UpToDate", None),
    ]
    status = group_status("data", "xenwsl01", res)
    assert (status.role, status.replication, status.presented_to) == ("primary", "syncing", ("xenwsl01",))
    assert status.detail == (
        "data role:Primary disk:UpToDate; xenka01 role:Secondary peer-disk:Inconsistent "
        "replication:SyncSource done:37.50"
    )


def test_it_reads_statistics_lines_under_the_device_and_the_peer_volume():
    res = one(fx.V9_STATISTICS_SYNCING, "r0")
    volume = res.peers[0].volumes[0]
    assert (volume.replication, volume.done, volume.out_of_sync_kib) == ("SyncSource", 37.5, 655360)


def test_it_follows_wrapped_lines_and_the_stray_indent_after_a_full_line():
    res = one(fx.V9_VERBOSE_WRAPPED, "r0")
    assert (res.node_id, res.force_io_failures, res.suspended) == (0, False, ())
    assert [(v.volume, v.minor, v.blocked, v.quorum) for v in res.volumes] == [
        (0, 0, "no", True),
        (1, 1, "no", True),
    ]
    peer = res.peers[0]
    assert (peer.name, peer.node_id, peer.connection, peer.role, peer.congested) == (
        "xenka01",
        1,
        "Connected",
        "Secondary",
        False,
    )
    assert peer.replication == ("Established", "Established")
    assert group_status("r0", "n", res).replication == "consistent"


def test_it_reads_a_local_diskless_client_as_holding_no_copy():
    res = one(fx.V9_DISKLESS_CLIENT, "r0")
    assert (res.disk, res.client, [p.name for p in res.peers]) == ("Diskless", True, ["xenka01", "xenwsl01"])
    status = group_status("r0", "xenka01", res)
    assert status.replication == "none"
    assert status.detail.startswith("r0 role:Primary disk:Diskless client:yes; ")


def test_a_diskless_peer_is_no_replica():
    res = one(fx.V9_DISKLESS_PEER, "r0")
    assert [(p.name, p.diskless) for p in res.peers] == [("witness", True), ("xenka01", False)]
    status = group_status("r0", "n", res)
    assert status.replication == "consistent"
    assert "witness role:Secondary peer-disk:Diskless peer-client:yes" in status.detail
    only_witness = fx.V9_DISKLESS_PEER.replace("  xenka01 role:Secondary\n    peer-disk:UpToDate\n", "")
    assert group_status("r0", "n", one(only_witness, "r0")).replication == "none"


def test_it_reads_suspended_io_lost_quorum_and_blocked_io():
    res = one(fx.V9_SUSPENDED_NO_QUORUM, "r0")
    assert (res.suspended, res.quorum, res.volumes[0].blocked) == (("quorum",), False, "upper")
    status = group_status("r0", "n", res)
    assert status.replication == "broken"
    assert status.detail == (
        "r0 role:Primary disk:UpToDate quorum:no; xenka01 connection:Connecting; suspended:quorum"
    )


@pytest.mark.parametrize(
    "reasons",
    ["user", "no-data", "user,no-data", "fencing", "quorum", "user,no-data,fencing,quorum"],
)
def test_it_reads_every_suspend_reason(reasons):
    res = one(f"r0 role:Primary suspended:{reasons}\n  disk:UpToDate\n\n", "r0")  # v9:2465-2491
    assert res.suspended == tuple(reasons.split(","))


def test_it_reads_the_9_user_guide_sample_with_disk_under_peers():
    res = one(fx.UG9_THREE_PEERS, "home")
    assert [(p.name, p.connected, p.disks) for p in res.peers] == [
        ("nina", True, ("UpToDate",)),
        ("nino", True, ("UpToDate",)),
        ("nono", False, ()),
    ]
    assert group_status("home", "n", res).replication == "broken"  # one peer is not connected


# --- every state ----------------------------------------------------------------------------


@pytest.mark.parametrize("state", [s for s in CONNECTION_STATES if s != "Connected"])
def test_it_reads_every_connection_state_of_a_peer_that_is_not_connected(state):
    # v9:3127-3132: connection: is printed only when not Connected, and without the peer
    # volumes unless --verbose/--statistics (v9:3143-3144).
    res = one(f"r0 role:Primary\n  disk:UpToDate\n  xenka01 connection:{state}\n\n", "r0")
    assert (res.peers[0].connection, res.peers[0].connected) == (state, False)
    assert group_status("r0", "n", res).replication == "broken"


@pytest.mark.parametrize(
    ("state", "replication"),
    [
        ("StartingSyncS", "syncing"),
        ("StartingSyncT", "syncing"),
        ("WFBitMapS", "syncing"),
        ("WFBitMapT", "syncing"),
        ("WFSyncUUID", "syncing"),
        ("SyncSource", "syncing"),
        ("SyncTarget", "syncing"),
        ("VerifyS", "consistent"),  # online verify: the data is whole
        ("VerifyT", "consistent"),
        ("PausedSyncS", "suspended"),
        ("PausedSyncT", "suspended"),
        ("Ahead", "syncing"),  # protocol A congestion: the peer catches up afterwards
        ("Behind", "syncing"),
    ],
)
def test_it_reads_every_replication_state_above_established(state, replication):
    text = f"r0 role:Primary\n  disk:UpToDate\n  xenka01 role:Secondary\n    replication:{state} peer-disk:UpToDate\n\n"
    res = one(text, "r0")
    assert res.peers[0].replication == (state,)
    assert group_status("r0", "n", res).replication == replication


def test_established_and_off_are_printed_only_with_verbose():
    # v9:3047: replication: only above Established, unless --verbose.
    verbose = (
        "r0 node-id:0 role:Primary suspended:no force-io-failures:no\n"
        "  volume:0 minor:0 disk:UpToDate backing_dev:/dev/vg0/r0 quorum:yes blocked:no\n"
        "  xenka01 node-id:1 connection:Connected role:Secondary congested:no\n"
        "      ap-in-flight:0 rs-in-flight:0\n"
        "    volume:0 replication:Off peer-disk:DUnknown resync-suspended:no\n\n"
    )
    res = one(verbose, "r0")
    assert res.peers[0].replication == ("Off",)
    assert group_status("r0", "n", res).replication == "unknown"  # the handshake is not done
    plain = one(
        "r0 role:Primary\n  disk:UpToDate\n  xenka01 role:Secondary\n    peer-disk:UpToDate\n\n", "r0"
    )
    assert plain.peers[0].replication == ("Established",)


def test_it_reads_84_device_connection_states_in_verbose_peer_volumes():
    text = "r0 role:Primary suspended:no\n  volume:0 minor:0 disk:UpToDate blocked:no\n"
    text += "  peer connection:Connecting role:Unknown congested:no\n"
    text += "    volume:0 replication:WFConnection peer-disk:DUnknown resync-suspended:no\n\n"
    res = one(text, "r0")  # v84:2533-2539 pass 8.4's own names through
    assert (res.peers[0].connection, res.peers[0].replication) == ("Connecting", ("WFConnection",))


@pytest.mark.parametrize("state", DISK_STATES)
def test_it_reads_every_disk_state_local_and_of_the_peer(state):
    text = f"r0 role:Secondary\n  disk:{state}\n  xenka01 role:Primary\n    peer-disk:{state}\n\n"
    res = one(text, "r0")
    assert (res.disk, res.peers[0].disks) == (state, (state,))
    expected = "consistent" if state == "UpToDate" else "none" if state == "Diskless" else "broken"
    assert group_status("r0", "n", res).replication == expected


def test_the_worst_volume_decides_the_local_disk():
    text = "r0 role:Secondary\n  volume:0 disk:UpToDate\n  volume:1 disk:Outdated\n  volume:2 disk:Inconsistent\n\n"
    assert one(text, "r0").disk == "Inconsistent"


# --- JSON ------------------------------------------------------------------------------------


def test_it_reads_the_json_form_with_two_volumes_and_a_resync():
    res = parse_status_json(fx.V9_JSON_TWO_VOLUMES_SYNCING, host="xenwsl01")["data"]
    assert [(v.volume, v.minor, v.disk, v.client, v.quorum) for v in res.volumes] == [
        (0, 1, "UpToDate", "no", True),
        (1, 2, "UpToDate", "no", True),
    ]
    peer = res.peers[0]
    assert (peer.name, peer.node_id, peer.connection, peer.role) == ("xenka01", 1, "Connected", "Secondary")
    assert [(v.replication, v.peer_disk, v.done, v.out_of_sync_kib, v.eta_seconds) for v in peer.volumes] == [
        ("SyncSource", "Inconsistent", 37.5, 655360, 6.0),
        ("Established", "UpToDate", None, 0, None),
    ]
    # the same facts as the text form of the same moment
    assert group_status("data", "xenwsl01", res) == group_status(
        "data", "xenwsl01", one(fx.V9_TWO_VOLUMES_SYNCING, "data")
    )


def test_it_reads_the_json_of_utils_older_than_9_21():
    res = parse_status_json(fx.CAPTURE_JSON_OLD_UTILS)["1-single-0"]
    assert (res.role, res.suspended, res.disk) == ("Primary", (), "UpToDate")
    assert group_status("1-single-0", "n", res).replication == "consistent"
    suspended = fx.CAPTURE_JSON_OLD_UTILS.replace('"suspended": false', '"suspended": true')
    assert parse_status_json(suspended)["1-single-0"].suspended == ("unknown",)


def test_the_empty_answers():
    assert parse_status_text("# No currently configured DRBD found.\n") == {}
    assert parse_status_text("") == {}
    assert parse_status_json("[\n]\n\n") == {}


def test_it_reads_several_resources():
    both = parse_status_text(fx.V84_PEER_LOST + fx.UG84_PLAIN)
    assert sorted(both) == ["home", "r0"]


# --- what it cannot read ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("r0 role:Primary\n  disk:Frobbed\n\n", 2, "disk: one of Diskless, Attaching"),
        ("r0 role:Boss\n  disk:UpToDate\n", 1, "role: one of Unknown, Primary, Secondary"),
        ("r0 role:Primary\n   disk:UpToDate\n", 2, "indented by 2 or 6 or 7 spaces, not 3"),
        ("  disk:UpToDate\n", 1, "a resource line"),
        ("r0 role:Primary\n  xenka01 role:Secondary\n    peer-disk:UpToDate done:x\n", 3, "done: a number"),
        (
            "r0 role:Primary\n  disk:UpToDate\n  xenka01 connection:Sleeping\n",
            3,
            "connection: one of StandAlone",
        ),
        ("r0 role:Primary\n\tdisk:UpToDate\n", 2, "fields separated by spaces"),
        ("Error: something\n", 1, "a resource name at the start of the line"),
        ("r0 role:Primary disk\n", 1, "key:value fields, not 'disk'"),
        (
            "r0 role:Primary\n  disk:UpToDate\n  xenka01 role:Secondary\n    peer-disk:UpToDate\n    peer-disk:UpToDate\n",
            5,
            "volume:N",
        ),
        ("r0 suspended:no\n  disk:UpToDate\n", 1, "role: on the resource line"),
    ],
)
def test_an_unreadable_status_names_the_host_the_command_the_line_and_what_was_expected(text, line, expected):
    with pytest.raises(StatusUnreadable) as caught:
        parse_status_text(text, host="xenka01", command="drbdsetup status r0 --verbose --statistics")
    message = str(caught.value)
    assert message.startswith(
        f"xenka01: cannot read what 'drbdsetup status r0 --verbose --statistics' printed: line {line}: "
    )
    assert expected in message
    assert caught.value.line == line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (fx.V9_JSON_TWO_VOLUMES_SYNCING[:400], "line 20: "),  # cut short: half an answer
        (
            fx.V9_JSON_TWO_VOLUMES_SYNCING.replace('"Inconsistent"', '"Sleepy"'),
            'line 55: \'          "peer-disk-state": "Sleepy",\'',
        ),
        (
            fx.V9_JSON_TWO_VOLUMES_SYNCING.replace('"minor": 2', '"minor": "2"'),
            "[0].devices[1].minor: a number",
        ),
        (fx.V9_JSON_TWO_VOLUMES_SYNCING.replace('  "role": "Primary",\n', ""), 'a "role" field'),
        ('{"name": "r0"}', "a JSON list of resources"),
    ],
)
def test_unreadable_json_names_the_line_or_the_field(text, expected):
    with pytest.raises(StatusUnreadable) as caught:
        parse_status_json(text, host="xenwsl01", command="drbdsetup status data --json")
    assert str(caught.value).startswith("xenwsl01: cannot read what 'drbdsetup status data --json' printed: ")
    assert expected in str(caught.value)


# --- drbdadm role / dstate / cstate -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Primary/Secondary\n", ("Primary", "Secondary")),
        ("Secondary/Unknown\n", ("Secondary", "Unknown")),
        ("Primary\n", ("Primary", None)),
        ("Unconfigured\n", ("Unconfigured", None)),
    ],
)
def test_it_reads_drbdadm_role_in_84_and_9_forms(text, expected):
    assert parse_role(text) == expected


def test_it_refuses_an_empty_role_answer():
    with pytest.raises(StorageError):
        parse_role("\n")


def test_it_reads_dstate_and_cstate():
    assert parse_dstate("UpToDate/Outdated\n") == ("UpToDate", ("Outdated",))
    assert parse_dstate("UpToDate\n") == ("UpToDate", ())
    assert parse_cstate("Connected\nConnected\nStandAlone\n") == ("Connected", "Connected", "StandAlone")
