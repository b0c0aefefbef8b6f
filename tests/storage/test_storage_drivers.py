"""The EVA, DRBD and manual drivers against the lab's simulated tools, through an
in-process Runner (tests/lab/storage_states.py); the factory."""

from __future__ import annotations

import pytest

from hosts.drivers.base import DriverError
from hosts.drivers.drbd import DrbdDriver
from hosts.drivers.eva import EvaDriver
from hosts.drivers.manual import ManualDriver
from hosts.drivers.storage import (
    GroupNotFound,
    ManualStepRequired,
    NotConsistent,
    SplitBrainRefused,
    StorageError,
    get_driver,
)
from hosts.lab.tools.base import visible_devices
from hosts.lab.tools.eva_model import add_lun, wwid
from tests.lab.storage_states import (
    DRBD_DEVICE,
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


def eva(state, system="EVA-KA", via=None):
    runner = LabRunner(state, via or system.lower())
    return get_driver("eva-ca", runner, system=system, login_file=login(system)), runner


def sent(runner, word):
    """The driver's own commands with ``word`` (the argv words after the login, options and
    system selection every call starts with)."""
    return [c for command in runner.argvs for c in command[4:] if word in c]


# --- EVA ------------------------------------------------------------------------------------


def test_eva_status_reads_both_copies_from_the_group_and_its_virtual_disks():
    state = make_state()
    ka, runner = eva(state)
    status = ka.status(EVA_GROUP)
    assert (status.role, status.peer_role, status.replication, status.lag_seconds) == (
        "secondary",
        "primary",
        "consistent",
        2.0,
    )
    assert status.members == (EVA_VDISK,)
    assert runner.argvs[0][1:] == [
        f'FILE "{login("EVA-KA")}"',
        "SET OPTIONS ON_ERROR=EXIT_ON_ERROR",
        'SELECT SYSTEM "EVA-KA"',
        f'LS DR_GROUP "\\Data Replication\\{EVA_GROUP}"',
    ]
    assert runner.argvs[-1][1:] == [*runner.argvs[0][1:4], f'LS VDISK "{EVA_VDISK}"']  # then its vdisks
    wsl, _ = eva(state, "EVA-WSL")
    assert wsl.status(EVA_GROUP).presented_to == ("xenwsl01",)
    assert ka.list_groups() == (EVA_GROUP,)  # a vdisk without a replica is no DR group


def test_eva_status_reads_the_group_and_its_vdisks_in_one_call_once_it_knows_the_vdisks():
    state = make_state()
    ka, runner = eva(state)
    first = ka.status(EVA_GROUP)
    calls = len(runner.argvs)
    assert ka.status(EVA_GROUP) == first
    assert len(runner.argvs) == calls + 1
    assert runner.argvs[-1][-1] == f'LS VDISK "{EVA_VDISK}"'


def test_eva_statuses_of_many_groups_take_one_sssu_call_and_read_exactly_what_status_reads():
    state = make_state()
    ka, runner = eva(state)
    one_by_one = {EVA_GROUP: ka.status(EVA_GROUP)}
    runner.commands.clear()
    assert ka.statuses([EVA_GROUP]) == one_by_one
    assert len(runner.commands) == 1 and "'LS DR_GROUP FULL' 'LS VDISK FULL'" in runner.commands[0]
    with pytest.raises(GroupNotFound, match="DR group DRG-nope not found on EVA-KA"):
        ka.statuses([EVA_GROUP, "DRG-nope"])  # one it does not list is asked on its own
    with pytest.raises(GroupNotFound, match=f"DR group {LOCAL_GROUP} not found on EVA-KA"):
        ka.status(LOCAL_GROUP)


def test_eva_status_of_an_unknown_group_is_group_not_found():
    ka, _ = eva(make_state())
    with pytest.raises(GroupNotFound, match="DR group DRG-nope not found on EVA-KA"):
        ka.status("DRG-nope")


def test_eva_promote_refuses_split_brain_while_the_source_vm_runs():
    state = make_state()
    run_domain(state, "xenwsl01", "proxy-xen01", EVA_DEVICE)
    ka, _ = eva(state)
    with pytest.raises(SplitBrainRefused) as caught:
        ka.promote(EVA_GROUP, force=True)
    assert str(caught.value).startswith(
        f'EVA-KA: SET DR_GROUP "\\Data Replication\\{EVA_GROUP}" FAILOVER: Error: DR group DRG-proxy-xen01 '
        f"is in use at its source EVA-WSL: domain proxy-xen01 on host xenwsl01 uses {EVA_VDISK}; shut it "
        "down before a planned failover"
    )
    assert caught.value.result is not None and caught.value.result.exit_status == 1
    assert ka.status(EVA_GROUP).role == "secondary"


def test_eva_promote_swaps_roles_in_one_call_and_is_idempotent():
    state = make_state()
    ka, runner = eva(state)
    current = ka.status(EVA_GROUP)
    calls = len(runner.argvs)
    after = ka.promote(EVA_GROUP, current=current)
    assert (after.role, after.peer_role) == ("primary", "secondary")
    assert len(runner.argvs) == calls + 1  # FAILOVER and the reads after it: one SSSU call
    assert ka.promote(EVA_GROUP).role == "primary"
    assert sent(runner, "SET DR_GROUP") == [f'SET DR_GROUP "\\Data Replication\\{EVA_GROUP}" FAILOVER']
    assert eva(state, "EVA-WSL")[0].status(EVA_GROUP).role == "secondary"


def test_eva_promote_with_the_source_site_lost_needs_no_force_and_fences_it():
    state = make_state()
    set_down(state, "eva-wsl")
    set_down(state, "xenwsl01")
    ka, _ = eva(state)
    assert ka.status(EVA_GROUP).replication == "consistent"  # the destination's copy is intact
    after = ka.promote(EVA_GROUP)
    assert (after.role, after.replication, after.lag_seconds) == ("primary", "broken", None)
    assert state["groups"][EVA_GROUP]["sides"]["eva-wsl"]["disk_state"] == "Outdated"


def test_eva_promote_of_a_copy_still_being_full_copied_is_refused_even_with_force():
    state = make_state(resync_seconds=60.0)
    state["groups"][EVA_GROUP]["replication"] = "syncing"
    state["groups"][EVA_GROUP]["resync_done_at"] = 1060.0
    state["groups"][EVA_GROUP]["sides"]["eva-ka"]["disk_state"] = "Inconsistent"
    ka, runner = eva(state)
    with pytest.raises(NotConsistent, match="replication syncing"):
        ka.promote(EVA_GROUP)
    assert sent(runner, "FAILOVER") == []
    with pytest.raises(StorageError, match=r"this destination is not consistent .* failover refused"):
        ka.promote(EVA_GROUP, force=True)  # SSSU has no forced failover
    assert ka.status(EVA_GROUP).role == "secondary"


def test_eva_present_adds_a_lun_per_virtual_disk_only_on_a_source_copy_and_only_once():
    state = make_state()
    ka, runner = eva(state)
    with pytest.raises(StorageError, match="this copy is secondary, fail over first"):
        ka.present(EVA_GROUP, "xenka01")
    assert sent(runner, "ADD LUN") == []
    current = ka.promote(EVA_GROUP)
    assert ka.present(EVA_GROUP, "xenka01", current=current).presented_to == ("xenka01",)
    ka.present(EVA_GROUP, "xenka01")
    assert sent(runner, "ADD LUN") == [f'ADD LUN 0 VDISK="{EVA_VDISK}" HOST="\\Hosts\\xenka01"']
    # The array picked the next free LUN of xenka01 (1 is DRG-lws-xen01's).
    assert state["hosts"]["eva-ka"]["luns"]["xenka01"] == {"1": f"{LOCAL_GROUP}-1", "2": f"{EVA_GROUP}-1"}
    with pytest.raises(StorageError, match="invalid host name"):
        ka.present(EVA_GROUP, "xen;reboot")


def test_eva_present_after_promote_takes_one_call_and_completes_a_half_presented_group():
    state = make_state()
    group = state["groups"][EVA_GROUP]
    group["devices"].append("/dev/vg_proxy01/lvol2")
    for array, side in group["sides"].items():
        side["vdisks"].append({"name": f"{EVA_GROUP}-2", "wwid": wwid(array, f"{EVA_GROUP}-2")})
    add_lun(state, "eva-wsl", "xenwsl01", f"{EVA_GROUP}-2")
    eva(state, "EVA-WSL")[0].demote(EVA_GROUP)
    ka, runner = eva(state)
    current = ka.promote(EVA_GROUP)
    calls = len(runner.argvs)
    assert ka.present(EVA_GROUP, "xenka01", current=current).presented_to == ("xenka01",)
    assert len(runner.argvs) == calls + 1  # both ADD LUNs and the read after them
    # A vdisk presented already (an earlier attempt died half-way): the array refuses the
    # batch, the driver reads and adds only what is missing.
    add_lun(state, "eva-ka", "xenwsl01", f"{EVA_GROUP}-1")
    current = ka.status(EVA_GROUP)
    assert "partly presented to xenwsl01" in current.detail
    assert ka.present(EVA_GROUP, "xenwsl01", current=current).presented_to == ("xenka01", "xenwsl01")
    assert (
        sent(runner, "ADD LUN")[-1]
        == f'ADD LUN 0 VDISK="\\Virtual Disks\\{EVA_GROUP}-2\\ACTIVE" HOST="\\Hosts\\xenwsl01"'
    )


def test_eva_demote_fences_the_source_by_deleting_its_luns():
    state = make_state()
    wsl, runner = eva(state, "EVA-WSL")
    run_domain(state, "xenwsl01", "proxy-xen01", EVA_DEVICE)
    with pytest.raises(StorageError, match="in use by domain proxy-xen01 on host xenwsl01"):
        wsl.demote(EVA_GROUP)
    state["hosts"]["xenwsl01"]["domains"].pop()
    after = wsl.demote(EVA_GROUP)
    assert (after.role, after.presented_to) == ("primary", ())
    assert sent(runner, "DELETE LUN")[-1] == 'DELETE LUN "\\Hosts\\xenwsl01\\1"'
    assert state["hosts"]["eva-wsl"]["luns"]["xenwsl01"] == {}


def test_eva_reverse_after_an_unplanned_failover_waits_for_the_link_and_sends_no_reverse():
    state = make_state()
    set_down(state, "eva-wsl")
    ka, runner = eva(state)
    ka.promote(EVA_GROUP)
    with pytest.raises(StorageError, match=r"not replicating to EVA-WSL yet .*; Retry then"):
        ka.reverse(EVA_GROUP)
    set_down(state, "eva-wsl", False)
    wsl, _ = eva(state, "EVA-WSL")
    with pytest.raises(StorageError, match="is secondary"):
        wsl.reverse(EVA_GROUP)
    assert ka.reverse(EVA_GROUP).replication == "consistent"  # the array full-copied on its own
    assert wsl.status(EVA_GROUP).role == "secondary"
    assert not [c for c in runner.commands if "REVERSE" in c or "FORCE'" in c]


def test_eva_reverse_resumes_a_suspended_group_and_full_copies_where_the_array_waits_for_it():
    state = make_state()
    state["groups"][EVA_GROUP]["fullcopy_autosuspend"] = True
    set_down(state, "eva-wsl")
    ka, runner = eva(state)
    ka.promote(EVA_GROUP)
    set_down(state, "eva-wsl", False)
    assert ka.status(EVA_GROUP).replication == "suspended"  # the log cannot merge: it waits
    assert ka.reverse(EVA_GROUP).replication == "consistent"
    assert sent(runner, "FORCEFULLCOPY") == [f'SET DR_GROUP "\\Data Replication\\{EVA_GROUP}" FORCEFULLCOPY']
    ka.suspend(EVA_GROUP)
    assert ka.status(EVA_GROUP).replication == "suspended"
    assert ka.reverse(EVA_GROUP).replication == "consistent"
    assert sent(runner, "NOSUSPEND") == [f'SET DR_GROUP "\\Data Replication\\{EVA_GROUP}" NOSUSPEND']


def test_eva_reverse_takes_host_access_away_from_the_returning_destination():
    state = make_state()
    state["groups"][EVA_GROUP]["accessmode"] = "readonly"
    set_down(state, "eva-wsl")
    set_down(state, "xenwsl01")
    ka, runner = eva(state)
    ka.promote(EVA_GROUP)
    set_down(state, "eva-wsl", False)
    set_down(state, "xenwsl01", False)
    # The old source still presents its vdisk to xenwsl01 (nobody could take it away).
    assert EVA_DEVICE in visible_devices(state, "xenwsl01")
    ka.reverse(EVA_GROUP)
    assert sent(runner, "ACCESSMODE") == [
        f'SET DR_GROUP "\\Data Replication\\{EVA_GROUP}" ACCESSMODE=DISABLE'
    ]
    assert EVA_DEVICE not in visible_devices(state, "xenwsl01")


def test_eva_suspend_and_resume_use_suspend_and_nosuspend():
    state = make_state()
    wsl, runner = eva(state, "EVA-WSL")
    assert wsl.suspend(EVA_GROUP).replication == "suspended"
    assert wsl.suspend(EVA_GROUP).replication == "suspended"
    assert wsl.resume(EVA_GROUP).replication == "consistent"
    assert sent(runner, "SUSPEND") == [
        f'SET DR_GROUP "\\Data Replication\\{EVA_GROUP}" SUSPEND',
        f'SET DR_GROUP "\\Data Replication\\{EVA_GROUP}" NOSUSPEND',
    ]


def test_eva_integrity_check_after_failover_and_on_a_destination():
    state = make_state()
    set_down(state, "eva-wsl")
    ka, _ = eva(state)
    before = ka.integrity_check(EVA_GROUP)
    assert not before.ok
    assert before.problems == ("problem: the copy of DRG-proxy-xen01 on EVA-KA is secondary, not the source",)
    ka.promote(EVA_GROUP)
    after = ka.integrity_check(EVA_GROUP)
    assert after.ok
    assert any("replication to EVA-WSL is not running" in f for f in after.findings)


def test_eva_suspend_and_resume():
    ka, _ = eva(make_state())
    assert ka.suspend(EVA_GROUP).replication == "suspended"
    assert ka.resume(EVA_GROUP).replication == "consistent"


# --- DRBD -----------------------------------------------------------------------------------


def drbd(state, node="xenka01", peer=None):
    peer_runner = LabRunner(state, peer) if peer else None
    return get_driver("drbd", LabRunner(state, node), peer_runner=peer_runner)


@pytest.mark.parametrize("version", ["9", "8.4"])
def test_drbd_promote_refuses_while_the_peer_is_primary_keeping_drbds_words(version):
    state = make_state(drbd_version=version)
    ka = drbd(state)
    assert (ka.status(DRBD_GROUP).role, ka.status(DRBD_GROUP).peer_role) == ("secondary", "primary")
    with pytest.raises(SplitBrainRefused) as caught:
        ka.promote(DRBD_GROUP, force=True)
    obj = DRBD_GROUP if version == "9" else "0"
    assert (
        str(caught.value).splitlines()[0]
        == f"{obj}: State change failed: (-1) Multiple primaries not allowed by config"
    )
    assert caught.value.result.exit_status == 11


def test_drbd_planned_switch_demote_then_promote():
    state = make_state()
    wsl, ka = drbd(state, "xenwsl01"), drbd(state)
    run_domain(state, "xenwsl01", "dns-xen01", DRBD_DEVICE)
    with pytest.raises(StorageError, match=r"\(-12\) Device is held open by someone"):
        wsl.demote(DRBD_GROUP)
    state["hosts"]["xenwsl01"]["domains"].pop()
    assert wsl.demote(DRBD_GROUP).role == "secondary"
    after = ka.promote(DRBD_GROUP)
    assert (after.role, after.replication, after.presented_to) == ("primary", "consistent", ("xenka01",))
    assert ka.present(DRBD_GROUP, "xenka01") == after
    with pytest.raises(StorageError, match="local to xenka01"):
        ka.present(DRBD_GROUP, "xenwsl01")


def test_drbd_failover_with_the_peer_lost_needs_force_then_reverse_asks_a_person():
    state = make_state()
    set_down(state, "xenwsl01")
    ka = drbd(state)
    with pytest.raises(NotConsistent, match=r"\(-7\) Refusing to be Primary while peer is not outdated"):
        ka.promote(DRBD_GROUP)
    assert ka.promote(DRBD_GROUP, force=True).role == "primary"
    report = ka.integrity_check(DRBD_GROUP)
    assert report.ok and "note: replication of DRG-dns-xen01 is broken" in report.findings
    set_down(state, "xenwsl01", False)
    with pytest.raises(ManualStepRequired) as caught:
        ka.reverse(DRBD_GROUP)
    assert "drbdadm connect --discard-my-data DRG-dns-xen01" in caught.value.instruction


def test_drbd_reverse_with_a_peer_runner_resyncs_the_old_primary():
    state = make_state()
    set_down(state, "xenwsl01")
    ka = drbd(state, peer="xenwsl01")
    ka.promote(DRBD_GROUP, force=True)
    set_down(state, "xenwsl01", False)
    assert ka.reverse(DRBD_GROUP).replication == "consistent"
    assert drbd(state, "xenwsl01").status(DRBD_GROUP).role == "secondary"
    with pytest.raises(StorageError, match="not primary"):
        drbd(state, "xenwsl01").reverse(DRBD_GROUP)


def test_drbd_unknown_resource_and_unreachable_node():
    state = make_state()
    with pytest.raises(GroupNotFound, match=r"^r9: No such resource$"):  # drbdsetup status's words
        drbd(state).status("r9")
    set_down(state, "xenka01")
    with pytest.raises(DriverError, match="lab host down"):
        drbd(state).status(DRBD_GROUP)


def test_drbd_integrity_check_on_the_secondary_is_not_ok():
    report = drbd(make_state()).integrity_check(DRBD_GROUP)
    assert report.problems == ("problem: DRG-dns-xen01 is secondary on xenka01, not primary",)


# --- manual and the factory ------------------------------------------------------------------


def test_manual_driver_asks_a_person_and_is_not_a_failure():
    driver = get_driver("manual", None, array="eva-ka", host="xenka01")
    assert driver.status(EVA_GROUP).role == "unknown"
    assert "check with the storage team" in driver.status(EVA_GROUP).detail
    with pytest.raises(ManualStepRequired) as caught:
        driver.promote(EVA_GROUP)
    assert caught.value.instruction == (
        "Ask the storage team to fail over DR group DRG-proxy-xen01 to eva-ka and present it to host "
        "xenka01 (nothing at the other site may still write to it); then press 'Mark done' on the board."
    )
    assert (caught.value.group, caught.value.action) == (EVA_GROUP, "promote")
    assert not isinstance(caught.value, StorageError)
    for action in (
        lambda: driver.present(EVA_GROUP, "xenka01"),
        lambda: driver.demote(EVA_GROUP),
        lambda: driver.reverse(EVA_GROUP),
        lambda: driver.integrity_check(EVA_GROUP),
    ):
        with pytest.raises(ManualStepRequired, match="Mark done"):
            action()


def test_factory_knows_its_kinds():
    state = make_state()
    assert isinstance(
        get_driver("eva-ca", LabRunner(state, "eva-ka"), system="EVA-KA", login_file=login("EVA-KA")),
        EvaDriver,
    )
    assert isinstance(get_driver("drbd", LabRunner(state, "xenka01")), DrbdDriver)
    assert isinstance(get_driver("manual", None), ManualDriver)
    with pytest.raises(StorageError, match=r"^ceph-rbd driver not available yet$"):
        get_driver("ceph-rbd", None)
    with pytest.raises(StorageError, match="unknown storage driver kind 'netapp'"):
        get_driver("netapp", None)
    with pytest.raises(StorageError, match="needs a runner"):
        get_driver("drbd", None)


def test_eva_reverse_with_the_replication_link_down_asks_to_retry_and_sends_nothing():
    state = make_state()
    wsl, runner = eva(state, "EVA-WSL")
    state["groups"][EVA_GROUP].update(replication="broken", lag_seconds=None)
    with pytest.raises(StorageError, match=r"not replicating to EVA-KA yet .*; Retry then"):
        wsl.reverse(EVA_GROUP)
    assert sent(runner, "SET DR_GROUP") == []
