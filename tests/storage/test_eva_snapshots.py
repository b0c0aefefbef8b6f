"""Drill snapshots: the EVA driver's SSSU words against the lab's simulated sssu through the
in-process Runner (tests/lab/storage_states.py): one snapshot vdisk of each of the
DESTINATION's member vdisks, presented and deleted as virtual disks; the DRBD and manual
drivers' answers. Over real SSH: tests/lab/test_lab_drills.py."""

from __future__ import annotations

import copy

import pytest

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
from hosts.lab.tools.eva_model import mapper_device, wwid
from tests.lab.storage_states import (
    DRBD_GROUP,
    EVA_DEVICE,
    EVA_GROUP,
    EVA_VDISK,
    LOCAL_GROUP,
    LabRunner,
    login,
    make_state,
    run_domain,
    set_down,
)

SNAP = "drill-0001"
SNAP_PATH = f"\\Virtual Disks\\{EVA_GROUP}-1\\{SNAP}-1"  # in the parent's family folder
SNAP_DEVICE = mapper_device(wwid("eva-ka", f"{SNAP}-1"))


def eva(state, system="EVA-KA", via=None):
    runner = LabRunner(state, via or system.lower())
    return get_driver("eva-ca", runner, system=system, login_file=login(system)), runner


def sent(runner, word):
    return [c for argv in runner.argvs for c in argv[4:] if word in c]


def test_a_snapshot_of_the_destination_copy_leaves_the_group_exactly_as_it_was():
    state = make_state()
    before = copy.deepcopy(state["groups"])
    luns_before = copy.deepcopy(state["hosts"]["eva-ka"]["luns"])
    ka, runner = eva(state)
    status = ka.snapshot(EVA_GROUP, SNAP)
    assert status == SnapshotStatus(
        name=SNAP, group=EVA_GROUP, devices={EVA_DEVICE: SNAP_DEVICE}, presented_to=()
    )
    assert sent(runner, "ADD SNAPSHOT") == [
        f'ADD SNAPSHOT {SNAP}-1 VDISK="{EVA_VDISK}" ALLOCATION_POLICY=DEMAND'
    ]
    assert state["groups"] == before and state["hosts"]["eva-ka"]["luns"] == luns_before
    assert state["snapshots"][f"{SNAP}-1"]["array"] == "eva-ka"
    assert ka.list_snapshots() == (SNAP,)
    assert eva(state, "EVA-WSL")[0].list_snapshots() == ()  # it lives on the array that took it


def test_a_group_of_two_vdisks_gets_two_snapshot_vdisks_and_both_devices():
    state = make_state()
    group = state["groups"][EVA_GROUP]
    group["devices"].append("/dev/vg_proxy01/lvol2")
    for array, side in group["sides"].items():
        side["vdisks"].append({"name": f"{EVA_GROUP}-2", "wwid": wwid(array, f"{EVA_GROUP}-2")})
    ka, runner = eva(state)
    status = ka.snapshot(EVA_GROUP, SNAP)
    assert status.devices == {
        EVA_DEVICE: SNAP_DEVICE,
        "/dev/vg_proxy01/lvol2": mapper_device(wwid("eva-ka", f"{SNAP}-2")),
    }
    assert len(sent(runner, "ADD SNAPSHOT")) == 2
    assert ka.present_snapshot(SNAP, "xenka01").presented_to == ("xenka01",)
    assert len(sent(runner, "ADD LUN")) == 2


