"""Drills in the lab, over real SSH: snapshots of a DR group's replica presented to the
surviving dom0, a drill clone ("drill-<vm>") started from them serving on the VM's drill
address while the VM keeps serving on its own, cleanup; the crash (power cut) fault; and
the copy back after a failover once the lost array comes back (EVA has no REVERSE: the
array starts it, the driver's reverse() checks it).

DRG-proxy-xen01 replicates eva-wsl (source, presented to xenwsl01 where proxy-xen01 runs)
to eva-ka; proxy-xen01 serves HTTP on 3128 (squid's 400 page). xenka01 has 512 MB free.
"""

from __future__ import annotations

import copy
import http.client
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest

from hosts.drivers.eva import EvaDriver
from hosts.drivers.ssh import SSHConnection, SSHTarget
from hosts.drivers.storage import StorageError
from hosts.lab import cli
from hosts.lab.journal import read_journal
from hosts.lab.keys import client_key_path, ensure_keys, fingerprints
from hosts.lab.seed import seed_reference
from hosts.lab.store import LabStore
from hosts.lab.tools.base import visible_devices
from hosts.lab.tools.eva_model import add_lun, mapper_device, wwid
from hosts.lab.vm_services import vm_fingerprints
from hosts.reference import sssu_login_file

from .conftest import Lab, exec_on

GROUP = "DRG-proxy-xen01"
VM = "proxy-xen01"
CLONE = "drill-proxy-xen01"
SNAP = "drill-20250101"
SNAP_VDISK = f"{SNAP}-1"  # the snapshot of the group's one virtual disk
SNAP_DEVICE = mapper_device(wwid("eva-ka", SNAP_VDISK))  # its LUN as multipath names it on the dom0
SQUID = 3128


@pytest.fixture
def drill_lab(
    tmp_path: Path, vm_addresses: dict[str, str], vm_drill_addresses: dict[str, str]
) -> Iterator[Lab]:
    """The reference estate with its VMs (and their drill clones) on this session's /24s."""
    lab_dir = tmp_path / "lab"
    store = LabStore(lab_dir)
    seed_reference(store, drill_addresses=vm_drill_addresses)
    with store.transaction() as state:
        for vm, address in vm_addresses.items():
            state["services"][vm]["address"] = address
    ensure_keys(lab_dir)
    handle = Lab(lab_dir).start()
    try:
        yield handle
    finally:
        handle.stop()


def eva_driver(conn: SSHConnection, system: str) -> EvaDriver:
    return EvaDriver(conn, system=system, login_file=sssu_login_file(system))


def connection(lab: Lab, host: str) -> SSHConnection:
    return SSHConnection(
        SSHTarget(
            name=host,
            address=lab.address(host),
            port=lab.port,
            user="root",
            key_path=str(client_key_path(lab.lab_dir)),
            fingerprint=fingerprints(lab.lab_dir)[host],
            connect_timeout=5.0,
            command_timeout=10.0,
        )
    )


def http_get(address: str, port: int) -> tuple[int, str]:
    conn = http.client.HTTPConnection(address, port, timeout=2)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def port_open(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=0.3).close()
    except OSError:
        return False
    return True


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def clone_command(device: str) -> str:
    return (
        f"xl create /etc/xen/vm/{VM} 'name=\"{CLONE}\"' memory=256 "
        f"\"disk=['phy:{device},xvda1,w']\" \"vif=['mac=00:16:3e:7d:00:01,bridge=xenbr-drill']\""
    )


