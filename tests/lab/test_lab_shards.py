"""A lab served from several processes (hosts/lab/sshd.py's Shard): every host answers,
the shards share one state without losing each other's writes, and a dead shard stops
the lab rather than leaving half the estate looking down."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hosts.lab import vm_services
from hosts.lab.keys import fingerprint_of, load_host_key
from hosts.lab.server import main as serve
from hosts.lab.server import spawn_lab_process
from hosts.lab.sshd import Shard

from .conftest import Lab


def children_of(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture
def two_shards(lab_dir: Path):
    proc, port = spawn_lab_process(lab_dir, 0, shards=2)
    try:
        yield proc, Lab(lab_dir, port)
    finally:
        proc.terminate()
        proc.wait(15)


def test_two_shards_split_the_reference_estate_between_them() -> None:
    # The specs below lean on this: both shards serve a dom0, an array and a VM.
    from hosts.lab.seed import reference_state

    state = reference_state()
    names = [*state["hosts"], *vm_services.ssh_endpoints(state)]
    for index in (0, 1):
        mine = [name for name in names if name in Shard(index, 2)]
        assert {state["hosts"].get(name, {}).get("kind", "vm") for name in mine} == {"dom0", "array", "vm"}


def test_a_lab_of_two_shards_answers_on_every_host_and_every_running_vm(two_shards) -> None:
    proc, lab = two_shards
    assert len(children_of(proc.pid)) == 1, "shard 1/2 runs as the lab's child process"
    state = lab.store.read()
    for host, info in state["hosts"].items():
        if info["kind"] == "dom0":
            assert lab.run(host, "hostname") == (0, f"{host}\n", ""), host
    for vm in vm_services.ssh_endpoints(state):
        # A VM's SSH: its own address and host key, served by its own shard.
        address = vm_services.specs(state)[vm]["address"]
        client = lab.connect_to(address, fingerprint_of(load_host_key(lab.lab_dir, vm)))
        try:
            _stdin, stdout, _stderr = client.exec_command("hostname", timeout=10)
            assert stdout.read().decode().strip() == vm
        finally:
            client.close()


def test_writes_through_both_shards_in_turn_all_land_in_the_one_state(two_shards) -> None:
    _proc, lab = two_shards
    # xenwsl01 is served by shard 0 (the lab's own process), xenka01 by shard 1.
    assert "xenwsl01" in Shard(0, 2) and "xenka01" in Shard(1, 2)
    for size in (480, 448, 400):
        for host, domain in (("xenwsl01", "dns-xen01"), ("xenka01", "lws-xen01")):
            status, _out, err = lab.run(host, f"xl mem-set {domain} {size}m")
            assert status == 0, err
    state = lab.store.read()
    memory = {
        dom["name"]: dom["memory_mb"]
        for host in ("xenwsl01", "xenka01")
        for dom in state["hosts"][host]["domains"]
    }
    assert memory["dns-xen01"] == 400 and memory["lws-xen01"] == 400
    # Each shard reads what others wrote: a change made outside both (this process) to a
    # domain of each host is what that host's shard reports next.
    with lab.store.transaction() as state:
        for host, domain in (("xenwsl01", "dns-xen01"), ("xenka01", "lws-xen01")):
            next(d for d in state["hosts"][host]["domains"] if d["name"] == domain)["memory_mb"] = 384
    assert " 384 " in lab.run("xenwsl01", "xl list dns-xen01")[1]
    assert " 384 " in lab.run("xenka01", "xl list lws-xen01")[1]


def test_a_shard_serves_only_its_own_hosts(lab_dir: Path) -> None:
    proc, port = spawn_lab_process(lab_dir, 0, shard=Shard(1, 2))
    try:
        lab = Lab(lab_dir, port)
        assert lab.run("xenka01", "hostname") == (0, "xenka01\n", "")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((lab.address("xenwsl01"), port), timeout=5).close()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_a_shard_that_dies_stops_the_whole_lab_and_says_which(lab_dir: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hosts.lab.server", "--lab-dir", str(lab_dir), "--port", "0", "--shards", "2"],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "shards=2" in proc.stdout.readline()
        (child,) = children_of(proc.pid)
        os.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.returncode == 1
        assert f"shard 1/2 (pid {child}) exited with status -9" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--shard", "2/2"], "--shard: shard 2/2: the index must be 0 to 1"),
        (["--shard", "one"], "--shard: shard 'one': expected I/N"),
        (["--shards", "0"], "--shards: must be 1 or more"),
        (["--shards", "2", "--host", "xenka01"], "--host, --shard and --shards exclude each other"),
    ],
)
def test_bad_shard_options_are_refused_naming_the_option(
    lab_dir: Path, argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        serve(["--lab-dir", str(lab_dir), "--port", "0", *argv])
    assert exit_info.value.code == 2
    assert says in capsys.readouterr().err
