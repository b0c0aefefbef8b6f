"""Drill snapshots: the EVA driver's SSSU words and parsers, against the lab's simulated
sssu through the in-process Runner (tests/storage/lab_helpers.py); the DRBD and manual
drivers' answers. Over real SSH: tests/lab/test_lab_drills.py."""

from __future__ import annotations

import copy

import pytest

from hosts.drivers.eva import parse_snapshot_devices, parse_snapshot_list, snapshot_status_of
from hosts.drivers.storage import (
    GroupNotFound,
    ManualStepRequired,
    NotConsistent,
    SnapshotNotFound,
    SnapshotStatus,
    SnapshotUnsupported,
    StorageError,
    get_driver,
)
from tests.storage.lab_helpers import (
    DRBD_GROUP,
    EVA_DEVICE,
    EVA_GROUP,
    LOCAL_GROUP,
    LabRunner,
    make_state,
    run_domain,
    set_down,
)

SNAP = "drill-0001"
SNAP_DEVICE = "/dev/mapper/drill-0001-vg_proxy01-lvol1"


def eva(state, system="EVA-KA", via="eva-ka"):
    runner = LabRunner(state, via)
    return get_driver("eva-ca", runner, system=system, manager="localhost", username="drportal"), runner


def sent(runner, word):
    return [c for c in runner.commands if word in c]


# --- parsers ------------------------------------------------------------------------------


def test_it_reads_the_snapshot_detail_with_group_path_devices_and_hosts():
    text = (
        "EVA-KA> LS SNAPSHOT s1\n"
        "\\Snapshots\\s1 information:\n"
        "  name ..........: \\Snapshots\\s1\n"
        "  drgroup .......: \\Data Replication\\DRG-a\n"
        "  devices .......: /dev/vg_a/lvol1=/dev/mapper/s1-vg_a-lvol1, /dev/vg_b/lvol1=/dev/mapper/s1-vg_b-lvol1\n"
        "  presentedto ...: \\Hosts\\xenka01, xenka02\n"
    )
    assert snapshot_status_of(text) == SnapshotStatus(
        name="s1",
        group="DRG-a",
        devices={
            "/dev/vg_a/lvol1": "/dev/mapper/s1-vg_a-lvol1",
            "/dev/vg_b/lvol1": "/dev/mapper/s1-vg_b-lvol1",
        },
        presented_to=("xenka01", "xenka02"),
    )


def test_it_reads_an_unpresented_snapshot_without_devices_and_other_key_spellings():
    status = snapshot_status_of(
        "Snapshot Name: s2\nSource DR Group: DRG-b\nDevices: none\nPresented to: none\n"
    )
    assert status == SnapshotStatus(name="s2", group="DRG-b", devices={}, presented_to=())


def test_it_refuses_a_detail_without_name_or_group_and_devices_it_cannot_read():
    with pytest.raises(StorageError, match="has no drgroup field"):
        snapshot_status_of("name ....: s1\n")
    with pytest.raises(
        StorageError, match=r"cannot read snapshot devices '/dev/a': expected 'device=snapshot"
    ):
        parse_snapshot_devices("/dev/a")


def test_it_lists_snapshot_names_and_ignores_the_echoed_command_and_header():
    text = 'EVA-KA> LS SNAPSHOT\nSnapshot list:\n  \\Snapshots\\s1\n  "\\Snapshots\\s2"\n  \\Snapshots\\s1\n'
    assert parse_snapshot_list(text) == ("s1", "s2")
    assert parse_snapshot_list("EVA-KA> LS SNAPSHOT\nSnapshot list:\n") == ()


# --- the EVA driver against the lab's sssu --------------------------------------------------


def test_a_snapshot_of_the_destination_copy_leaves_the_group_exactly_as_it_was():
    state = make_state()
    before = copy.deepcopy(state["groups"])
    ka, runner = eva(state)
    status = ka.snapshot(EVA_GROUP, SNAP)
    assert status == SnapshotStatus(
        name=SNAP, group=EVA_GROUP, devices={EVA_DEVICE: SNAP_DEVICE}, presented_to=()
    )
    assert sent(runner, "ADD SNAPSHOT") == [
        "sssu 'SELECT MANAGER localhost USERNAME=drportal' 'SELECT SYSTEM EVA-KA' "
        "'ADD SNAPSHOT drill-0001 DR_GROUP=\"\\Data Replication\\DRG-proxy-xen01\"'"
    ]
    assert state["groups"] == before
    assert state["snapshots"][SNAP]["array"] == "eva-ka"
    assert ka.list_snapshots() == (SNAP,)
    assert eva(state, "EVA-WSL", "eva-wsl")[0].list_snapshots() == ()  # it lives on the array that took it