def test_a_drill_clone_serves_on_the_drill_address_while_production_keeps_serving(drill_lab: Lab) -> None:
    lab = drill_lab
    spec = lab.store.read()["services"][VM]
    production, drill = spec["address"], spec["drill_address"]
    assert production != drill
    wait_until(lambda: port_open(production, SQUID), f"{VM} to serve on {production}")
    groups_before = copy.deepcopy(lab.store.read()["groups"])

    with connection(lab, "eva-ka") as eva_ka:
        eva = eva_driver(eva_ka, "EVA-KA")
        assert eva.status(GROUP).role == "secondary"
        assert eva.snapshot(GROUP, SNAP).devices == {"/dev/vg_proxy01/lvol1": SNAP_DEVICE}
        # Not presented yet: the dom0 cannot see the snapshot's device.
        status, _, err = lab.run("xenka01", clone_command(SNAP_DEVICE))
        assert status != 0 and SNAP_DEVICE in err
        assert eva.present_snapshot(SNAP, "xenka01").presented_to == ("xenka01",)

        status, _, err = lab.run("xenka01", clone_command(SNAP_DEVICE))
        assert status == 0, err
        domain = next(d for d in lab.store.read()["hosts"]["xenka01"]["domains"] if d["name"] == CLONE)
        assert (domain["memory_mb"], domain["disks"][0]["target"], domain["nics"][0]["bridge"]) == (
            256,
            SNAP_DEVICE,
            "xenbr-drill",
        )

        wait_until(lambda: port_open(drill, SQUID), f"{CLONE} to serve on {drill}")
        status, body = http_get(drill, SQUID)
        assert (status, "ERR_INVALID_URL (squid)" in body) == (400, True)
        status, body = http_get(production, SQUID)
        assert (status, "ERR_INVALID_URL (squid)" in body) == (400, True)

        # The clone's SSH has the VM's own host key (a clone of its disk) and answers as the VM.
        client = lab.connect_to(drill, vm_fingerprints(lab.lab_dir)[VM])
        try:
            assert exec_on(client, "hostname") == (0, f"{VM}\n", "")
        finally:
            client.close()

        assert lab.store.read()["groups"] == groups_before  # the drill disturbed nothing
        with pytest.raises(
            StorageError,
            match=rf"Virtual disk \\Virtual Disks\\{GROUP}-1\\{SNAP_VDISK} is in use by domain {CLONE} on host xenka01",
        ):
            eva.unpresent_snapshot(SNAP, "xenka01")
        with pytest.raises(StorageError, match="still presented to xenka01; unpresent it first"):
            eva.delete_snapshot(SNAP)

        assert lab.run("xenka01", f"xl destroy {CLONE}")[0] == 0
        wait_until(lambda: not port_open(drill, SQUID), f"{CLONE} to stop serving on {drill}")
        assert eva.unpresent_snapshot(SNAP, "xenka01").presented_to == ()
        eva.delete_snapshot(SNAP)
        assert eva.list_snapshots() == ()

    assert port_open(production, SQUID)
    assert lab.store.read()["groups"] == groups_before
    assert "snapshots (drills):" not in cli.lab_status(lab.lab_dir)[1]


def test_a_snapshot_is_visible_only_to_the_dom0s_it_is_presented_to(lab_dir: Path) -> None:
    store = LabStore(lab_dir)
    with store.transaction() as state:
        state["snapshots"] = {
            SNAP_VDISK: {
                "array": "eva-ka",
                "parent": f"{GROUP}-1",
                "group": GROUP,
                "device": "/dev/vg_proxy01/lvol1",
                "wwid": wwid("eva-ka", SNAP_VDISK),
                "created_at": 0.0,
            }
        }
        add_lun(state, "eva-ka", "xenka01", SNAP_VDISK)
    state = store.read()
    assert SNAP_DEVICE in visible_devices(state, "xenka01")
    assert "/dev/vg_proxy01/lvol1" not in visible_devices(state, "xenka01")  # the replica stays hidden
    assert SNAP_DEVICE not in visible_devices(state, "xenwsl01")
    code, text = cli.lab_status(lab_dir)
    assert code == 0 and f"{SNAP_VDISK:<20} of {GROUP}-1 ({GROUP}) on eva-ka -> xenka01" in text
    assert cli.status_data(lab_dir)["snapshots"][SNAP_VDISK]["presented_to"] == ["xenka01"]


def test_a_destination_copy_is_visible_to_a_dom0_it_is_presented_to_only_with_readonly_access(
    lab_dir: Path,
) -> None:
    store = LabStore(lab_dir)
    with store.transaction() as state:
        add_lun(state, "eva-ka", "xenka01", f"{GROUP}-1")  # the destination's vdisk
    assert "/dev/vg_proxy01/lvol1" not in visible_devices(store.read(), "xenka01")
    with store.transaction() as state:
        state["groups"][GROUP]["accessmode"] = "readonly"
    assert "/dev/vg_proxy01/lvol1" in visible_devices(store.read(), "xenka01")


