"""The lab's simulated sssu: the real SSSU 8.0 words only, its login, and Continuous Access
rules on a small two-array state (virtual disks, LUNs, the destination's access mode)."""

from __future__ import annotations

import pytest

from hosts.lab.tools.base import visible_devices
from hosts.lab.tools.eva_model import presented_hosts
from tests.lab.storage_states import (
    EVA_DEVICE,
    EVA_GROUP,
    EVA_VDISK,
    LOCAL_GROUP,
    PASSWORD,
    login,
    make_state,
    reachable_primaries,
    run_domain,
    set_down,
    tool,
)

PATH = f'"\\Data Replication\\{EVA_GROUP}"'


def sssu(state, system, *commands, host=None, now=1000.0):
    host = host or system.lower()
    return tool(
        state, host, "sssu", f'FILE "{login(host.upper())}"', f'SELECT SYSTEM "{system}"', *commands, now=now
    )


def field(state, system, name, group=EVA_GROUP, **kw):
    status, out, _ = sssu(state, system, f'LS DR_GROUP "\\Data Replication\\{group}"', **kw)
    assert status == 0, out
    line = next(line for line in out.splitlines() if line.strip().startswith(f"{name} ."))
    return line.split(": ", 1)[1]


def sides(state, group=EVA_GROUP):
    return {name: (s["role"], s["disk_state"]) for name, s in state["groups"][group]["sides"].items()}


def last_error(out):
    return out.rstrip().splitlines()[-1]


# --- words and login ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "word"),
    [
        (f"SET DR_GROUP {PATH} RESUME", "RESUME"),
        (f"SET DR_GROUP {PATH} FAILOVER FORCE", "FORCE"),
        (f"SET DR_GROUP {PATH} REVERSE", "REVERSE"),
        (f'SET DR_GROUP {PATH} PRESENT HOST="\\Hosts\\xenka01"', "PRESENT"),
        (f'ADD SNAPSHOT s1 VDISK="{EVA_VDISK}" FROB=1', "FROB"),
        ("FROB DR_GROUP", "FROB"),
        ("ls snap full", "snap"),  # real SSSU may take abbreviations; the lab takes whole words
    ],
)
def test_a_word_outside_the_sssu_keyword_table_is_an_error(command, word):
    status, out, _ = sssu(make_state(), "EVA-KA", command)
    assert (status, last_error(out)) == (1, f"Error: Unknown keyword {word}")


def test_a_known_word_the_lab_does_not_simulate_says_so():
    status, out, _ = sssu(make_state(), "EVA-KA", "CODE_LOAD")
    assert (status, last_error(out)) == (
        1,
        "Error: CODE_LOAD is an SSSU command the drportal lab does not simulate",
    )


def test_select_manager_needs_a_password_and_the_right_one():
    state = make_state()
    status, out, _ = tool(state, "eva-ka", "sssu", "SELECT MANAGER localhost USERNAME=drportal")
    assert (status, last_error(out)) == (1, "Error: SELECT MANAGER needs USERNAME= and PASSWORD=")
    status, out, _ = tool(
        state, "eva-ka", "sssu", "SELECT MANAGER localhost USERNAME=drportal PASSWORD=guess"
    )
    assert status == 1 and "Error: Error opening https connection to localhost: login failed" in out
    assert "guess" not in last_error(out)
    status, out, _ = tool(state, "eva-ka", "sssu", "LS DR_GROUP")
    assert (status, last_error(out)) == (1, "Error: No system selected")
    status, out, _ = tool(state, "eva-ka", "sssu", 'SELECT SYSTEM "EVA-KA"')
    assert (status, last_error(out)) == (1, "Error: No manager selected")
    command = f"SELECT MANAGER localhost USERNAME=drportal PASSWORD={PASSWORD}"
    assert tool(state, "eva-ka", "sssu", command, 'SELECT SYSTEM "EVA-KA"', "LS DR_GROUP")[0] == 0


def test_file_runs_the_login_script_of_the_management_host_and_echoes_it():
    state = make_state()
    status, out, _ = sssu(state, "EVA-KA", "LS DR_GROUP")
    assert status == 0
    lines = out.splitlines()
    assert lines[:6] == [
        "",
        "",
        "SSSU for HP StorageWorks Command View EVA",
        "Version: 8.0.0",
        "Build: drportal-lab",
        f'NoSystemSelected> FILE "{login("EVA-KA")}"',
    ]
    assert "EVA-KA> LS DR_GROUP" in lines and f"  \\Data Replication\\{EVA_GROUP}" in lines
    status, out, _ = tool(state, "eva-ka", "sssu", 'FILE "/root/nope.login"')
    assert (status, last_error(out)) == (1, "Error: Unable to open file /root/nope.login")


