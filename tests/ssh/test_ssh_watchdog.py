"""A command the server never takes times out: one watchdog thread closes its channel."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from hosts.drivers.ssh import SSHConnection, SSHTarget, SSHTimeout, _Watchdog, fingerprint
from tests.ssh.conftest import loopback_server


class _Swallows(paramiko.ServerInterface):
    """Logs anyone in with a key, opens sessions, and never answers an exec request
    while ``held`` is clear (``true`` and any other command run once it is set)."""

    def __init__(self, held: threading.Event) -> None:
        self.held = held

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        if command != b"true":
            self.held.wait(30)  # paramiko's transport thread: no reply goes out meanwhile
        threading.Thread(target=self._finish, args=(channel,), daemon=True).start()
        return True

    @staticmethod
    def _finish(channel: paramiko.Channel) -> None:
        time.sleep(0.05)
        channel.send_exit_status(0)
        channel.close()


@pytest.fixture
def swallowing_server(unused_key: Path) -> Iterator[tuple[SSHTarget, threading.Event]]:
    host_key = paramiko.RSAKey.generate(2048)
    held = threading.Event()
    transports: list[paramiko.Transport] = []

    def serve(client: socket.socket) -> None:
        transport = paramiko.Transport(client)
        transport.add_server_key(host_key)
        transport.start_server(server=_Swallows(held))
        transports.append(transport)

    with loopback_server(serve) as port:
        target = SSHTarget(
            name="xenka01",
            address="127.0.0.1",
            port=port,
            user="root",
            key_path=str(unused_key),
            fingerprint=fingerprint(host_key),
            command_timeout=0.5,
        )
        yield target, held
        held.set()
    for transport in transports:
        transport.close()


def test_a_command_the_server_never_takes_times_out_and_the_connection_serves_the_next(
    swallowing_server: tuple[SSHTarget, threading.Event],
) -> None:
    target, held = swallowing_server
    with SSHConnection(target) as conn:
        started = time.monotonic()
        with pytest.raises(SSHTimeout, match=r"command on xenka01 timed out after 0.5 s: sleep 1"):
            conn.run(["sleep", "1"])
        assert 0.5 <= time.monotonic() - started < 2.0

        held.set()  # the server comes back to life: the same connection runs the next command
        assert conn.run(["true"], timeout=5).exit_status == 0


class _Channel:
    def __init__(self) -> None:
        self.closed_at: float | None = None

    def close(self) -> None:
        self.closed_at = time.monotonic()


def test_the_watchdog_closes_only_channels_past_their_deadline_earliest_first() -> None:
    watchdog = _Watchdog()
    now = time.monotonic()
    late, soon, kept = _Channel(), _Channel(), _Channel()
    late_watch = watchdog.arm(now + 0.3, late)  # type: ignore[arg-type]
    soon_watch = watchdog.arm(now + 0.1, soon)  # type: ignore[arg-type]  # earlier: wakes the thread
    kept_watch = watchdog.arm(now + 0.2, kept)  # type: ignore[arg-type]
    watchdog.disarm(kept_watch)

    assert late_watch.fired.wait(5) and soon_watch.fired.wait(5)
    watchdog.disarm(late_watch)  # a fired watch: returns once its close has returned
    assert soon.closed_at is not None and late.closed_at is not None
    assert now + 0.1 <= soon.closed_at < late.closed_at
    assert late.closed_at >= now + 0.3
    assert kept.closed_at is None and not kept_watch.fired.is_set()
