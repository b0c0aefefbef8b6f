"""Fixtures for the lab: a tmp lab directory and a LabServer in this process on a free port.

No database, no Django: the lab is plain Python behind SSH.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:  # plain `pytest -p no:django` does not put the project on sys.path
    sys.path.insert(0, str(_REPO))

import paramiko  # noqa: E402

from hosts.lab import cli  # noqa: E402
from hosts.lab.keys import client_key_path, ensure_keys, fingerprint_of, fingerprints  # noqa: E402
from hosts.lab.seed import seed_reference  # noqa: E402
from hosts.lab.server import LabServer, start_lab_in_thread  # noqa: E402
from hosts.lab.store import LabStore  # noqa: E402
from tests.lab.xen_states import ka_state, xm_state  # noqa: E402,F401 (fixtures)


class PinnedHostKey(paramiko.MissingHostKeyPolicy):
    """Accept exactly one host key, by fingerprint, like the portal's SSH driver does."""

    def __init__(self, expected: str) -> None:
        self.expected = expected

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        actual = fingerprint_of(key)
        if actual != self.expected:
            raise paramiko.SSHException(f"host key mismatch for {hostname}: {actual} != {self.expected}")


class Lab:
    def __init__(self, lab_dir: Path, port: int = 0) -> None:
        self.lab_dir = lab_dir
        self.store = LabStore(lab_dir)
        self.server: LabServer | None = None
        self._port = port  # of a lab served elsewhere (a subprocess)

    def start(self) -> Lab:
        self.server = start_lab_in_thread(self.lab_dir, 0)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def port(self) -> int:
        return self.server.port if self.server is not None else self._port

    def address(self, host: str) -> str:
        return self.store.read()["hosts"][host]["address"]

    def connect(self, host: str, *, pin: str | None = None, timeout: float = 5.0) -> paramiko.SSHClient:
        return self.connect_to(self.address(host), pin or fingerprints(self.lab_dir)[host], timeout=timeout)

    def connect_to(self, address: str, pin: str, *, timeout: float = 5.0) -> paramiko.SSHClient:
        """An SSH client of ``address`` (a dom0, a VM, a drill clone) pinned to ``pin``."""
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(PinnedHostKey(pin))
        client.connect(
            address,
            port=self.port,
            username="root",
            key_filename=str(client_key_path(self.lab_dir)),
            look_for_keys=False,
            allow_agent=False,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
        return client

    def run(self, host: str, command: str, *, timeout: float = 10.0) -> tuple[int, str, str]:
        client = self.connect(host)
        try:
            return exec_on(client, command, timeout=timeout)
        finally:
            client.close()

    def fault(self, host: str, mode: str, *args: str) -> str:
        code, text = cli.lab_fault(self.lab_dir, host, mode, list(args))
        assert code == 0, text
        return text


def exec_on(client: paramiko.SSHClient, command: str, *, timeout: float = 10.0) -> tuple[int, str, str]:
    _stdin, stdout, stderr = client.exec_command(command, timeout=timeout)
    out, err = stdout.read().decode(), stderr.read().decode()
    return stdout.channel.recv_exit_status(), out, err


@pytest.fixture
def lab_dir(tmp_path: Path) -> Path:
    path = tmp_path / "lab"
    seed_reference(LabStore(path))
    ensure_keys(path)
    return path


@pytest.fixture
def lab(lab_dir: Path) -> Iterator[Lab]:
    handle = Lab(lab_dir).start()
    try:
        yield handle
    finally:
        handle.stop()
