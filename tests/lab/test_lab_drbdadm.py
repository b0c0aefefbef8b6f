"""The lab's simulated drbdadm and drbdsetup on the two dom0s, in DRBD 9 and 8.4 output:
every drbdadm call judged by the real ``drbdadm -d`` first."""

from __future__ import annotations

import pytest

from hosts.drivers.drbd import group_status, parse_dstate, parse_role, parse_status
from hosts.lab.tools.base import ToolContext
from hosts.lab.tools.drbd_view import config_text
from tests.lab.storage_states import (
    DRBD_DEVICE,
    DRBD_GROUP,
    make_state,
    reachable_primaries,
    run_domain,
    set_down,
    tool,
)

R = DRBD_GROUP


def sides(state):
    return {n: (s["role"], s["disk_state"]) for n, s in state["groups"][R]["sides"].items()}


def view(state, host, now=1000.0):
    status, out, err = tool(state, host, "drbdadm", "status", R, now=now)
    assert status == 0, err
    return group_status(R, host, parse_status(out)[R])


@pytest.mark.parametrize("version", ["9", "8.4"])
def test_its_status_output_parses_back_on_both_versions(version):
    state = make_state(drbd_version=version)
    wsl, ka = view(state, "xenwsl01"), view(state, "xenka01")
    assert (wsl.role, wsl.peer_role, wsl.replication) == ("primary", "secondary", "consistent")
    assert (ka.role, ka.peer_role, ka.replication) == ("secondary", "primary", "consistent")
    out = tool(state, "xenka01", "drbdadm", "status")[1]
    assert ("  peer role:Primary" in out) == (version == "8.4")


def test_role_and_dstate_have_the_84_and_9_forms():
    assert tool(make_state(), "xenka01", "drbdadm", "role", R)[1] == "Secondary\n"
    old = make_state(drbd_version="8.4")
    assert parse_role(tool(old, "xenka01", "drbdadm", "role", R)[1]) == ("Secondary", "Primary")
    assert parse_dstate(tool(old, "xenka01", "drbdadm", "dstate", R)[1]) == ("UpToDate", ("UpToDate",))
    set_down(old, "xenwsl01")
    assert tool(old, "xenka01", "drbdadm", "role", R)[1] == "Secondary/Unknown\n"
    assert tool(old, "xenka01", "drbdadm", "cstate", R)[1] == "WFConnection\n"


@pytest.mark.parametrize("force", [False, True])
def test_primary_is_refused_with_drbds_words_while_the_peer_is_primary_and_reachable(force):
    state = make_state()
    argv = ["drbdadm", "primary", *(["--force"] if force else []), R]
    status, _, err = tool(state, "xenka01", *argv)
    assert status == 11
    assert err.splitlines()[0] == f"{R}: State change failed: (-1) Multiple primaries not allowed by config"
    assert err.splitlines()[1].startswith(f"Command 'drbdsetup primary {R}")
    assert sides(state)["xenka01"] == ("secondary", "UpToDate")


def test_the_84_refusal_names_the_minor_and_drbdsetup_84():
    status, _, err = tool(make_state(drbd_version="8.4"), "xenka01", "drbdadm", "primary", R)
    assert status == 11
    assert err == (
        "0: State change failed: (-1) Multiple primaries not allowed by config\n"
        "Command 'drbdsetup-84 primary 0' terminated with exit code 11\n"
    )


def test_forced_primary_with_the_peer_down_marks_the_peer_outdated():
    state = make_state()
    set_down(state, "xenwsl01")
    status, _, err = tool(state, "xenka01", "drbdadm", "primary", R)
    assert status == 11
    assert "(-7) Refusing to be Primary while peer is not outdated" in err
    assert tool(state, "xenka01", "drbdadm", "primary", "--force", R)[0] == 0
    assert sides(state) == {"xenwsl01": ("secondary", "Outdated"), "xenka01": ("primary", "UpToDate")}
    assert state["groups"][R]["replication"] == "broken"
    assert view(state, "xenka01").detail.endswith("xenwsl01 connection:Connecting")
    set_down(state, "xenwsl01", False)
    assert reachable_primaries(state, R) == ["xenka01"]
    assert "xenka01 connection:StandAlone" in view(state, "xenwsl01").detail


def test_an_outdated_node_needs_force_to_become_primary():
    state = make_state()
    state["groups"][R]["sides"]["xenka01"]["disk_state"] = "Outdated"
    assert tool(state, "xenwsl01", "drbdadm", "secondary", R)[0] == 0
    status, _, err = tool(state, "xenka01", "drbdadm", "primary", R)
    assert (status, "(-2) Need access to UpToDate data" in err) == (17, True)


