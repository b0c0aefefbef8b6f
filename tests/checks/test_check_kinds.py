"""http, tcp and ssh checks against a running lab VM: ok, down or note, never an exception."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from failover.actions.checks import Verdict, run_check, vm_ssh_target
from hosts.drivers.ssh import SSHPool
from hosts.lab.vm_services import tls_paths
from hosts.models import VM

from .conftest import Lab

pytestmark = pytest.mark.usefixtures("lab_vms")


@pytest.fixture
def silent_server() -> Iterator[tuple[str, int]]:
    """Accepts connections and never says a word (a hung service)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


def lws() -> VM:
    return VM.objects.get(name="lws-xen01")


# -- http ---------------------------------------------------------------------------------------


def test_an_https_page_with_verification_off_is_ok_and_says_what_it_found(make_check) -> None:
    verdict = run_check(
        make_check(
            "lws-xen01",
            kind="http",
            url="https://{address}/statusboard/",
            expect_text="Statusboard",
            verify_tls=False,
        )
    )
    assert verdict == Verdict(
        "ok", f"https://{lws().address}/statusboard/: HTTP 200, 'Statusboard' found", verdict.seconds
    )


def test_verifying_the_self_signed_lab_certificate_is_a_note_with_the_reason(make_check) -> None:
    verdict = run_check(
        make_check("lws-xen01", kind="http", url="https://{address}/statusboard/", verify_tls=True)
    )
    assert verdict.outcome == "note"
    assert "TLS certificate not trusted" in verdict.detail
    assert "self-signed certificate" in verdict.detail


def test_verification_succeeds_when_the_lab_certificate_is_trusted(make_check, lab: Lab, settings) -> None:
    settings.DRPORTAL_TLS_CA_FILE = str(tls_paths(lab.lab_dir)[0])
    verdict = run_check(make_check("lws-xen01", kind="http", url="https://{address}/", verify_tls=True))
    assert verdict.outcome == "ok", verdict.detail


def test_a_page_without_the_expected_text_is_down_and_says_which_text(make_check) -> None:
    verdict = run_check(
        make_check(
            "lws-xen01",
            kind="http",
            url="https://{address}/rollout/",
            expect_text="Typo3 login",
            verify_tls=False,
        )
    )
    assert verdict.outcome == "down"
    assert (
        verdict.detail == f"https://{lws().address}/rollout/: HTTP 200, but 'Typo3 login' is not in the page"
    )


def test_a_wrong_status_is_down_and_an_expected_non_200_status_is_ok(make_check) -> None:
    missing = run_check(make_check("tomcat-xen01", kind="http", url="http://{address}:8081/nothing-here"))
    assert missing.outcome == "down"
    assert missing.detail.endswith(":8081/nothing-here: HTTP 404, expected 200")
    squid = run_check(make_check("proxy-xen01", kind="http", url="http://{address}:3128/", expect_status=400))
    assert squid.outcome == "ok", squid.detail


def test_a_closed_port_is_down_with_connection_refused(make_check) -> None:
    verdict = run_check(
        make_check("lws-xen01", kind="http", url="https://{address}:8443/statusboard", verify_tls=False)
    )
    assert verdict == Verdict(
        "down", f"https://{lws().address}:8443/statusboard: connection refused", verdict.seconds
    )


def test_https_against_a_plain_http_port_is_down_with_the_tls_error(make_check) -> None:
    verdict = run_check(
        make_check("tomcat-xen01", kind="http", url="https://{address}:8081/dbprinters/", verify_tls=False)
    )
    assert verdict.outcome == "down"
    assert "TLS handshake failed" in verdict.detail


def test_an_http_check_gives_up_at_its_timeout(make_check, silent_server) -> None:
    address, port = silent_server
    started = time.monotonic()
    verdict = run_check(make_check("lws-xen01", kind="http", url=f"http://{address}:{port}/", timeout_s=0.5))
    elapsed = time.monotonic() - started
    assert verdict.outcome == "down"
    assert verdict.detail == f"http://{address}:{port}/: no answer within 0.5 s"
    assert 0.4 <= elapsed < 1.0


# -- tcp ----------------------------------------------------------------------------------------


def test_a_tcp_port_that_accepts_is_ok(make_check) -> None:
    verdict = run_check(make_check("tomcat-xen01", kind="tcp", port=445))
    assert verdict.outcome == "ok"
    assert verdict.detail == f"tcp {VM.objects.get(name='tomcat-xen01').address}:445: open"


def test_a_tcp_banner_is_checked_when_text_is_expected(make_check) -> None:
    smtp = run_check(make_check("lws-xen01", kind="tcp", port=25, expect_text="ESMTP"))
    assert smtp.outcome == "ok"
    assert "220 lws-xen01 ESMTP Postfix" in smtp.detail
    wrong = run_check(make_check("lws-xen01", kind="tcp", port=25, expect_text="Exim", timeout_s=0.3))
    assert wrong.outcome == "down"
    assert "'Exim' not in its greeting (it said '220 lws-xen01 ESMTP Postfix')" in wrong.detail


def test_a_tcp_check_on_a_closed_port_is_down(make_check) -> None:
    verdict = run_check(make_check("lws-xen01", kind="tcp", port=2))
    assert verdict.outcome == "down"
    assert verdict.detail == f"tcp {lws().address}:2: connection refused"