def test_snapshot_is_idempotent_and_refuses_the_name_of_another_groups_snapshot():
    state = make_state()
    ka, runner = eva(state)
    first = ka.snapshot(EVA_GROUP, SNAP)
    assert ka.snapshot(EVA_GROUP, SNAP) == first
    assert len(sent(runner, "ADD SNAPSHOT")) == 1
    with pytest.raises(StorageError) as caught:
        ka.snapshot(LOCAL_GROUP, SNAP)
    assert caught.value.message == (
        f"snapshot {SNAP} on EVA-KA already exists, of DR group {EVA_GROUP}, not {LOCAL_GROUP}: "
        "delete it or use another name"
    )


@pytest.mark.parametrize(
    ("replication", "disk", "why"),
    [
        ("broken", "UpToDate", "this copy is secondary with replication broken"),
        ("syncing", "Inconsistent", "this copy is secondary with replication syncing"),
    ],
)
def test_snapshot_of_a_copy_that_is_not_consistent_is_refused_naming_group_and_state(replication, disk, why):
    state = make_state()
    state["groups"][EVA_GROUP]["replication"] = replication
    state["groups"][EVA_GROUP]["sides"]["eva-ka"]["disk_state"] = disk
    ka, runner = eva(state)
    with pytest.raises(NotConsistent, match=f"refusing to snapshot DR group {EVA_GROUP} on EVA-KA: {why}"):
        ka.snapshot(EVA_GROUP, SNAP)
    assert sent(runner, "ADD SNAPSHOT") == []
    assert "snapshots" not in state


def test_the_lab_array_refuses_a_snapshot_of_an_inconsistent_copy_on_its_own():
    state = make_state()
    state["groups"][EVA_GROUP]["replication"] = "broken"
    runner = LabRunner(state, "eva-ka")
    result = runner.run(
        [
            "sssu",
            "SELECT MANAGER localhost USERNAME=drportal",
            "SELECT SYSTEM EVA-KA",
            f'ADD SNAPSHOT {SNAP} DR_GROUP="\\Data Replication\\{EVA_GROUP}"',
        ],
        timeout=5,
    )
    assert result.exit_status == 1
    assert result.stdout.rstrip().endswith(
        f"Error: DR group {EVA_GROUP} on this system is not consistent (this copy UpToDate, replication "
        "broken): a snapshot of it would not be usable"
    )


def test_a_snapshot_of_the_source_copy_is_allowed_even_with_the_replica_gone():
    state = make_state()
    set_down(state, "eva-ka")
    wsl, _ = eva(state, "EVA-WSL", "eva-wsl")
    assert wsl.snapshot(EVA_GROUP, SNAP).devices == {EVA_DEVICE: SNAP_DEVICE}


def test_snapshot_of_a_group_the_array_does_not_hold_is_group_not_found():
    state = make_state()
    wsl, _ = eva(state, "EVA-WSL", "eva-wsl")
    with pytest.raises(GroupNotFound, match=f"DR group {LOCAL_GROUP} not found on EVA-WSL"):
        wsl.snapshot(LOCAL_GROUP, SNAP)


def test_present_and_unpresent_are_idempotent_and_show_the_devices_to_that_host():
    state = make_state()
    ka, runner = eva(state)
    ka.snapshot(EVA_GROUP, SNAP)
    assert ka.present_snapshot(SNAP, "xenka01").presented_to == ("xenka01",)
    assert ka.present_snapshot(SNAP, "xenka01").presented_to == ("xenka01",)
    assert len(sent(runner, "SET SNAPSHOT")) == 1
    assert state["groups"][EVA_GROUP]["sides"]["eva-ka"]["presented_to"] == []  # the group is untouched
    assert ka.unpresent_snapshot(SNAP, "xenka01").presented_to == ()
    assert ka.unpresent_snapshot(SNAP, "xenka01").presented_to == ()
    assert len(sent(runner, "SET SNAPSHOT")) == 2


def test_unpresent_is_refused_while_a_drill_domain_uses_the_snapshot():
    state = make_state()
    ka, _ = eva(state)
    ka.snapshot(EVA_GROUP, SNAP)
    ka.present_snapshot(SNAP, "xenka01")
    run_domain(state, "xenka01", "drill-proxy-xen01", SNAP_DEVICE)
    with pytest.raises(StorageError) as caught:
        ka.unpresent_snapshot(SNAP, "xenka01")
    assert caught.value.message == (
        f"Error: Snapshot {SNAP} is in use by domain drill-proxy-xen01 on host xenka01 ({SNAP_DEVICE})"
    )
    assert ka.snapshot_status(SNAP).presented_to == ("xenka01",)