def test_snapshot_is_idempotent_and_refuses_the_name_of_another_groups_snapshot():
    state = make_state()
    ka, runner = eva(state)
    first = ka.snapshot(EVA_GROUP, SNAP)
    assert ka.snapshot(EVA_GROUP, SNAP) == first
    assert len(sent(runner, "ADD SNAPSHOT")) == 1
    with pytest.raises(StorageError) as caught:
        ka.snapshot("DRG-other", SNAP)
    assert caught.value.message == (
        f"snapshot {SNAP} on EVA-KA already exists, of DR group {EVA_GROUP}, not DRG-other: "
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
    state["groups"][EVA_GROUP].update(replication=replication, resync_done_at=5000.0)
    state["groups"][EVA_GROUP]["sides"]["eva-ka"]["disk_state"] = disk
    if replication == "broken":
        set_down(state, "eva-wsl")  # the link is down: the array does not copy back yet
    ka, runner = eva(state)
    with pytest.raises(NotConsistent, match=f"refusing to snapshot DR group {EVA_GROUP} on EVA-KA: {why}"):
        ka.snapshot(EVA_GROUP, SNAP)
    assert sent(runner, "ADD SNAPSHOT") == []
    assert "snapshots" not in state


def test_a_snapshot_of_the_source_copy_is_allowed_even_with_the_replica_gone():
    state = make_state()
    set_down(state, "eva-ka")
    wsl, _ = eva(state, "EVA-WSL")
    assert wsl.snapshot(EVA_GROUP, SNAP).devices == {EVA_DEVICE: mapper_device(wwid("eva-wsl", f"{SNAP}-1"))}


def test_snapshot_of_a_group_the_array_does_not_hold_is_group_not_found():
    state = make_state()
    wsl, _ = eva(state, "EVA-WSL")
    with pytest.raises(GroupNotFound, match=f"DR group {LOCAL_GROUP} not found on EVA-WSL"):
        wsl.snapshot(LOCAL_GROUP, SNAP)


def test_present_and_unpresent_add_and_delete_the_luns_idempotently():
    state = make_state()
    ka, runner = eva(state)
    ka.snapshot(EVA_GROUP, SNAP)
    assert ka.present_snapshot(SNAP, "xenka01").presented_to == ("xenka01",)
    assert ka.present_snapshot(SNAP, "xenka01").presented_to == ("xenka01",)
    assert sent(runner, "ADD LUN") == [f'ADD LUN 0 VDISK="{SNAP_PATH}" HOST="\\Hosts\\xenka01"']
    assert (
        f"{EVA_GROUP}-1" not in state["hosts"]["eva-ka"]["luns"]["xenka01"].values()
    )  # the group is untouched
    assert ka.unpresent_snapshot(SNAP, "xenka01").presented_to == ()
    assert ka.unpresent_snapshot(SNAP, "xenka01").presented_to == ()
    assert sent(runner, "DELETE LUN") == ['DELETE LUN "\\Hosts\\xenka01\\2"']


def test_unpresent_is_refused_while_a_drill_domain_uses_the_snapshot():
    state = make_state()
    ka, _ = eva(state)
    ka.snapshot(EVA_GROUP, SNAP)
    ka.present_snapshot(SNAP, "xenka01")
    run_domain(state, "xenka01", "drill-proxy-xen01", SNAP_DEVICE)
    with pytest.raises(StorageError) as caught:
        ka.unpresent_snapshot(SNAP, "xenka01")
    assert caught.value.message == (
        'EVA-KA: DELETE LUN "\\Hosts\\xenka01\\2": Error: Virtual disk '
        f"{SNAP_PATH} is in use by domain drill-proxy-xen01 on host xenka01"
    )
    assert ka.snapshot_status(SNAP).presented_to == ("xenka01",)


def test_delete_is_refused_while_presented_and_is_idempotent_once_gone():
    state = make_state()
    ka, runner = eva(state)
    ka.snapshot(EVA_GROUP, SNAP)
    ka.present_snapshot(SNAP, "xenka01")
    with pytest.raises(StorageError, match=f"snapshot {SNAP} on EVA-KA: it is still presented to xenka01"):
        ka.delete_snapshot(SNAP)
    assert sent(runner, "DELETE VDISK") == []
    ka.unpresent_snapshot(SNAP, "xenka01")
    ka.delete_snapshot(SNAP)
    ka.delete_snapshot(SNAP)
    assert sent(runner, "DELETE VDISK") == [f'DELETE VDISK "{SNAP_PATH}" WAIT_FOR_COMPLETION']
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
