"""The drivers, enrollment and discovery against the lab over real SSH (no mocks).

``lab`` is a LabServer in a thread of this process, on a free port, serving a fresh lab
directory seeded with the reference estate. Its hosts listen on their own loopback
addresses (127.0.1.1 xenwsl01, 127.0.1.2 eva-wsl, 127.0.2.1 xenka01, 127.0.2.2 eva-ka).
``lab_estate`` loads the reference estate into the test database pointing at that lab.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hosts.drivers.ssh import SSHConnection, SSHTarget
from hosts.lab import cli
from hosts.lab.journal import read_journal
from hosts.lab.keys import client_key_path, ensure_keys, fingerprints
from hosts.lab.seed import seed_reference
from hosts.lab.server import LabServer, start_lab_in_thread
from hosts.lab.store import LabStore

# Short enough that a test which hits one fails fast, long enough for a loaded 2-core CI box.
CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 10.0


class LabHandle:
    """One running lab and what the tests need to reach and break it."""

    def __init__(self, lab_dir: Path) -> None:
        self.lab_dir = lab_dir
        self.store = LabStore(lab_dir)
        self.server: LabServer | None = None

    def start(self) -> LabHandle:
        self.server = start_lab_in_thread(self.lab_dir, 0)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def port(self) -> int:
        assert self.server is not None, "the lab is not running"
        return self.server.port

    @property
    def key_path(self) -> Path:
        """The portal's client key the lab accepts (keys/id_drportal)."""
        return client_key_path(self.lab_dir)

    @property
    def fingerprints(self) -> dict[str, str]:
        """{host: "SHA256:..."} as the lab's host keys are now (a rekey changes them)."""
        return fingerprints(self.lab_dir)

    def address(self, host: str) -> str:
        return self.store.read()["hosts"][host]["address"]

    def target(self, host: str, **changes: object) -> SSHTarget:
        """An SSH target for ``host``, pinned to its current host key."""
        fields: dict = {
            "name": host,
            "address": self.address(host),
            "port": self.port,
            "user": "root",
            "key_path": str(self.key_path),
            "fingerprint": self.fingerprints[host],
            "connect_timeout": CONNECT_TIMEOUT,
            "command_timeout": COMMAND_TIMEOUT,
        }
        fields.update(changes)
        return SSHTarget(**fields)

    def connect(self, host: str, **changes: object) -> SSHConnection:
        """A connected SSHConnection (close it, or use it as a context manager)."""
        conn = SSHConnection(self.target(host, **changes))
        conn.connect()
        return conn

    def fault(self, host: str, mode: str, *args: str) -> str:
        """``manage.py lab fault HOST MODE ARGS`` (the same code). ``up`` also waits until
        the host accepts connections again, so the next test step does not race the lab's
        supervisor reopening its listening socket."""
        code, text = cli.lab_fault(self.lab_dir, host, mode, list(args))
        assert code == 0, text
        if mode == "up":
            self.wait_listening(host)
        return text

    def wait_listening(self, host: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((self.address(host), self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextmanager
    def state(self) -> Iterator[dict]:
        """``with lab.state() as state:`` change the lab state (schema: hosts/lab/tools/base.py)."""
        with self.store.transaction() as state:
            yield state

    def host_state(self, host: str) -> dict:
        return self.store.read()["hosts"][host]

    def journal(self, since: int = 0, host: str | None = None) -> list[dict]:
        """Journal entries after seq ``since`` (oldest first), optionally of one host."""
        entries = read_journal(self.lab_dir, since_seq=since)
        return [entry for entry in entries if host is None or entry["host"] == host]

    def last_seq(self) -> int:
        entries = read_journal(self.lab_dir)
        return entries[-1]["seq"] if entries else 0


def make_lab_dir(path: Path) -> Path:
    seed_reference(LabStore(path))
    ensure_keys(path)
    return path


@contextmanager
def running_lab(lab_dir: Path) -> Iterator[LabHandle]:
    handle = LabHandle(make_lab_dir(lab_dir)).start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabHandle]:
    with running_lab(tmp_path / "lab") as handle:
        yield handle


@pytest.fixture(scope="module")
def shared_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    """One lab for a whole module (property tests run their body many times)."""
    with running_lab(tmp_path_factory.mktemp("lab")) as handle:
        yield handle


@pytest.fixture
def lab_estate(db, lab: LabHandle, settings) -> LabHandle:
    """The reference estate in the database, every host and array pointing at ``lab``
    (its port, its client key, its host keys pinned)."""
    from hosts.services import estate_load_reference

    settings.DRPORTAL_SSH_KEY = lab.key_path  # arrays have no key of their own in the inventory
    settings.DRPORTAL_SSH_CONNECT_TIMEOUT = CONNECT_TIMEOUT
    settings.DRPORTAL_SSH_COMMAND_TIMEOUT = COMMAND_TIMEOUT
    estate_load_reference(ssh_port=lab.port, ssh_key_path=str(lab.key_path), fingerprints=lab.fingerprints)
    return lab