def test_it_answers_in_the_real_output_form():
    status, out, _ = sssu(make_state(), "EVA-KA", f'LS VDISK "{EVA_VDISK}"')
    assert status == 0
    block = out[out.index(f"{EVA_VDISK} information:") :]
    assert block.splitlines()[1] == "object"
    assert "  drmmode .........................: destination" in block.splitlines()
    assert f"  drmgroupname ....................: \\Data Replication\\{EVA_GROUP}" in block.splitlines()


def test_any_array_can_be_selected_from_a_management_host_but_not_a_dead_or_unknown_one():
    state = make_state()
    assert field(state, "EVA-WSL", "operationalstate", host="eva-ka") == "good"
    set_down(state, "eva-wsl")
    assert (
        last_error(sssu(state, "EVA-WSL", "LS DR_GROUP", host="eva-ka")[1])
        == "Error: System EVA-WSL is not responding"
    )
    assert (
        last_error(sssu(state, "EVA-XX", "LS DR_GROUP", host="eva-ka")[1]) == "Error: System EVA-XX not found"
    )
    assert tool(state, "xenka01", "sssu", "LS DR_GROUP")[0] == 127  # served on array hosts only


def test_a_group_without_a_replica_is_no_dr_group_but_its_vdisk_is_there():
    state = make_state()
    status, out, _ = sssu(state, "EVA-KA", "LS DR_GROUP", "LS VDISK")
    assert status == 0 and LOCAL_GROUP not in out.split("EVA-KA> LS VDISK")[0]
    assert f"\\Virtual Disks\\{LOCAL_GROUP}-1\\ACTIVE" in out
    status, out, _ = sssu(state, "EVA-KA", f'SET DR_GROUP "\\Data Replication\\{LOCAL_GROUP}" SUSPEND')
    assert (
        last_error(out) == f"Error: DR group \\Data Replication\\{LOCAL_GROUP} does not exist on this system"
    )


# --- failover ----------------------------------------------------------------------------


def test_failover_on_the_destination_swaps_source_and_destination():
    state = make_state()
    assert sssu(state, "EVA-WSL", 'DELETE LUN "\\Hosts\\xenwsl01\\1"')[0] == 0
    status, out, _ = sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FAILOVER")
    assert status == 0, out
    assert sides(state) == {"eva-wsl": ("secondary", "UpToDate"), "eva-ka": ("primary", "UpToDate")}
    assert state["groups"][EVA_GROUP]["replication"] == "consistent"
    vdisk = sssu(state, "EVA-WSL", f'LS VDISK "{EVA_VDISK}"')[1]
    assert "drmmode .........................: destination" in vdisk


def test_failover_is_refused_on_the_source():
    status, out, _ = sssu(make_state(), "EVA-WSL", f"SET DR_GROUP {PATH} FAILOVER")
    assert (status, last_error(out)) == (1, "Error: Failover is permitted only on a destination DR group")


def test_failover_is_refused_while_a_running_domain_uses_the_source_copy():
    state = make_state()
    run_domain(state, "xenwsl01", "proxy-xen01", EVA_DEVICE)
    status, out, _ = sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FAILOVER")
    assert status == 1
    assert last_error(out) == (
        "Error: DR group DRG-proxy-xen01 is in use at its source EVA-WSL: domain proxy-xen01 on host "
        f"xenwsl01 uses {EVA_VDISK}; shut it down before a planned failover"
    )
    assert sides(state)["eva-ka"] == ("secondary", "UpToDate")
    set_down(state, "xenwsl01")  # a domain on a dead dom0 does not block it
    assert sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FAILOVER")[0] == 0


def test_failover_with_the_source_array_down_fences_it_and_the_array_copies_back_when_it_returns():
    state = make_state(resync_seconds=60.0)
    set_down(state, "eva-wsl")
    assert (field(state, "EVA-KA", "operationalstate"), field(state, "EVA-KA", "logstate")) == (
        "attention",
        "normal",
    )
    assert sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FAILOVER")[0] == 0
    group = state["groups"][EVA_GROUP]
    assert sides(state) == {"eva-wsl": ("secondary", "Outdated"), "eva-ka": ("primary", "UpToDate")}
    assert (group["replication"], group["sides"]["eva-wsl"]["diverged"]) == ("broken", True)
    assert field(state, "EVA-KA", "logstate") == "logging"
    set_down(state, "eva-wsl", False)  # the old source returns: still no second primary
    assert reachable_primaries(state, EVA_GROUP) == ["eva-ka"]
    assert field(state, "EVA-KA", "logstate", now=1010.0) == "fullcopy"  # diverged: a full copy
    assert sides(state)["eva-wsl"] == ("secondary", "Inconsistent")
    assert field(state, "EVA-WSL", "logstate", now=1070.0) == "normal"
    assert sides(state)["eva-wsl"] == ("secondary", "UpToDate")


