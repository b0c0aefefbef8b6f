"""Reaching a host is tried again when it fails before the command is sent, never after.

The test's sshd stands behind a door (tests/ssh/door.py): a real TCP proxy that refuses,
resets or never answers the first connections, then lets the rest through."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hosts.drivers.ssh import (
    ConnectRetry,
    HostKeyMismatch,
    HostKeyNotPinned,
    SSHAuthError,
    SSHConnectError,
    SSHConnection,
    SSHTarget,
    SSHTimeout,
)
from tests.ssh.door import Door

PIN_OF_ANOTHER_HOST = "SHA256:" + "A" * 43


@pytest.fixture
def door(sshd) -> Iterator[Door]:
    with Door(upstream=(sshd.address, sshd.port)) as door:
        yield door


def behind(sshd, door: Door, **changes: object) -> SSHTarget:
    return sshd.target(**{"port": door.port, "connect_attempts": 3, "connect_timeout": 1.0, **changes})


@pytest.mark.parametrize("how", ["reset", "close", "silent"])
def test_a_command_runs_after_its_first_connection_is_reset_closed_or_never_answered(sshd, door, how) -> None:
    door.misbehave(how)
    retries: list[ConnectRetry] = []

    with SSHConnection(behind(sshd, door)) as conn:
        result = conn.run(["echo", "hello"], on_retry=retries.append)

    assert (result.exit_status, result.stdout) == (0, "hello\n")
    assert door.connections == 2
    assert [r.attempt for r in retries] == [1]
    assert 0.25 <= retries[0].delay <= 0.5
    assert "attempt 1 of 3 failed" in str(retries[0])
    assert isinstance(retries[0].error, SSHTimeout if how == "silent" else SSHConnectError)


def test_a_refused_connection_is_tried_again(sshd, door) -> None:
    door.closed()  # nothing listens: the kernel refuses
    retries: list[ConnectRetry] = []

    def open_the_door(retry: ConnectRetry) -> None:
        retries.append(retry)
        door.opened()

    with SSHConnection(behind(sshd, door)) as conn:
        assert conn.run(["true"], on_retry=open_the_door).exit_status == 0

    assert "Connection refused" in str(retries[0].error)
    assert door.connections == 1  # the one the open door let through


def test_connecting_for_a_pool_is_tried_again_too(sshd, door) -> None:
    door.misbehave("reset")
    retries: list[ConnectRetry] = []

    with SSHConnection(behind(sshd, door)) as conn:
        conn.connect(on_retry=retries.append)
        assert conn.is_connected

    assert len(retries) == 1


def test_it_gives_up_after_the_attempts_and_says_how_many(sshd, door) -> None:
    door.misbehave("reset", times=10)
    retries: list[ConnectRetry] = []

    with pytest.raises(SSHConnectError) as caught, SSHConnection(behind(sshd, door)) as conn:
        conn.run(["true"], on_retry=retries.append)

    assert door.connections == 3
    assert str(caught.value).endswith("(after 3 attempts)")
    assert [r.attempt for r in retries] == [1, 2]
    assert 0.5 <= retries[1].delay <= 1.0  # doubled


def test_one_attempt_is_the_default_and_its_error_reads_as_before(sshd, door) -> None:
    door.misbehave("reset")

    with pytest.raises(SSHConnectError) as caught, SSHConnection(sshd.target(port=door.port)) as conn:
        conn.run(["true"])

    assert door.connections == 1
    assert "attempts" not in str(caught.value)


def test_no_attempt_is_made_that_the_commands_own_limit_cannot_wait_for(sshd, door) -> None:
    door.misbehave("silent", times=10)
    target = behind(sshd, door, connect_attempts=5)
    started = time.monotonic()

    with pytest.raises(SSHTimeout) as caught, SSHConnection(target) as conn:
        conn.run(["true"], timeout=2.5)

    # 1 s, a wait of 0.25-0.5 s, 1 s: a third attempt would end after the 2.5 s.
    assert door.connections == 2
    assert time.monotonic() - started < 2.5 + 0.3
    assert str(caught.value).endswith("(after 2 attempts)")


def test_a_command_whose_connection_breaks_while_it_runs_is_not_sent_again(
    sshd, door, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    retries: list[ConnectRetry] = []

    with SSHConnection(behind(sshd, door)) as conn:
        conn.run(["true"])  # connected: the next command starts on this transport

        def cut_soon() -> None:
            time.sleep(0.5)
            door.cut()

        threading.Thread(target=cut_soon, daemon=True).start()
        with pytest.raises(SSHConnectError, match="lost while running"):
            conn.run(["sh", "-c", f"echo once >> {ran}; sleep 3"], on_retry=retries.append)

    assert ran.read_text() == "once\n"
    assert retries == []
    assert door.connections == 1


def test_a_host_key_mismatch_is_not_tried_again(sshd, door) -> None:
    with (
        pytest.raises(HostKeyMismatch),
        SSHConnection(behind(sshd, door, fingerprint=PIN_OF_ANOTHER_HOST)) as conn,
    ):
        conn.run(["true"])

    assert door.connections == 1


def test_a_refused_key_is_not_tried_again(sshd, door) -> None:
    with (
        pytest.raises(SSHAuthError),
        SSHConnection(behind(sshd, door, key_path=str(sshd.stranger_key))) as conn,
    ):
        conn.run(["true"])

    assert door.connections == 1


def test_an_unpinned_host_is_not_even_tried(sshd, door) -> None:
    with pytest.raises(HostKeyNotPinned), SSHConnection(behind(sshd, door, fingerprint=None)) as conn:
        conn.run(["true"])

    assert door.connections == 0


def test_a_session_that_does_not_open_in_time_is_opened_on_a_fresh_transport_and_its_neighbour_finishes(
    sshd, door
) -> None:
    retries: list[ConnectRetry] = []
    with SSHConnection(behind(sshd, door)) as conn:
        conn.run(["true"])
        first = conn.transport
        neighbour: dict = {}

        def run_the_neighbour() -> None:
            neighbour["result"] = conn.run(["sh", "-c", "sleep 3; echo done"])

        thread = threading.Thread(target=run_the_neighbour)
        thread.start()
        time.sleep(0.3)  # its command is sent
        door.stall(2.0)  # nothing more the client sends reaches the server for 2 s

        result = conn.run(["echo", "hello"], on_retry=retries.append)

        assert result.stdout == "hello\n"
        assert [str(r.error) for r in retries] == [f"timed out opening a session on {conn.target.where}"]
        assert conn.transport is not first and first.is_active()  # given up, not torn down
        thread.join(5)
        assert neighbour["result"].stdout == "done\n"
        assert not first.is_active()  # closed once its last command finished
    assert door.connections == 2
