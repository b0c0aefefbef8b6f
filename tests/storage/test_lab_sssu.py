"""The lab's simulated sssu: Continuous Access rules on a small two-array state."""

from __future__ import annotations

from hosts.drivers.eva import parse_detail
from hosts.lab.tools.base import visible_devices
from tests.storage.lab_helpers import (
    EVA_DEVICE,
    EVA_GROUP,
    LOCAL_GROUP,
    make_state,
    reachable_primaries,
    run_domain,
    set_down,
    tool,
)

PATH = f'"\\Data Replication\\{EVA_GROUP}"'


def sssu(state, system, *commands, host="eva-ka", now=1000.0):
    return tool(
        state,
        host,
        "sssu",
        "SELECT MANAGER localhost USERNAME=drportal",
        f"SELECT SYSTEM {system}",
        *commands,
        now=now,
    )


def detail(state, system, group=EVA_GROUP, **kw):
    status, out, _ = sssu(state, system, f'LS DR_GROUP "\\Data Replication\\{group}"', **kw)
    assert status == 0, out
    return parse_detail(out)


def sides(state, group=EVA_GROUP):
    return {name: (s["role"], s["disk_state"]) for name, s in state["groups"][group]["sides"].items()}


def test_failover_on_the_destination_swaps_roles_when_the_source_is_quiet():
    state = make_state()
    status, out, _ = sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FAILOVER")
    assert status == 0, out
    assert sides(state) == {"eva-wsl": ("secondary", "UpToDate"), "eva-ka": ("primary", "UpToDate")}
    assert state["groups"][EVA_GROUP]["replication"] == "consistent"
    assert detail(state, "EVA-KA")["sourcedestination"] == "source"
    assert detail(state, "EVA-WSL")["sourcedestination"] == "destination"


def test_failover_is_refused_on_the_source():
    state = make_state()
    status, out, _ = sssu(state, "EVA-WSL", f"SET DR_GROUP {PATH} FAILOVER")
    assert status == 1
    assert out.rstrip().endswith("Error: Failover is permitted only on a destination DR group")


def test_failover_is_refused_while_a_running_domain_uses_the_source_copy():
    state = make_state()
    run_domain(state, "xenwsl01", "proxy-xen01", EVA_DEVICE)
    status, out, _ = sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FAILOVER FORCE")
    assert status == 1
    assert (
        "Error: DR group DRG-proxy-xen01 is in use at its source EVA-WSL: domain proxy-xen01 on host "
        "xenwsl01 uses /dev/vg_proxy01/lvol1; shut it down before a planned failover"
    ) in out
    assert sides(state)["eva-ka"] == ("secondary", "UpToDate")


def test_a_domain_on_a_dead_dom0_does_not_block_failover():
    state = make_state()
    run_domain(state, "xenwsl01", "proxy-xen01", EVA_DEVICE)
    set_down(state, "xenwsl01")
    assert sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FAILOVER")[0] == 0


def test_failover_with_the_source_array_down_marks_it_outdated_and_breaks_replication():
    state = make_state()
    set_down(state, "eva-wsl")
    view = detail(state, "EVA-KA")
    assert (view["operationalstate"], view["logstate"], view["replicationlag"]) == (
        "attention",
        "normal",
        "unknown",
    )
    status, out, _ = sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FAILOVER")
    assert status == 0, out
    group = state["groups"][EVA_GROUP]
    assert sides(state) == {"eva-wsl": ("secondary", "Outdated"), "eva-ka": ("primary", "UpToDate")}
    assert group["sides"]["eva-wsl"]["diverged"] is True
    assert (group["replication"], group["lag_seconds"]) == ("broken", None)
    set_down(state, "eva-wsl", False)  # the old source returns: still no second primary
    assert reachable_primaries(state, EVA_GROUP) == ["eva-ka"]
    assert detail(state, "EVA-WSL")["operationalstate"] == "failed"


def test_a_broken_or_unreplicated_group_needs_force():
    state = make_state()
    state["groups"][EVA_GROUP]["replication"] = "broken"
    status, out, _ = sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FAILOVER")
    assert status == 1
    assert "Error: DR group DRG-proxy-xen01 is not consistent (replication broken" in out
    assert sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FAILOVER FORCE")[0] == 0
    assert sides(state) == {"eva-wsl": ("secondary", "Outdated"), "eva-ka": ("primary", "UpToDate")}
    local = f'"\\Data Replication\\{LOCAL_GROUP}"'
    assert (
        "Failover is permitted only on a destination"
        in sssu(state, "EVA-KA", f"SET DR_GROUP {local} FAILOVER")[1]
    )


def test_present_adds_the_host_and_makes_the_device_visible_only_on_the_source():
    state = make_state()
    status, out, _ = sssu(state, "EVA-KA", f'SET DR_GROUP {PATH} PRESENT HOST="\\Hosts\\xenka01"')
    assert status == 1
    assert "this copy is a destination (read-only)" in out
    assert EVA_DEVICE not in visible_devices(state, "xenka01")
    assert sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FAILOVER")[0] == 0
    for _ in range(2):  # idempotent
        assert sssu(state, "EVA-KA", f'SET DR_GROUP {PATH} PRESENT HOST="\\Hosts\\xenka01"')[0] == 0
    assert state["groups"][EVA_GROUP]["sides"]["eva-ka"]["presented_to"] == ["xenka01"]
    assert EVA_DEVICE in visible_devices(state, "xenka01")
    assert EVA_DEVICE not in visible_devices(state, "xenwsl01")
    assert detail(state, "EVA-KA")["presentedto"] == "xenka01"


