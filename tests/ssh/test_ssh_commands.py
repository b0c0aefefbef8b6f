"""Running commands over a real sshd: output, exit codes, timeouts, reconnects, the pool."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hosts.drivers.base import CommandResult
from hosts.drivers.ssh import (
    SSHAuthError,
    SSHConnectError,
    SSHConnection,
    SSHPool,
    SSHTimeout,
    load_private_key,
)
from tests.ssh.conftest import run_sshd


def test_it_runs_echo(conn: SSHConnection) -> None:
    result = conn.run(["echo", "hello", "dom0"])

    assert result == CommandResult(
        host="xenka01",
        argv=("echo", "hello", "dom0"),
        command="echo hello dom0",
        stdout="hello dom0\n",
        stderr="",
        exit_status=0,
        seconds=result.seconds,
    )
    assert result.ok
    assert conn.name == "xenka01"


def test_it_keeps_stdout_stderr_and_a_nonzero_exit_status(conn: SSHConnection) -> None:
    result = conn.run(["sh", "-c", "echo out; echo err >&2; exit 3"])

    assert (result.stdout, result.stderr, result.exit_status) == ("out\n", "err\n", 3)
    assert not result.ok
    assert result.command == "sh -c 'echo out; echo err >&2; exit 3'"


def test_it_reads_a_megabyte_on_each_stream_without_deadlock(conn: SSHConnection) -> None:
    script = (
        "head -c 1048576 /dev/zero | tr '\\0' o & "
        "head -c 1048576 /dev/zero | tr '\\0' e >&2; wait; echo done >&2"
    )

    result = conn.run(["sh", "-c", script], timeout=20)

    assert result.exit_status == 0
    assert result.stdout == "o" * 1048576
    assert result.stderr == "e" * 1048576 + "done\n"


def test_it_replaces_undecodable_bytes(conn: SSHConnection) -> None:
    result = conn.run(["printf", "caf\\303\\251 \\377\\n"])

    assert result.stdout == "café \ufffd\n"


def test_it_times_out_a_hung_command_and_keeps_the_connection(conn: SSHConnection) -> None:
    started = time.monotonic()
    with pytest.raises(SSHTimeout) as caught:
        conn.run(["sleep", "5"], timeout=0.5)
    elapsed = time.monotonic() - started

    assert 0.5 <= elapsed < 3.0  # bounded well below the command's 5 s, with room for a loaded machine
    assert str(caught.value) == "command on xenka01 timed out after 0.5 s: sleep 5"
    assert caught.value.result is not None and caught.value.result.exit_status == -1
    assert conn.run(["echo", "still", "here"]).stdout == "still here\n"


def test_it_uses_the_targets_command_timeout_by_default(sshd) -> None:
    with SSHConnection(sshd.target(command_timeout=0.3)) as conn, pytest.raises(SSHTimeout):
        conn.run(["sleep", "3"])


def test_it_hands_every_result_to_the_hook_including_timeouts(target) -> None:
    seen: list[CommandResult] = []
    with SSHConnection(target, on_result=seen.append) as conn:
        conn.run(["true"])
        conn.run(["false"])
        with pytest.raises(SSHTimeout):
            # 2 s: under load the real sshd may take a while to fork the shell that prints
            conn.run(["sh", "-c", "echo partial; sleep 10"], timeout=2.0)

    assert [(r.argv[0], r.exit_status) for r in seen] == [("true", 0), ("false", 1), ("sh", -1)]
    assert seen[-1].stdout == "partial\n"


def test_it_reconnects_once_when_the_transport_died_between_commands(conn: SSHConnection) -> None:
    conn.run(["true"])
    first = conn.transport
    assert first is not None
    first.close()

    assert conn.run(["echo", "again"]).stdout == "again\n"
    assert conn.transport is not first and conn.is_connected


def test_it_never_reruns_a_command_whose_connection_died(conn: SSHConnection, tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    # Append a line, then kill the nearest sshd ancestor: the process serving this connection.
    script = (
        f"echo ran >> {counter}; p=$PPID; "
        'while [ "$(cat /proc/$p/comm)" != sshd ]; do set -- $(cat /proc/$p/stat); p=$4; done; '
        "kill -9 $p; sleep 5"
    )

    with pytest.raises(SSHConnectError, match="lost while running"):
        conn.run(["sh", "-c", script])

    assert counter.read_text() == "ran\n"
    assert conn.run(["true"]).ok  # and the next command gets a fresh connection


@pytest.mark.parametrize("key_type", ("ed25519", "ecdsa", "rsa"))
def test_it_logs_in_with_each_supported_key_type(sshd, key_type: str) -> None:
    with SSHConnection(sshd.target(key_path=str(sshd.client_keys[key_type]))) as conn:
        assert conn.run(["echo", key_type]).stdout == f"{key_type}\n"


def test_it_refuses_a_key_the_server_does_not_know(sshd) -> None:
    conn = SSHConnection(sshd.target(key_path=str(sshd.stranger_key)))

    with pytest.raises(SSHAuthError, match=r"authentication failed for .*@xenka01"):
        conn.run(["true"])
    assert not conn.is_connected


def test_it_reports_a_missing_key_file_as_an_auth_error(sshd, tmp_path: Path) -> None:
    with pytest.raises(SSHAuthError, match=r"cannot load private key .*nope for xenka01"):
        SSHConnection(sshd.target(key_path=str(tmp_path / "nope"))).connect()


def test_a_key_file_is_parsed_once_until_it_is_replaced(sshd, tmp_path: Path) -> None:
    key_file = tmp_path / "id"
    key_file.write_bytes(Path(sshd.client_keys["ed25519"]).read_bytes())

    first = load_private_key(str(key_file))
    assert load_private_key(str(key_file)) is first  # the same version: not parsed again

    # Rotated in place (as an admin replacing the portal's key would): read again, and the
    # connection logs in with the new key.
    time.sleep(0.01)
    key_file.write_bytes(Path(sshd.client_keys["ecdsa"]).read_bytes())
    rotated = load_private_key(str(key_file))
    assert rotated is not first and rotated.get_name() != first.get_name()
    with SSHConnection(sshd.target(key_path=str(key_file))) as conn:
        assert conn.run(["echo", "rotated"]).stdout == "rotated\n"

    # A file that became unreadable is an error each time, not an old key kept.
    key_file.write_text("not a key")
    with pytest.raises(SSHAuthError, match=r"cannot load private key .*id for xenka01"):
        SSHConnection(sshd.target(key_path=str(key_file))).connect()


def test_the_pool_reuses_one_connection_per_host(sshd) -> None:
    with SSHPool() as pool:
        first = pool.get(sshd.target())
        again = pool.get(sshd.target())
        other = pool.get(sshd.target(name="xenka02"))

        assert again is first and again.transport is first.transport
        assert other is not first and other.transport is not first.transport
        assert first.is_connected and other.is_connected

    assert not first.is_connected and not other.is_connected


def test_the_pool_drops_a_connection_whose_target_changed(sshd) -> None:
    with SSHPool() as pool:
        old = pool.get(sshd.target())
        new = pool.get(sshd.target(key_path=str(sshd.client_keys["ecdsa"])))

        assert new is not old and not old.is_connected and new.is_connected


def test_it_prefers_aes_gcm_so_no_packet_needs_a_separate_mac(conn: SSHConnection) -> None:
    conn.run(["true"])

    assert conn.transport is not None
    assert conn.transport.remote_cipher == conn.transport.local_cipher == "aes128-gcm@openssh.com"


def test_it_still_talks_to_a_server_without_aes_gcm(sshd, tmp_path: Path) -> None:
    host_key = sshd.workdir / "ssh_host_ed25519_key"
    authorized = sshd.workdir / "authorized_keys"
    with (
        run_sshd(tmp_path, host_key, authorized, "Ciphers aes128-ctr\n") as port,
        SSHConnection(sshd.target(port=port)) as ctr,
    ):
        assert ctr.run(["echo", "ok"]).stdout == "ok\n"
        assert ctr.transport is not None and ctr.transport.remote_cipher == "aes128-ctr"
