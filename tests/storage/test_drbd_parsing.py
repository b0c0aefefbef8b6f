"""drbdadm output parsers, on samples built from the reference's formats (section 3)."""

from __future__ import annotations

import pytest

from hosts.drivers.drbd import group_status, parse_cstate, parse_dstate, parse_role, parse_status
from hosts.drivers.storage import StorageError

CONNECTED_9 = """\
r0 role:Primary
  disk:UpToDate
  xenka01 role:Secondary
    peer-disk:UpToDate

"""

DISCONNECTED_9 = """\
r0 role:Secondary
  disk:UpToDate
  xenwsl01 connection:Connecting

"""

STANDALONE = """\
r0 role:Primary
  disk:UpToDate
  peer connection:StandAlone

"""

OUTDATED_STANDALONE = """\
r0 role:Secondary
  disk:Outdated
  xenka01 connection:StandAlone

"""

INCONSISTENT_TARGET = """\
r0 role:Secondary
  disk:Inconsistent
  xenwsl01 role:Primary
    replication:SyncTarget peer-disk:UpToDate done:12.50

"""

SYNC_SOURCE = """\
r0 role:Primary
  disk:UpToDate
  xenka01 role:Secondary
    replication:SyncSource peer-disk:Inconsistent done:37.50

"""

UG84 = """\
home role:Secondary
  disk:UpToDate
  peer role:Secondary
    replication:Established peer-disk:UpToDate
"""

UG84_VERBOSE = """\
home role:Secondary suspended:no
    write-ordering:flush
  volume:0 minor:0 disk:UpToDate
      size:5033792 read:0 written:0 al-writes:0 bm-writes:0 upper-pending:0
      lower-pending:0 al-suspended:no blocked:no
  peer connection:Connected role:Secondary congested:no
    volume:0 replication:Established peer-disk:UpToDate
        resync-suspended:no
        received:0 sent:0 out-of-sync:0 pending:0 unacked:0
"""

UG9_THREE_PEERS = """\
home role:Secondary
  disk:UpToDate
  nina role:Secondary
    disk:UpToDate
  nino role:Secondary
    disk:UpToDate
  nono connection:Connecting
"""

TWO_VOLUMES_WRAPPED = """\
data role:Primary
  volume:0 disk:UpToDate
  volume:1 disk:UpToDate
  xenka01 role:Secondary
    volume:0 replication:SyncSource peer-disk:Inconsistent
    done:80.00
    volume:1 peer-disk:UpToDate

"""


def test_it_reads_a_connected_drbd9_resource_as_consistent():
    res = parse_status(CONNECTED_9)["r0"]
    assert (res.role, res.disk) == ("Primary", "UpToDate")
    assert [(p.name, p.role, p.disks, p.connected) for p in res.peers] == [
        ("xenka01", "Secondary", ("UpToDate",), True)
    ]
    status = group_status("r0", "xenwsl01", res)
    assert (status.role, status.peer_role, status.replication) == ("primary", "secondary", "consistent")
    assert status.presented_to == ("xenwsl01",)
    assert status.lag_seconds is None


def test_it_reads_a_disconnected_peer_as_broken_with_unknown_peer_role():
    res = parse_status(DISCONNECTED_9)["r0"]
    assert res.peers[0].connection == "Connecting"
    status = group_status("r0", "xenka01", res)
    assert (status.role, status.peer_role, status.replication) == ("secondary", "unknown", "broken")
    assert status.presented_to == ()
    assert "xenwsl01 connection:Connecting" in status.detail


def test_it_reads_standalone_after_split_brain_as_broken():
    status = group_status("r0", "n1", parse_status(STANDALONE)["r0"])
    assert (status.role, status.replication, status.peer_role) == ("primary", "broken", "unknown")


def test_it_reports_an_outdated_local_disk():
    res = parse_status(OUTDATED_STANDALONE)["r0"]
    assert res.disk == "Outdated"
    assert "disk:Outdated" in group_status("r0", "n", res).detail


def test_it_reads_a_sync_target_with_progress_as_syncing():
    res = parse_status(INCONSISTENT_TARGET)["r0"]
    assert res.disk == "Inconsistent"
    assert res.peers[0].replication == ("SyncTarget",)
    assert res.peers[0].done == 12.5
    assert group_status("r0", "n", res).replication == "syncing"


def test_it_reads_a_sync_source_with_progress():
    res = parse_status(SYNC_SOURCE)["r0"]
    peer = res.peers[0]
    assert (peer.replication, peer.disks, peer.done) == (("SyncSource",), ("Inconsistent",), 37.5)
    status = group_status("r0", "n", res)
    assert status.replication == "syncing"
    assert "done:37.50" in status.detail


def test_it_reads_the_drbd84_user_guide_sample_with_the_peer_called_peer():
    res = parse_status(UG84)["home"]
    assert [(p.name, p.role, p.replication) for p in res.peers] == [("peer", "Secondary", ("Established",))]
    assert group_status("home", "n", res).replication == "consistent"


def test_it_reads_verbose_statistics_output():
    res = parse_status(UG84_VERBOSE)["home"]
    assert (res.role, res.disks, res.suspended) == ("Secondary", ("UpToDate",), None)
    peer = res.peers[0]
    assert (peer.connection, peer.role, peer.disks) == ("Connected", "Secondary", ("UpToDate",))


def test_it_reads_drbd9_peers_that_print_disk_instead_of_peer_disk():
    res = parse_status(UG9_THREE_PEERS)["home"]
    assert [(p.name, p.connected, p.disks) for p in res.peers] == [
        ("nina", True, ("UpToDate",)),
        ("nino", True, ("UpToDate",)),
        ("nono", False, ()),
    ]
    assert group_status("home", "n", res).replication == "broken"  # one peer is not connected


def test_it_merges_wrapped_continuation_lines_and_keeps_volumes_apart():
    res = parse_status(TWO_VOLUMES_WRAPPED)["data"]
    assert res.disks == ("UpToDate", "UpToDate")
    peer = res.peers[0]
    assert peer.disks == ("Inconsistent", "UpToDate")
    assert peer.done == 80.0


def test_it_reads_several_resources_and_the_empty_answer():
    both = parse_status(CONNECTED_9 + DISCONNECTED_9.replace("r0", "r1"))
    assert sorted(both) == ["r0", "r1"]
    assert parse_status("# No currently configured DRBD found.\n") == {}


def test_a_resource_without_peers_has_no_replication():
    status = group_status("r0", "n", parse_status("r0 role:Primary\n  disk:UpToDate\n\n")["r0"])
    assert (status.replication, status.peer_role) == ("none", "unknown")


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
