"""A real OpenSSH server on loopback for the SSH layer's tests (Debian package openssh-server)."""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from hosts.drivers.ssh import SSHConnection, SSHTarget

SSHD = Path("/usr/sbin/sshd")
CLIENT_KEY_TYPES = ("ed25519", "ecdsa", "rsa")


@dataclass(frozen=True)
class Sshd:
    address: str
    port: int
    user: str
    workdir: Path
    host_key_pub: Path
    fingerprint: str  # as ssh-keygen prints it, so the tests do not trust our own code
    client_keys: dict[str, Path]  # key type -> private key file, all authorized
    stranger_key: Path  # a valid key that is not authorized

    @staticmethod
    def keygen_fingerprint(pub: Path) -> str:
        return ssh_keygen_fingerprint(pub)

    def target(self, **changes: object) -> SSHTarget:
        fields: dict = {
            "name": "xenka01",
            "address": self.address,
            "port": self.port,
            "user": self.user,
            "key_path": str(self.client_keys["ed25519"]),
            "fingerprint": self.fingerprint,
            "connect_timeout": 5.0,
            "command_timeout": 10.0,
        }
        fields.update(changes)
        return SSHTarget(**fields)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def loopback_server(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A listener on 127.0.0.1 and a free port (yielded) that hands every client it accepts
    to ``handle``, in one thread, until the block ends."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: the block has ended
            handle(client)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def keygen(path: Path, key_type: str) -> Path:
    bits = ["-b", "2048"] if key_type == "rsa" else []
    subprocess.run(
        ["ssh-keygen", "-q", "-t", key_type, *bits, "-N", "", "-C", f"drportal-test-{key_type}", "-f", path],
        check=True,
    )
    return path


def ssh_keygen_fingerprint(pub: Path) -> str:
    # "256 SHA256:abc... comment (ED25519)"
    out = subprocess.run(["ssh-keygen", "-lf", pub], check=True, capture_output=True, text=True).stdout
    return out.split()[1]


def _wait_for_banner(port: int, proc: subprocess.Popen, log: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"sshd did not answer on port {port} within {timeout} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if not SSHD.exists():
        reason = f"{SSHD} not found: install the Debian package openssh-server"
        if _in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    if shutil.which("ssh-keygen") is None:
        pytest.fail("ssh-keygen not found: install the Debian package openssh-client")

    workdir = tmp_path_factory.mktemp("sshd")
    host_key = keygen(workdir / "ssh_host_ed25519_key", "ed25519")
    client_keys = {kt: keygen(workdir / f"client_{kt}", kt) for kt in CLIENT_KEY_TYPES}
    stranger = keygen(workdir / "stranger_ed25519", "ed25519")
    authorized = workdir / "authorized_keys"
    authorized.write_text("".join(Path(f"{key}.pub").read_text() for key in client_keys.values()))

    with run_sshd(workdir, host_key, authorized) as port:
        yield Sshd(
            address="127.0.0.1",
            port=port,
            user=getpass.getuser(),
            workdir=workdir,
            host_key_pub=Path(f"{host_key}.pub"),
            fingerprint=ssh_keygen_fingerprint(Path(f"{host_key}.pub")),
            client_keys=client_keys,
            stranger_key=stranger,
        )


@pytest.fixture
def unused_port() -> int:
    """A loopback port where nothing listens (connecting is refused)."""
    return free_port()


@pytest.fixture(scope="session")
def unused_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A client key for tests that never get as far as authenticating (no ssh-keygen needed)."""
    key = Ed25519PrivateKey.generate()
    path = tmp_path_factory.mktemp("keys") / "id_ed25519"
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()))
    path.chmod(0o600)
    return path


@pytest.fixture
def target(sshd: Sshd) -> SSHTarget:
    return sshd.target()


@pytest.fixture
def conn(target: SSHTarget) -> Iterator[SSHConnection]:
    with SSHConnection(target) as connection:
        yield connection


@contextlib.contextmanager
def run_sshd(workdir: Path, host_key: Path, authorized: Path, extra_config: str = "") -> Iterator[int]:
    """Debian's sshd in the foreground on 127.0.0.1 and a free port (yielded), key auth
    only, with ``extra_config`` appended; stopped on exit."""
    port = free_port()
    config = workdir / "sshd_config"
    config.write_text(
        f"""\
ListenAddress 127.0.0.1
Port {port}
HostKey {host_key}
PidFile {workdir / "sshd.pid"}
AuthorizedKeysFile {authorized}
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
PrintMotd no
# SHLVL=1 makes the session's bash a nested shell, so it skips ~/.bashrc: Debian's bash
# sources it for any command sshd runs, and this machine's root .bashrc runs `pyenv init`
# (0.5 s per command). The estate's shell start-up files are not what these tests test.
SetEnv SHLVL=1
LogLevel VERBOSE
{extra_config}"""
    )
    if os.geteuid() == 0:
        # sshd's privilege separation needs it; Debian's service unit normally creates it.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = workdir / "sshd.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", config],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_for_banner(port, proc, log)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
