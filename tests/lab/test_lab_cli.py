"""``manage.py lab ...``: status, faults, latency, journal, fingerprints (no server needed)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hosts.lab import cli
from hosts.lab.store import LabStore


def _parse(*argv: str) -> dict:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return vars(parser.parse_args(list(argv)))


def test_status_json_has_hosts_domains_groups_and_the_journal(lab_dir: Path) -> None:
    store = LabStore(lab_dir)
    for n in range(60):
        store.journal.append(host="xenka01", command=f"echo {n}", exit_status=0, seconds=0.001)
    code, text = cli.dispatch(_parse("--lab-dir", str(lab_dir), "status", "--json"))
    data = json.loads(text)
    assert code == 0
    assert set(data) >= {"lab_dir", "server", "hosts", "groups", "latency", "journal"}
    assert data["server"] == {"running": False}
    ka = data["hosts"]["xenka01"]
    assert (ka["address"], ka["kind"], ka["fault"]["mode"], ka["free_memory_mb"]) == (
        "127.0.2.1",
        "dom0",
        "up",
        512,
    )
    assert ka["domains"][0] == {"name": "Domain-0", "domid": 0, "memory_mb": 256, "state": "r-----"}
    assert data["hosts"]["eva-ka"]["kind"] == "array"
    proxy = data["groups"]["DRG-proxy-xen01"]
    assert proxy["sides"]["eva-wsl"]["role"] == "primary"
    assert proxy["sides"]["eva-wsl"]["presented_to"] == ["xenwsl01"]  # from the array's LUN table
    assert (proxy["replication"], proxy["lag_seconds"]) == ("consistent", 2.0)
    assert [entry["seq"] for entry in data["journal"]] == list(range(11, 61))
    code, text = cli.lab_status(lab_dir)
    assert code == 0 and "xenka01" in text and "DRG-lws-xen01" in text and "echo 59" in text


def test_fault_refuses_unknown_hosts_and_bad_arguments(lab_dir: Path) -> None:
    assert cli.lab_fault(lab_dir, "xenfoo01", "down", []) == (
        2,
        "unknown lab host 'xenfoo01'; known: eva-ka, eva-wsl, xenka01, xenwsl01\n",
    )
    assert cli.lab_fault(lab_dir, "xenka01", "explode", [])[0] == 2
    assert cli.lab_fault(lab_dir, "xenka01", "slow", [])[0] == 2
    assert cli.lab_fault(lab_dir, "xenka01", "slow", ["-1"])[0] == 2
    assert cli.lab_fault(lab_dir, "xenka01", "slow", ["fast"])[0] == 2
    assert cli.lab_fault(lab_dir, "xenka01", "down", ["now"])[0] == 2


def test_fault_modes_are_stored_and_up_clears_them(lab_dir: Path) -> None:
    store = LabStore(lab_dir)
    assert cli.dispatch(_parse("--lab-dir", str(lab_dir), "fault", "xenka01", "slow", "2.5"))[0] == 0
    assert cli.lab_fault(lab_dir, "xenka01", "fail-next", ["disk", "on", "fire"])[0] == 0
    assert cli.lab_fault(lab_dir, "xenka01", "hang", [])[0] == 0
    assert store.read()["faults"]["xenka01"] == {
        "mode": "hang",
        "slow_seconds": 2.5,
        "fail_next": "disk on fire",
        "key_generation": 0,
    }
    assert cli.lab_fault(lab_dir, "xenka01", "up", [])[0] == 0
    assert store.read()["faults"]["xenka01"] == {
        "mode": "up",
        "slow_seconds": 0.0,
        "fail_next": None,
        "key_generation": 0,
    }
    code, text = cli.lab_fault(lab_dir, "eva-ka", "rekey", [])
    assert code == 0 and "SHA256:" in text
    assert store.read()["faults"]["eva-ka"]["key_generation"] == 1


def test_latency_sets_a_default_and_per_command_delays(lab_dir: Path) -> None:
    options = _parse("--lab-dir", str(lab_dir), "latency", "--default", "0.1", "--command", "xl  create", "3")
    code, text = cli.dispatch(options)
    assert code == 0 and "'xl create': 3 s" in text
    assert LabStore(lab_dir).read()["latency"] == {"default_seconds": 0.1, "per_command": {"xl create": 3.0}}
    assert cli.lab_latency(lab_dir, per_command=[("xl list", "soon")])[0] == 2
    cli.lab_latency(lab_dir, clear=True)
    assert LabStore(lab_dir).read()["latency"] == {"default_seconds": 0.0, "per_command": {}}


def test_journal_and_fingerprints(lab_dir: Path) -> None:
    store = LabStore(lab_dir)
    for command in ("uptime", "xl list", "test -e /x"):
        store.journal.append(host="xenwsl01", command=command, exit_status=0, seconds=0.5, notes=["n"])
    code, text = cli.lab_journal(lab_dir, since=1, as_json=True)
    assert code == 0 and [entry["command"] for entry in json.loads(text)] == ["xl list", "test -e /x"]
    code, text = cli.lab_journal(lab_dir, limit=1)
    assert code == 0 and text.strip().endswith("test -e /x  # n")
    code, text = cli.lab_fingerprints(lab_dir, as_json=True)
    prints = json.loads(text)
    assert set(prints) == {"xenwsl01", "xenka01", "eva-wsl", "eva-ka"}
    assert all(fp.startswith("SHA256:") and "=" not in fp for fp in prints.values())


def test_the_django_command_wraps_the_cli(lab_dir: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DRPORTAL_LAB_DIR": str(lab_dir)}
    done = subprocess.run(
        [sys.executable, "manage.py", "lab", "fault", "nowhere", "down"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "unknown lab host 'nowhere'" in done.stderr


@pytest.mark.parametrize(
    ("name", "mode", "args", "message"),
    [
        (
            "lws-xen01",
            "service-down",
            ["8080"],
            "lws-xen01 serves no port 8080; it serves: 25, 443, 873, 3306, 3690 and ssh\n",
        ),
        ("lws-xen01", "service-down", [], "service-down needs PORT, ssh or all\n"),
        ("lws-xen01", "service-down", ["http"], "not a port: 'http' (use a port number, ssh or all)\n"),
        (
            "lws-xen01",
            "down",
            [],
            "unknown fault 'down' for VM lws-xen01; use one of: service-down PORT|ssh|all, service-up, rekey\n",
        ),
        ("xenka01", "service-down", ["25"], "xenka01 is a lab host, not a VM; service faults are for VMs\n"),
    ],
)
def test_lab_fault_refuses_what_a_vm_does_not_have(lab_dir: Path, name, mode, args, message) -> None:
    assert cli.lab_fault(lab_dir, name, mode, args) == (2, message)


def test_lab_status_lists_each_vms_services_and_where_it_runs(lab_dir: Path) -> None:
    assert cli.lab_fault(lab_dir, "tomcat-xen01", "service-down", ["8081"])[0] == 0
    code, text = cli.lab_status(lab_dir)
    assert code == 0
    assert "up: http 80, tcp 445, tcp 3306, ssh; down: http 8081  [running on xenka01]" in text
    code, text = cli.dispatch(
        {"lab_dir": str(lab_dir), "action": "fingerprints", "as_json": True, "vms": True}
    )
    assert code == 0 and "tomcat-xen01" in text and "xenka01" not in text


def test_several_hosts_take_one_fault_in_one_change_of_the_state_or_none_do(lab_dir: Path) -> None:
    store = LabStore(lab_dir)
    revision = store.read()["revision"]
    code, text = cli.dispatch(_parse("--lab-dir", str(lab_dir), "fault", "xenwsl01,eva-wsl", "down"))
    assert (code, text) == (0, "xenwsl01: down\neva-wsl: down\n")
    faults = store.read()["faults"]
    assert (faults["xenwsl01"]["mode"], faults["eva-wsl"]["mode"], faults["xenka01"]["mode"]) == (
        "down",
        "down",
        "up",
    )
    assert store.read()["revision"] == revision + 1  # one write for both
    # One refused host refuses them all: nothing is half-written.
    before = store.read()
    assert cli.lab_fault(lab_dir, ["xenka01", "eva-ka"], "crash", []) == (
        2,
        "eva-ka is an array, not a dom0; crash is for dom0s (use down)\n",
    )
    assert cli.lab_fault(lab_dir, ["xenka01", "xenfoo01"], "hang", [])[0] == 2
    assert store.read() == before
    assert cli.lab_fault(lab_dir, [], "down", []) == (2, "fault needs a HOST\n")