def test_delete_is_refused_while_presented_and_is_idempotent_once_gone():
    state = make_state()
    ka, runner = eva(state)
    ka.snapshot(EVA_GROUP, SNAP)
    ka.present_snapshot(SNAP, "xenka01")
    with pytest.raises(StorageError, match=f"snapshot {SNAP} on EVA-KA: it is still presented to xenka01"):
        ka.delete_snapshot(SNAP)
    assert sent(runner, "DELETE SNAPSHOT") == []
    ka.unpresent_snapshot(SNAP, "xenka01")
    ka.delete_snapshot(SNAP)
    ka.delete_snapshot(SNAP)
    assert len(sent(runner, "DELETE SNAPSHOT")) == 1
    assert ka.snapshot_status(SNAP) is None
    assert ka.list_snapshots() == ()
    with pytest.raises(SnapshotNotFound, match=f"snapshot {SNAP} does not exist on EVA-KA"):
        ka.present_snapshot(SNAP, "xenka01")


def test_snapshot_names_and_hosts_are_checked_before_anything_is_sent():
    state = make_state()
    ka, runner = eva(state)
    with pytest.raises(StorageError, match="invalid snapshot name 'x y'"):
        ka.snapshot(EVA_GROUP, "x y")
    with pytest.raises(StorageError, match="invalid host name 'xen ka'"):
        ka.present_snapshot(SNAP, "xen ka")
    assert runner.commands == []


# --- DRBD and manual ---------------------------------------------------------------------


def test_drbd_cannot_snapshot_and_says_to_use_the_manual_driver():
    drbd = get_driver("drbd", LabRunner(make_state(), "xenka01"))
    with pytest.raises(SnapshotUnsupported) as caught:
        drbd.snapshot(DRBD_GROUP, SNAP)
    assert caught.value.message == (
        f"cannot snapshot DRBD resource {DRBD_GROUP}: DRBD has no snapshots of its own; a drill on DRBD "
        "needs an LVM snapshot of the backing device on xenka01, which drportal does not do. Use the "
        "manual storage driver for this group's drills (a person takes and removes the snapshot)."
    )
    assert isinstance(caught.value, StorageError)
    for action in (
        lambda: drbd.snapshot_status(SNAP),
        lambda: drbd.present_snapshot(SNAP, "xenka01"),
        lambda: drbd.unpresent_snapshot(SNAP, "xenka01"),
        lambda: drbd.delete_snapshot(SNAP),
        drbd.list_snapshots,
    ):
        with pytest.raises(SnapshotUnsupported, match="LVM snapshot of the backing device"):
            action()


def test_manual_driver_asks_the_storage_team_for_each_snapshot_step():
    driver = get_driver("manual", None, array="eva-ka")
    with pytest.raises(ManualStepRequired) as caught:
        driver.snapshot(EVA_GROUP, SNAP)
    assert caught.value.instruction.startswith(
        f"Ask the storage team to take a snapshot named {SNAP} of the copy of DR group {EVA_GROUP} on eva-ka"
    )
    assert (caught.value.group, caught.value.action, caught.value.snapshot) == (EVA_GROUP, "snapshot", SNAP)
    assert not isinstance(caught.value, StorageError)
    expected = {
        "present_snapshot": f"present snapshot {SNAP} on eva-ka to host xenka01",
        "unpresent_snapshot": f"unpresent snapshot {SNAP} on eva-ka from host xenka01",
        "delete_snapshot": f"delete snapshot {SNAP} on eva-ka",
        "snapshot_status": f"tell you whether snapshot {SNAP} exists on eva-ka",
    }
    for action, call in (
        ("present_snapshot", lambda: driver.present_snapshot(SNAP, "xenka01")),
        ("unpresent_snapshot", lambda: driver.unpresent_snapshot(SNAP, "xenka01")),
        ("delete_snapshot", lambda: driver.delete_snapshot(SNAP)),
        ("snapshot_status", lambda: driver.snapshot_status(SNAP)),
    ):
        with pytest.raises(ManualStepRequired) as caught:
            call()
        assert expected[action] in caught.value.instruction
        assert caught.value.instruction.endswith("then press 'Mark done' on the board.")
        assert (caught.value.action, caught.value.snapshot) == (action, SNAP)
    with pytest.raises(ManualStepRequired, match="list the snapshots on eva-ka"):
        driver.list_snapshots()