def test_secondary_is_refused_while_a_domain_holds_the_device():
    state = make_state()
    run_domain(state, "xenwsl01", "dns-xen01", DRBD_DEVICE)
    status, _, err = tool(state, "xenwsl01", "drbdadm", "secondary", R)
    assert status == 11
    assert f"{R}: State change failed: (-12) Device is held open by someone" in err


def test_planned_switch_secondary_then_primary():
    state = make_state()
    assert tool(state, "xenwsl01", "drbdadm", "secondary", R)[0] == 0
    assert tool(state, "xenka01", "drbdadm", "primary", R)[0] == 0
    assert sides(state) == {"xenwsl01": ("secondary", "UpToDate"), "xenka01": ("primary", "UpToDate")}
    assert state["groups"][R]["sides"]["xenka01"]["presented_to"] == ["xenka01"]
    assert state["groups"][R]["replication"] == "consistent"


@pytest.mark.parametrize("version", ["9", "8.4"])
def test_the_old_primary_must_discard_its_data_to_reconnect_after_a_forced_failover(version):
    state = make_state(drbd_version=version, resync_seconds=10.0)
    set_down(state, "xenwsl01")
    tool(state, "xenka01", "drbdadm", "primary", "--force", R)
    set_down(state, "xenwsl01", False)
    # Both kept trying; they meet, see that both wrote, and drop the connection.
    ka, wsl = ("peer", "peer") if version == "8.4" else ("xenka01", "xenwsl01")  # 8.4 names it peer
    assert f"{ka} connection:StandAlone" in view(state, "xenwsl01").detail
    assert f"{wsl} connection:StandAlone" in view(state, "xenka01").detail
    # The user guide's recovery: the victim discards, the survivor connects again.
    assert tool(state, "xenwsl01", "drbdadm", "connect", "--discard-my-data", R, now=1000.0)[0] == 0
    assert view(state, "xenka01").replication == "broken"  # the survivor is still StandAlone
    assert tool(state, "xenka01", "drbdadm", "connect", R, now=1000.0)[0] == 0
    assert view(state, "xenka01", now=1005.0).replication == "syncing"
    raw = tool(state, "xenka01", "drbdadm", "status", R, now=1005.0)[1]
    assert "    replication:SyncSource peer-disk:Inconsistent done:50.00\n" in raw
    assert view(state, "xenka01", now=1010.0).replication == "consistent"


def test_84_refuses_connect_while_the_connection_is_not_standalone():
    state = make_state(drbd_version="8.4")
    status, _, err = tool(state, "xenka01", "drbdadm", "connect", R)
    assert status == 10
    assert err == (
        f"{R}: Failure: (125) Device has a net-config (use disconnect first)\n"
        f"Command 'drbdsetup-84 connect {R} ipv4:127.0.2.1:7788 ipv4:127.0.1.1:7788 --protocol=C' "
        "terminated with exit code 10\n"
    )


def test_disconnect_makes_both_sides_standalone():
    state = make_state()
    assert tool(state, "xenka01", "drbdadm", "disconnect", R)[0] == 0
    assert view(state, "xenwsl01").replication == "broken"
    assert tool(state, "xenka01", "drbdadm", "connect", R)[0] == 0
    assert view(state, "xenwsl01").replication == "consistent"


def test_unknown_resources_options_and_commands_fail_with_drbdadms_own_words():
    state = make_state()
    assert tool(state, "xenka01", "drbdadm", "status", "r9") == (
        1,
        "",
        "'r9' not defined in your config (for this host).\n",
    )
    assert tool(state, "eva-ka", "drbdadm", "role", R)[0] == 127  # served on dom0s only
    assert tool(state, "xenka01", "drbdadm", "frob", R) == (1, "", "drbdadm: Unknown command 'frob'\n")
    # What the lab used to take for --force; the real drbdadm knows no such option.
    assert tool(state, "xenka01", "drbdadm", "primary", "--overwrite-data-of-peer", R) == (
        1,
        "",
        "drbdadm: unrecognized option '--overwrite-data-of-peer'\ntry 'drbdadm help'\n",
    )
    assert sides(state)["xenka01"] == ("secondary", "UpToDate")
    # drbdadm 9.22 does not pass --statistics to drbdsetup status (9.24 does: 85d760bd)
    assert tool(state, "xenka01", "drbdadm", "status", "--statistics", R)[2].startswith(
        "drbdadm: unrecognized option '--statistics'"
    )
    state["groups"].pop(R)
    assert tool(state, "xenka01", "drbdsetup", "status") == (0, "# No currently configured DRBD found.\n", "")