def test_a_silent_tcp_service_is_down_at_the_timeout_when_a_banner_is_expected(
    make_check, silent_server
) -> None:
    address, port = silent_server
    vm = lws()
    vm.address = address
    started = time.monotonic()
    check = make_check("lws-xen01", kind="tcp", port=port, expect_text="220", timeout_s=0.5)
    check.vm = vm
    verdict = run_check(check)
    elapsed = time.monotonic() - started
    assert verdict.outcome == "down"
    assert "said nothing within 0.5 s" in verdict.detail
    assert 0.4 <= elapsed < 1.0


# -- ssh ----------------------------------------------------------------------------------------


def test_a_command_on_the_vm_with_its_expected_exit_code_is_ok(make_check) -> None:
    verdict = run_check(make_check("lws-xen01", kind="ssh", command="systemctl is-active apache2"))
    assert verdict.outcome == "ok"
    assert verdict.detail == (
        f"ssh root@lws-xen01 ({lws().address}:{lws().ssh_port}): `systemctl is-active apache2` exited 0 ('active')"
    )


def test_an_exit_code_other_than_the_expected_one_is_down(make_check) -> None:
    verdict = run_check(make_check("lws-xen01", kind="ssh", command="systemctl is-active tomcat"))
    assert verdict.outcome == "down"
    assert "`systemctl is-active tomcat` exited 3, expected 0 ('inactive')" in verdict.detail
    expected = run_check(
        make_check("lws-xen01", kind="ssh", command="systemctl is-active tomcat", expect_exit=3)
    )
    assert expected.outcome == "ok"


def test_ssh_output_must_contain_the_expected_text(make_check) -> None:
    ok = run_check(
        make_check(
            "lws-xen01", kind="ssh", command="svn info svn://localhost/repos", expect_text="Revision: 4711"
        )
    )
    assert ok.outcome == "ok"
    down = run_check(
        make_check("lws-xen01", kind="ssh", command="rsync --version", expect_text="protocol version 99")
    )
    assert down.outcome == "down"
    assert "'protocol version 99' not in its output" in down.detail


def test_the_vm_answers_with_its_own_tools_not_the_dom0s(make_check) -> None:
    verdict = run_check(make_check("lws-xen01", kind="ssh", command="xl list"))
    assert verdict.outcome == "down"
    assert "exited 127" in verdict.detail and "command not found" in verdict.detail


def test_a_changed_vm_host_key_is_a_note_saying_host_key_mismatch(make_check, lab: Lab) -> None:
    lab.fault("lws-xen01", "rekey")
    verdict = run_check(make_check("lws-xen01", kind="ssh", command="true"))
    assert verdict.outcome == "note"
    assert "host key mismatch for lws-xen01" in verdict.detail


def test_a_vm_without_a_pinned_host_key_is_a_note_and_no_connection_is_made(make_check) -> None:
    VM.objects.filter(name="lws-xen01").update(host_key_fingerprint="")
    verdict = run_check(make_check("lws-xen01", kind="ssh", command="true"))
    assert verdict.outcome == "note"
    assert "not pinned" in verdict.detail


def test_an_ssh_check_gives_up_at_its_timeout(make_check, silent_server) -> None:
    address, port = silent_server
    VM.objects.filter(name="lws-xen01").update(address=address, ssh_port=port)
    started = time.monotonic()
    verdict = run_check(make_check("lws-xen01", kind="ssh", command="true", timeout_s=0.5))
    elapsed = time.monotonic() - started
    assert verdict.outcome == "down"
    assert "no answer within 0.5 s" in verdict.detail
    assert 0.4 <= elapsed < 1.0


def test_ssh_checks_share_one_connection_per_vm_through_the_pool(make_check) -> None:
    with SSHPool() as pool:
        first = run_check(make_check("lws-xen01", kind="ssh", command="hostname"), pool=pool)
        conn = pool.get(vm_ssh_target(lws(), timeout=3.0))
        second = run_check(
            make_check("lws-xen01", kind="ssh", command="cat /etc/statusboard/config.php"), pool=pool
        )
        assert pool.get(vm_ssh_target(lws(), timeout=3.0)) is conn
    assert (first.outcome, second.outcome) == ("ok", "ok")
    assert "('lws-xen01')" in first.detail


# -- never an exception -------------------------------------------------------------------------


def test_incomplete_checks_are_notes_not_exceptions(make_check) -> None:
    VM.objects.filter(name="dns-xen01").update(address="")
    assert run_check(make_check("dns-xen01", kind="tcp", port=53)).outcome == "note"
    assert run_check(make_check("lws-xen01", kind="tcp")).outcome == "note"
    assert run_check(make_check("lws-xen01", kind="http", url="ftp://x/")).outcome == "note"
    assert run_check(make_check("lws-xen01", kind="ssh", command="echo 'unterminated")).outcome == "note"
    assert run_check(make_check("lws-xen01", kind="carrier-pigeon")).outcome == "note"


def test_a_connection_a_local_firewall_refuses_is_a_note_asking_for_an_opening(
    make_check, monkeypatch
) -> None:
    def blocked(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("failover.actions.checks.socket.create_connection", blocked)
    verdict = run_check(make_check("lws-xen01", kind="tcp", port=25))
    assert verdict.outcome == "note"
    assert verdict.detail.endswith(
        ":25: blocked by a firewall (Operation not permitted): firewall opening needed"
    )