def test_crash_takes_the_dom0_down_with_its_guests_and_up_brings_it_back_empty(drill_lab: Lab) -> None:
    lab = drill_lab
    production = lab.store.read()["services"][VM]["address"]
    wait_until(lambda: port_open(production, SQUID), f"{VM} to serve")

    assert cli.lab_fault(lab.lab_dir, "xenwsl01", "crash", []) == (
        0,
        "xenwsl01: down (crashed: power cut, guests lost: dns-xen01, proxy-xen01, rsync-xen01; "
        "'up' reboots it empty)\n",
    )
    host = lab.store.read()["hosts"]["xenwsl01"]
    assert [d["name"] for d in host["domains"]] == ["Domain-0"]
    wait_until(lambda: not port_open(production, SQUID), f"{VM} to stop serving after the power cut")
    with pytest.raises((paramiko.SSHException, EOFError, OSError)):
        lab.run("xenwsl01", "true", timeout=2)
    assert "down (crashed: power cut" in cli.lab_status(lab.lab_dir)[1]

    assert cli.lab_fault(lab.lab_dir, "xenwsl01", "up", []) == (0, "xenwsl01: up\n")
    host = lab.store.read()["hosts"]["xenwsl01"]
    assert ([d["name"] for d in host["domains"]], host["next_domid"]) == (["Domain-0"], 1)
    fault = lab.store.read()["faults"]["xenwsl01"]
    assert "crashed" not in fault and "lost_domains" not in fault
    wait_until(lambda: port_open(lab.address("xenwsl01"), lab.port), "xenwsl01 to accept SSH again")
    assert lab.run("xenwsl01", "true")[0] == 0
    status, out, _ = lab.run("xenwsl01", "xl list")
    assert status == 0 and VM not in out
    assert not port_open(production, SQUID)


def test_crash_is_for_dom0s_and_a_rebooted_drbd_node_comes_back_secondary(lab_dir: Path) -> None:
    assert cli.lab_fault(lab_dir, "eva-wsl", "crash", []) == (
        2,
        "eva-wsl is an array, not a dom0; crash is for dom0s (use down)\n",
    )
    assert cli.lab_fault(lab_dir, "xenwsl01", "crash", ["now"])[0] == 2
    store = LabStore(lab_dir)
    with store.transaction() as state:
        state["groups"]["DRG-drbd"] = {
            "kind": "drbd",
            "mode": "sync",
            "devices": ["/dev/drbd0"],
            "sides": {
                "xenwsl01": {"role": "primary", "presented_to": ["xenwsl01"], "disk_state": "UpToDate"},
                "xenka01": {"role": "secondary", "presented_to": [], "disk_state": "UpToDate"},
            },
            "replication": "consistent",
            "lag_seconds": 0.0,
        }
    assert cli.lab_fault(lab_dir, "xenwsl01", "crash", [])[0] == 0
    assert store.read()["groups"]["DRG-drbd"]["sides"]["xenwsl01"]["role"] == "primary"  # nobody knows yet
    assert cli.lab_fault(lab_dir, "xenwsl01", "up", [])[0] == 0
    side = store.read()["groups"]["DRG-drbd"]["sides"]["xenwsl01"]
    assert (side["role"], side["presented_to"]) == ("secondary", [])


def test_after_a_failover_with_the_source_array_down_the_array_copies_back_once_it_is_back(lab: Lab) -> None:
    with lab.store.transaction() as state:
        state["groups"][GROUP]["resync_seconds"] = 1.0
    lab.fault("eva-wsl", "down")
    lab.fault("xenwsl01", "crash")
    with connection(lab, "eva-ka") as eva_ka:
        eva = eva_driver(eva_ka, "EVA-KA")
        after = eva.promote(GROUP)
        assert (after.role, after.replication) == ("primary", "broken")
        lost = lab.store.read()["groups"][GROUP]["sides"]["eva-wsl"]
        assert (lost["role"], lost["disk_state"]) == ("secondary", "Outdated")
        with pytest.raises(
            StorageError, match=r"not replicating to EVA-WSL yet .* once the link is up; Retry"
        ):
            eva.reverse(GROUP)

        lab.fault("eva-wsl", "up")
        lab.fault("xenwsl01", "up")
        assert eva.reverse(GROUP).replication == "syncing"  # a full copy: the old source diverged
        assert lab.store.read()["groups"][GROUP]["sides"]["eva-wsl"]["disk_state"] == "Inconsistent"
        wait_until(
            lambda: eva.status(GROUP).replication == "consistent", "the full copy to finish", timeout=5
        )
    with connection(lab, "eva-wsl") as eva_wsl:
        back = eva_driver(eva_wsl, "EVA-WSL").status(GROUP)
        assert (back.role, back.replication, back.peer_role) == ("secondary", "consistent", "primary")
    assert lab.store.read()["groups"][GROUP]["sides"]["eva-wsl"]["disk_state"] == "UpToDate"
    assert not [e for e in read_journal(lab.lab_dir) if "REVERSE" in e["command"].upper()]