@pytest.mark.parametrize("version", ["9", "8.4"])
def test_drbdsetup_checks_options_against_the_real_binarys_table(version):
    state = make_state(drbd_version=version)
    status, out, err = tool(state, "xenka01", "drbdsetup", "status", R, "--frob")
    assert (status, err) == (20, "status: unrecognized option '--frob'\n")
    assert "USAGE: drbdsetup command" in out  # the real binary's own usage text
    status, out, err = tool(state, "xenka01", "drbdsetup", "status", R, "--json")
    if version == "9":
        assert (status, err, out.startswith("[\n{\n")) == (0, "", True)
    else:  # 8.4's drbdsetup has no --json (user/v84/drbdsetup.c:286-291)
        assert (status, err) == (20, "status: unrecognized option '--json'\n")
    assert tool(state, "xenka01", "drbdsetup", "frob")[1].endswith("\ninvalid command\n")


def test_drbdsetup_help_is_the_real_binarys():
    status, out, _ = tool(make_state(), "xenka01", "drbdsetup", "help", "status")
    assert status == 0
    assert "[--verbose] [--statistics] [--color=...] [--json]" in out


def test_a_resource_with_two_volumes_is_judged_per_minor_on_84():
    state = make_state(drbd_version="8.4")
    state["groups"][R]["devices"] = ["/dev/drbd1", "/dev/drbd2"]
    assert tool(state, "xenka01", "drbdadm", "role", R)[1] == "Secondary/Primary\nSecondary/Primary\n"
    status, _, err = tool(state, "xenka01", "drbdadm", "primary", R)
    assert status == 11
    # drbdadm-84 runs one drbdsetup-84 primary per minor and stops at the first failure
    assert err.splitlines() == [
        "1: State change failed: (-1) Multiple primaries not allowed by config",
        "Command 'drbdsetup-84 primary 1' terminated with exit code 11",
    ]


def test_a_diskless_client_and_lost_quorum():
    state = make_state()
    state["groups"][R]["sides"]["xenka01"]["client"] = True
    assert tool(state, "xenka01", "drbdadm", "status", R)[1] == (
        f"{R} role:Secondary\n  disk:Diskless client:yes\n  xenwsl01 role:Primary\n    peer-disk:UpToDate\n\n"
    )
    assert tool(state, "xenwsl01", "drbdadm", "status", R)[1].endswith(
        "  xenka01 role:Secondary\n    peer-disk:Diskless peer-client:yes\n\n"
    )
    state["groups"][R]["sides"]["xenka01"].pop("client")
    tool(state, "xenwsl01", "drbdadm", "secondary", R)
    state["groups"][R]["sides"]["xenka01"]["quorum"] = False
    status, _, err = tool(state, "xenka01", "drbdadm", "primary", R)
    assert (status, err.splitlines()[0]) == (11, f"{R}: State change failed: (-25) No quorum")


def test_a_primary_writing_while_standalone_outdates_the_peer_until_it_reconnects():
    state = make_state()
    tool(state, "xenka01", "drbdadm", "disconnect", R)
    tool(state, "xenwsl01", "drbdadm", "secondary", R)
    assert tool(state, "xenka01", "drbdadm", "primary", R)[0] == 0
    assert sides(state) == {"xenwsl01": ("secondary", "Outdated"), "xenka01": ("primary", "UpToDate")}
    # xenwsl01 kept trying all along; xenka01, StandAlone since its disconnect, connects:
    assert "xenka01 connection:Connecting" in view(state, "xenwsl01").detail
    assert tool(state, "xenka01", "drbdadm", "connect", R)[0] == 0  # no split brain: a plain resync
    assert sides(state)["xenwsl01"] == ("secondary", "UpToDate")
    assert view(state, "xenwsl01").replication == "consistent"


def test_the_resource_file_is_rendered_once_per_state_revision():
    state = make_state()
    state["revision"] = 7
    ctx = ToolContext(host="xenka01", state=state, now=1000.0)
    first = config_text(ctx)
    assert config_text(ctx) is first  # the same revision: the same text, not rendered again
    assert f"resource {R} {{" in first and "on xenka01 { node-id 1; address 127.0.2.1:7788; }" in first
    state["groups"]["DRG-more"] = {**state["groups"][R], "devices": ["/dev/drbd5"]}
    assert config_text(ctx) is first  # nothing bumped the revision: nothing can have changed
    state["revision"] = 8
    assert "resource DRG-more {" in config_text(ctx)
    other = {**state, "groups": {R: state["groups"][R]}}  # another state at the same revision
    assert "DRG-more" not in config_text(ToolContext(host="xenka01", state=other, now=1000.0))
