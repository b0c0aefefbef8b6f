"""Unreachable and silent hosts, played by plain sockets on loopback: fail fast, name the host."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hosts.drivers.ssh import SSHConnectError, SSHConnection, SSHTarget, SSHTimeout, fetch_host_key
from tests.ssh.conftest import loopback_server

PIN = "SHA256:" + "A" * 43


def target_at(port: int, key: Path, timeout: float = 1.0) -> SSHTarget:
    return SSHTarget(
        name="xenka01",
        address="127.0.0.1",
        port=port,
        user="root",
        key_path=str(key),
        fingerprint=PIN,
        connect_timeout=timeout,
    )


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts TCP connections (the kernel completes them) and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.fixture
def rude_port() -> Iterator[int]:
    """Accepts, answers with something that is not SSH, and hangs up."""

    def answer(client: socket.socket) -> None:
        with client:
            client.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    with loopback_server(answer) as port:
        yield port


def test_it_fails_fast_when_nothing_listens(unused_key: Path, unused_port: int) -> None:
    port = unused_port
    started = time.monotonic()

    with pytest.raises(SSHConnectError) as caught:
        SSHConnection(target_at(port, unused_key, timeout=5.0)).run(["true"])

    assert time.monotonic() - started < 0.5
    assert str(caught.value) == f"cannot connect to xenka01 (127.0.0.1:{port}): Connection refused"


def test_it_times_out_when_the_host_never_sends_a_banner(unused_key: Path, silent_port: int) -> None:
    started = time.monotonic()

    with pytest.raises(SSHTimeout) as caught:
        SSHConnection(target_at(silent_port, unused_key, timeout=1.0)).run(["true"])

    assert 1.0 <= time.monotonic() - started < 1.5
    assert str(caught.value).startswith(
        f"timed out after 1.0 s connecting to xenka01 (127.0.0.1:{silent_port})"
    )


def test_enrollment_times_out_on_a_silent_host_too(silent_port: int) -> None:
    started = time.monotonic()

    with pytest.raises(SSHTimeout, match=r"timed out after 0\.5 s connecting to 127\.0\.0\.1"):
        fetch_host_key("127.0.0.1", silent_port, timeout=0.5)

    assert time.monotonic() - started < 1.0


def test_it_reports_a_host_that_does_not_speak_ssh(unused_key: Path, rude_port: int) -> None:
    started = time.monotonic()

    with pytest.raises(SSHConnectError, match=r"cannot connect to xenka01 \(127.0.0.1:\d+\): SSH handshake"):
        SSHConnection(target_at(rude_port, unused_key, timeout=5.0)).run(["true"])

    assert time.monotonic() - started < 1.0