def test_a_destination_still_being_full_copied_cannot_fail_over():
    state = make_state(resync_seconds=60.0)
    group = state["groups"][EVA_GROUP]
    group.update(replication="syncing", resync_done_at=1060.0)
    group["sides"]["eva-ka"]["disk_state"] = "Inconsistent"
    status, out, _ = sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FAILOVER")
    assert status == 1 and "this destination is not consistent (replication syncing" in last_error(out)


def test_failing_over_a_suspended_group_leaves_the_old_source_to_be_full_copied():
    state = make_state()
    assert sssu(state, "EVA-WSL", f"SET DR_GROUP {PATH} SUSPEND")[0] == 0
    assert field(state, "EVA-KA", "suspendstate") == "suspended"
    assert sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FAILOVER")[0] == 0
    group = state["groups"][EVA_GROUP]
    assert group["sides"]["eva-wsl"]["diverged"] is True
    field(state, "EVA-KA", "logstate")  # both arrays answer: the array starts the full copy at once
    assert (group["replication"], sides(state)["eva-wsl"]) == ("consistent", ("secondary", "UpToDate"))


def test_failover_suspend_needs_the_other_system():
    state = make_state()
    set_down(state, "eva-wsl")
    _, out, _ = sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FAILOVER_SUSPEND")
    assert (
        last_error(out)
        == f"Error: DR group {EVA_GROUP}: FAILOVER_SUSPEND needs the other system; use FAILOVER"
    )


# --- suspend, full copy, access ------------------------------------------------------------


def test_suspend_and_nosuspend_and_suspend_is_refused_while_copying():
    state = make_state()
    assert sssu(state, "EVA-WSL", f"SET DR_GROUP {PATH} SUSPEND")[0] == 0
    assert (field(state, "EVA-WSL", "suspendstate"), field(state, "EVA-WSL", "logstate")) == (
        "suspended",
        "logging",
    )
    assert sssu(state, "EVA-WSL", f"SET DR_GROUP {PATH} NOSUSPEND")[0] == 0
    assert state["groups"][EVA_GROUP]["replication"] == "consistent"
    state["groups"][EVA_GROUP].update(replication="syncing", resync_done_at=2000.0)
    status, out, _ = sssu(state, "EVA-WSL", f"SET DR_GROUP {PATH} SUSPEND")
    assert (status, "cannot be suspended while replication is syncing" in out) == (1, True)


def test_with_fullcopy_autosuspend_the_returning_link_waits_for_forcefullcopy():
    state = make_state()
    state["groups"][EVA_GROUP]["fullcopy_autosuspend"] = True
    set_down(state, "eva-wsl")
    sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FAILOVER")
    set_down(state, "eva-wsl", False)
    assert (field(state, "EVA-KA", "suspendstate"), field(state, "EVA-KA", "logstate")) == (
        "suspended",
        "overflow",
    )
    assert "use FORCEFULLCOPY" in last_error(sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} NOSUSPEND")[1])
    assert "permitted only on a source" in last_error(
        sssu(state, "EVA-WSL", f"SET DR_GROUP {PATH} FORCEFULLCOPY")[1]
    )
    assert sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FORCEFULLCOPY")[0] == 0
    assert field(state, "EVA-KA", "logstate") == "normal"
    assert sides(state)["eva-wsl"] == ("secondary", "UpToDate")


def test_accessmode_takes_keywords_only():
    state = make_state()
    assert sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} ACCESSMODE=READONLY")[0] == 0
    assert field(state, "EVA-KA", "accessmode") == "readonly"
    status, out, _ = sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} ACCESSMODE=WRITABLE")
    assert (status, last_error(out)) == (1, "Error: Unknown keyword WRITABLE")


# --- LUNs ---------------------------------------------------------------------------------


def test_add_lun_presents_one_vdisk_the_dom0_sees_only_a_source_or_readonly_copy():
    state = make_state()
    add = f'ADD LUN 0 VDISK="{EVA_VDISK}" HOST="\\Hosts\\xenka01"'
    assert sssu(state, "EVA-KA", add)[0] == 0  # a destination can be presented ...
    assert EVA_DEVICE not in visible_devices(state, "xenka01")  # ... but gives no access
    assert (
        last_error(sssu(state, "EVA-KA", add)[1])
        == f"Error: Virtual disk {EVA_VDISK} is already presented to \\Hosts\\xenka01"
    )
    assert sssu(state, "EVA-WSL", 'DELETE LUN "\\Hosts\\xenwsl01\\1"')[0] == 0
    assert sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FAILOVER")[0] == 0
    assert EVA_DEVICE in visible_devices(state, "xenka01")
    assert EVA_DEVICE not in visible_devices(state, "xenwsl01")
    assert presented_hosts(state, EVA_GROUP, "eva-ka") == ["xenka01"]


