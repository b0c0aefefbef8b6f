"""Fixtures for functional checks: a lab in this process (its VMs serving their services)
and the reference estate in the database, pinned to the lab's keys.

The VMs' service ports are fixed (443, 25, ...), so each test session moves the VMs to
its own loopback /24 (127.0.N.x): a lab someone runs on 127.0.3.x, or another test run,
cannot answer in our place.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hosts import reference
from hosts.lab import cli
from hosts.lab.keys import client_key_path, ensure_keys, fingerprints
from hosts.lab.seed import seed_reference
from hosts.lab.server import LabServer, start_lab_in_thread
from hosts.lab.store import LabStore
from hosts.lab.vm_services import vm_fingerprints
from hosts.models import VM, FunctionalCheck


class Lab:
    def __init__(self, lab_dir: Path, server: LabServer) -> None:
        self.lab_dir = lab_dir
        self.server = server
        self.store = LabStore(lab_dir)
        self.load_kwargs: dict = {}  # what the estate fixture loaded the reference with

    @property
    def port(self) -> int:
        return self.server.port

    def endpoints(self, vm: str) -> list[tuple[str, int]]:
        """Where ``vm`` serves: each service port, and its SSH."""
        spec = self.store.read()["services"][vm]
        return [(spec["address"], int(e["port"])) for e in spec["ports"]] + [(spec["address"], self.port)]

    def wait_serving(self, vm: str, serving: bool = True, timeout: float = 3.0) -> None:
        """Until every port of ``vm`` (and its SSH) accepts, or until none does."""
        wait_until(
            lambda: all(port_open(*where) == serving for where in self.endpoints(vm)),
            timeout,
            f"{vm} to {'serve' if serving else 'stop serving'} on {self.endpoints(vm)}",
        )

    def fault(self, name: str, mode: str, *args: str) -> str:
        code, text = cli.lab_fault(self.lab_dir, name, mode, list(args))
        assert code == 0, text
        return text


@pytest.fixture
def lab(tmp_path: Path, vm_addresses: dict[str, str]) -> Iterator[Lab]:
    lab_dir = tmp_path / "lab"
    store = LabStore(lab_dir)
    seed_reference(store)
    with store.transaction() as state:
        for vm, address in vm_addresses.items():
            state["services"][vm]["address"] = address
    ensure_keys(lab_dir)
    server = start_lab_in_thread(lab_dir, 0)
    try:
        yield Lab(lab_dir, server)
    finally:
        server.stop()


@pytest.fixture
def estate(db, lab: Lab, vm_addresses: dict[str, str], settings) -> Lab:
    """The reference estate, loaded as the management command does for the lab, but at
    this session's VM addresses; the workers' key is the lab's client key."""
    from hosts.services import estate_load_reference

    key = client_key_path(lab.lab_dir)
    settings.DRPORTAL_SSH_KEY = key
    lab.load_kwargs = {
        "addresses": vm_addresses,
        "ssh_port": lab.port,
        "ssh_key_path": str(key),
        "fingerprints": {**fingerprints(lab.lab_dir), **vm_fingerprints(lab.lab_dir)},
    }
    estate_load_reference(**lab.load_kwargs)
    return lab


@pytest.fixture
def lab_vms(db, lab: Lab, vm_addresses: dict[str, str], settings) -> Lab:
    """The two dom0s, the six VMs and their reference checks, pinned to the lab: a few
    rows, much quicker than the whole estate, for tests that only talk to the lab."""
    from tests.factories import HostFactory, VMFactory

    key = client_key_path(lab.lab_dir)
    settings.DRPORTAL_SSH_KEY = key
    host_prints, vm_prints = fingerprints(lab.lab_dir), vm_fingerprints(lab.lab_dir)
    hosts = {
        h["name"]: HostFactory(
            name=h["name"],
            address=h["address"],
            ssh_port=lab.port,
            ssh_key_path=str(key),
            host_key_fingerprint=host_prints[h["name"]],
        )
        for h in reference.HOSTS
    }
    vms = {
        vm["name"]: VMFactory(
            name=vm["name"],
            home_host=hosts[vm["home"]],
            address=vm_addresses[vm["name"]],
            ssh_port=lab.port,
            host_key_fingerprint=vm_prints[vm["name"]],
        )
        for vm in reference.VMS
    }
    FunctionalCheck.objects.bulk_create(
        FunctionalCheck(**{**check, "vm": vms[check["vm"]]}) for check in reference.functional_checks()
    )
    return lab


@pytest.fixture
def make_check(db) -> Callable[..., FunctionalCheck]:
    """An unsaved check on a VM of the database (load ``lab_vms`` or ``estate`` first):
    ``make_check("lws-xen01", kind="tcp", port=25)``."""

    def make(vm: str, **fields: object) -> FunctionalCheck:
        fields.setdefault("name", "ad hoc")
        fields.setdefault("timeout_s", 3.0)
        return FunctionalCheck(vm=VM.objects.get(name=vm), **fields)

    return make


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False
