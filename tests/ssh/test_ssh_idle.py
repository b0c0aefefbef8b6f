"""An idle connection costs nothing: its transport's thread sleeps until a packet, the
server's end or ``close()``, which still ends it at once (against OpenSSH)."""

from __future__ import annotations

import time
from pathlib import Path

from hosts.drivers.ssh import SSHConnection, SSHTarget


def _wakes(native_id: int) -> int:
    """How often the thread has gone to sleep and been woken (voluntary context switches)."""
    for line in Path(f"/proc/self/task/{native_id}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError(f"no context switches in /proc/self/task/{native_id}/status")


def test_an_idle_connections_thread_does_not_wake_and_close_still_ends_it_at_once(target: SSHTarget):
    conn = SSHConnection(target)
    assert conn.run(["true"]).ok
    transport = conn.transport
    assert transport is not None and transport.native_id is not None
    time.sleep(0.3)  # the command's last packets (exit status, EOF, close) are read
    before = _wakes(transport.native_id)
    time.sleep(2.5)  # before it settled, the thread woke every 2 s to look for a stop
    assert _wakes(transport.native_id) == before
    assert conn.run(["echo", "still", "here"]).stdout == "still here\n"

    started = time.monotonic()
    conn.close()
    transport.join(5)
    assert not transport.is_alive() and time.monotonic() - started < 1.0