def test_present_refuses_an_unknown_host_and_unpresent_refuses_a_disk_in_use():
    state = make_state()
    status, out, _ = sssu(state, "EVA-WSL", f'SET DR_GROUP {PATH} PRESENT HOST="\\Hosts\\nohost"')
    assert (status, "Error: Host \\Hosts\\nohost does not exist" in out) == (1, True)
    run_domain(state, "xenwsl01", "proxy-xen01", EVA_DEVICE)
    status, out, _ = sssu(state, "EVA-WSL", f'SET DR_GROUP {PATH} UNPRESENT HOST="\\Hosts\\xenwsl01"')
    assert status == 1
    assert "in use by domain proxy-xen01 on host xenwsl01" in out


def test_suspend_and_resume():
    state = make_state()
    assert sssu(state, "EVA-WSL", f"SET DR_GROUP {PATH} SUSPEND")[0] == 0
    assert detail(state, "EVA-KA")["suspended"] == "yes"
    assert sssu(state, "EVA-WSL", f"SET DR_GROUP {PATH} RESUME")[0] == 0
    assert state["groups"][EVA_GROUP]["replication"] == "consistent"
    local = f'"\\Data Replication\\{LOCAL_GROUP}"'
    assert "has no destination" in sssu(state, "EVA-KA", f"SET DR_GROUP {local} SUSPEND")[1]


def test_reverse_resyncs_the_old_source_from_the_new_one_over_time():
    state = make_state(resync_seconds=60.0)
    set_down(state, "eva-wsl")
    sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FAILOVER")
    status, out, _ = sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} REVERSE")
    assert (status, "System EVA-WSL is not responding" in out) == (1, True)
    set_down(state, "eva-wsl", False)
    assert "permitted only on a source" in sssu(state, "EVA-WSL", f"SET DR_GROUP {PATH} REVERSE")[1]
    assert sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} REVERSE", now=1000.0)[0] == 0
    assert detail(state, "EVA-WSL", now=1010.0)["logstate"] == "copying"
    assert sides(state)["eva-wsl"] == ("secondary", "Inconsistent")
    assert detail(state, "EVA-WSL", now=1060.0)["logstate"] == "normal"
    assert sides(state)["eva-wsl"] == ("secondary", "UpToDate")
    assert "diverged" not in state["groups"][EVA_GROUP]["sides"]["eva-wsl"]


def test_any_array_can_manage_the_other_but_not_a_dead_or_unknown_one():
    state = make_state()
    assert detail(state, "EVA-WSL", host="eva-ka")["sourcedestination"] == "source"
    set_down(state, "eva-wsl")
    assert "Error: System EVA-WSL is not responding" in sssu(state, "EVA-WSL", "LS DR_GROUP")[1]
    assert "Error: System EVA-XX not found" in sssu(state, "EVA-XX", "LS DR_GROUP")[1]


def test_it_needs_manager_and_system_and_knows_its_commands():
    state = make_state()
    status, out, _ = tool(state, "eva-ka", "sssu", "LS DR_GROUP")
    assert (status, out.rstrip().splitlines()[-1]) == (1, "Error: No system selected")
    assert "Error: Unknown command" in sssu(state, "EVA-KA", "FROB DR_GROUP")[1]
    assert (
        "does not exist on this system" in sssu(state, "EVA-KA", 'LS DR_GROUP "\\Data Replication\\nope"')[1]
    )
    assert tool(state, "xenka01", "sssu", "LS DR_GROUP")[0] == 127  # served on array hosts only
    listing = sssu(state, "EVA-KA", "LS DR_GROUP")[1]
    assert "\\Data Replication\\DRG-lws-xen01" in listing and "DRG-dns-xen01" not in listing


def test_failing_over_a_suspended_group_leaves_the_old_source_diverged():
    state = make_state()
    assert sssu(state, "EVA-WSL", f"SET DR_GROUP {PATH} SUSPEND")[0] == 0
    assert sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FAILOVER")[0] == 0
    group = state["groups"][EVA_GROUP]
    assert sides(state) == {"eva-wsl": ("secondary", "Outdated"), "eva-ka": ("primary", "UpToDate")}
    assert (group["replication"], group["sides"]["eva-wsl"]["diverged"]) == ("broken", True)


def test_suspend_is_refused_while_copying():
    state = make_state(resync_seconds=60.0)
    state["groups"][EVA_GROUP]["replication"] = "syncing"
    status, out, _ = sssu(state, "EVA-WSL", f"SET DR_GROUP {PATH} SUSPEND")
    assert (status, "cannot be suspended while replication is syncing" in out) == (1, True)
    assert "Unknown option FAILOVER NOW" in sssu(state, "EVA-KA", f"SET DR_GROUP {PATH} FAILOVER NOW")[1]