def test_add_and_delete_lun_refuse_unknown_hosts_vdisks_and_luns_and_a_disk_in_use():
    state = make_state()
    out = sssu(state, "EVA-WSL", f'ADD LUN 0 VDISK="{EVA_VDISK}" HOST="\\Hosts\\nohost"')[1]
    assert last_error(out) == "Error: Host \\Hosts\\nohost does not exist"
    out = sssu(state, "EVA-WSL", 'ADD LUN 0 VDISK="\\Virtual Disks\\nope\\ACTIVE" HOST="\\Hosts\\xenka01"')[1]
    assert (
        last_error(out) == "Error: Virtual disk \\Virtual Disks\\nope\\ACTIVE does not exist on this system"
    )
    assert (
        last_error(sssu(state, "EVA-WSL", 'DELETE LUN "\\Hosts\\xenwsl01\\9"')[1])
        == "Error: LUN \\Hosts\\xenwsl01\\9 does not exist"
    )
    run_domain(state, "xenwsl01", "proxy-xen01", EVA_DEVICE)
    out = sssu(state, "EVA-WSL", 'DELETE LUN "\\Hosts\\xenwsl01\\1"')[1]
    assert (
        last_error(out) == f"Error: Virtual disk {EVA_VDISK} is in use by domain proxy-xen01 on host xenwsl01"
    )


# --- snapshots ---------------------------------------------------------------------------


def test_a_snapshot_is_a_vdisk_in_its_parents_family_presented_and_deleted_as_one():
    state = make_state()
    assert sssu(state, "EVA-KA", f'ADD SNAPSHOT s1 VDISK="{EVA_VDISK}" ALLOCATION_POLICY=DEMAND')[0] == 0
    snap = f"\\Virtual Disks\\{EVA_GROUP}-1\\s1"
    status, out, _ = sssu(state, "EVA-KA", "LS SNAPSHOT FULL")
    assert (
        status == 0 and f"{snap} information:" in out and "virtualdisktype .................: snapshot" in out
    )
    assert (
        last_error(sssu(state, "EVA-KA", f'ADD SNAPSHOT s1 VDISK="{EVA_VDISK}"')[1])
        == "Error: Virtual disk s1 already exists"
    )
    assert sssu(state, "EVA-KA", f'ADD LUN 0 VDISK="{snap}" HOST="\\Hosts\\xenka01"')[0] == 0
    out = sssu(state, "EVA-KA", f'DELETE VDISK "{snap}" WAIT_FOR_COMPLETION')[1]
    assert (
        last_error(out)
        == f"Error: Virtual disk {snap} is presented to \\Hosts\\xenka01; delete its LUNs first"
    )
    assert sssu(state, "EVA-KA", 'DELETE LUN "\\Hosts\\xenka01\\2"')[0] == 0
    assert sssu(state, "EVA-KA", f'DELETE VDISK "{snap}" WAIT_FOR_COMPLETION')[0] == 0
    assert state["snapshots"] == {}
    out = sssu(state, "EVA-KA", f'DELETE VDISK "{EVA_VDISK}"')[1]
    assert "is not a snapshot" in last_error(out)


def test_the_lab_array_refuses_a_snapshot_of_a_copy_that_is_being_full_copied():
    state = make_state()
    state["groups"][EVA_GROUP].update(replication="syncing", resync_done_at=2000.0)
    state["groups"][EVA_GROUP]["sides"]["eva-ka"]["disk_state"] = "Inconsistent"
    status, out, _ = sssu(state, "EVA-KA", f'ADD SNAPSHOT s1 VDISK="{EVA_VDISK}" ALLOCATION_POLICY=DEMAND')
    assert (status, last_error(out)) == (
        1,
        f"Error: Virtual disk {EVA_VDISK} is not consistent (Inconsistent, replication syncing): a snapshot "
        "of it would not be usable",
    )


def test_a_replication_link_down_with_both_arrays_up_stays_broken_and_the_source_logs():
    state = make_state()
    state["groups"][EVA_GROUP].update(replication="broken", lag_seconds=None)
    for _ in range(2):  # reads do not mend a link
        assert (field(state, "EVA-WSL", "logstate"), field(state, "EVA-KA", "operationalstate")) == (
            "logging",
            "attention",
        )
    assert state["groups"][EVA_GROUP]["replication"] == "broken"
