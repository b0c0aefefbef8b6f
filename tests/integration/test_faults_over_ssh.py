"""Each fault the lab injects gives its own clear error, within its timeout, over real SSH."""

from __future__ import annotations

import re
import time

import pytest

from hosts.drivers.ssh import HostKeyMismatch, SSHConnectError, SSHConnection, SSHTimeout
from hosts.drivers.xen import XenDriver, XenError

from .conftest import LabHandle

SLACK = 1.5  # scheduling on a loaded 2-core box; the timeouts themselves are what is tested


def xen_on(conn: SSHConnection) -> XenDriver:
    return XenDriver(conn, "xl", timeout=10)


def test_a_host_that_is_down_refuses_the_connection_within_the_connect_timeout(lab: LabHandle) -> None:
    lab.fault("xenka01", "down")
    target = lab.target("xenka01", connect_timeout=2.0)

    started = time.monotonic()
    with pytest.raises(SSHConnectError, match=r"xenka01 \(127\.0\.2\.1:\d+\)"), SSHConnection(target) as conn:
        conn.run(["xl", "list"])
    assert time.monotonic() - started < 2.0 + SLACK

    lab.fault("xenka01", "up")
    with SSHConnection(target) as conn:
        assert conn.run(["true"]).ok


def test_a_host_that_hangs_times_out_within_the_connect_timeout(lab: LabHandle) -> None:
    lab.fault("xenka01", "hang")
    target = lab.target("xenka01", connect_timeout=1.0)

    started = time.monotonic()
    with (
        pytest.raises(SSHTimeout, match=r"timed out after 1\.0 s connecting to xenka01 .*no SSH handshake"),
        SSHConnection(target) as conn,
    ):
        conn.run(["xl", "list"])
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 1.0 + SLACK

    lab.fault("xenka01", "up")
    with SSHConnection(target) as conn:
        assert conn.run(["true"]).ok


def test_a_slow_host_answers_late_and_a_shorter_command_timeout_gives_up(lab: LabHandle) -> None:
    lab.fault("xenka01", "slow", "1")
    with lab.connect("xenka01") as conn:
        started = time.monotonic()
        result = conn.run(["xl", "list"])
        assert result.ok
        assert time.monotonic() - started >= 1.0
        assert result.seconds >= 1.0

        started = time.monotonic()
        with pytest.raises(SSHTimeout, match=r"command on xenka01 timed out after 0\.5 s: xl list") as late:
            conn.run(["xl", "list"], timeout=0.5)
        assert 0.5 <= time.monotonic() - started < 0.5 + SLACK
        assert late.value.result is not None and late.value.result.exit_status == -1

    lab.fault("xenka01", "up")
    with lab.connect("xenka01") as conn:
        started = time.monotonic()
        assert conn.run(["xl", "list"]).ok
        assert time.monotonic() - started < 1.0


def test_fail_next_fails_exactly_one_command_with_the_injected_message(lab: LabHandle) -> None:
    lab.fault("xenka01", "fail-next", "libxl: error: injected by the lab")
    with lab.connect("xenka01") as conn:
        xen = xen_on(conn)
        with pytest.raises(XenError) as failed:
            xen.list_domains()
        assert str(failed.value) == "libxl: error: injected by the lab"

        assert xen.list_domains()[0].name == "Domain-0"
    assert [e["notes"] for e in lab.journal(host="xenka01")][-2:] == [["fail-next injected"], []]


def test_a_changed_host_key_is_refused_before_any_command_is_sent(lab: LabHandle) -> None:
    pinned = lab.target("xenka01")
    since = lab.last_seq()

    lab.fault("xenka01", "rekey")
    new = lab.fingerprints["xenka01"]
    assert new != pinned.fingerprint

    with pytest.raises(HostKeyMismatch) as mismatch, SSHConnection(pinned) as conn:
        conn.run(["xl", "list"])
    assert str(mismatch.value) == f"host key mismatch for xenka01: expected {pinned.fingerprint}, got {new}"
    assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", new)
    assert lab.journal(since) == []  # not a single command left this machine

    # A person re-pins the new key (enroll_host); the host is reachable again.
    with SSHConnection(lab.target("xenka01")) as conn:
        assert conn.run(["hostname"]).stdout == "xenka01\n"
    assert [e["command"] for e in lab.journal(since)] == ["hostname"]


def test_a_live_connection_is_cut_when_its_host_goes_down_and_works_after_it_is_up(lab: LabHandle) -> None:
    with lab.connect("xenka01") as conn:
        assert conn.run(["true"]).ok
        lab.fault("xenka01", "down")
        deadline = time.monotonic() + 3
        while conn.is_connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not conn.is_connected
        with pytest.raises(SSHConnectError):
            conn.run(["true"])

        lab.fault("xenka01", "up")
        assert conn.run(["hostname"]).stdout == "xenka01\n"  # a dead transport is replaced
