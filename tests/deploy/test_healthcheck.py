"""The containers' health checks (python -m drportal.healthcheck) against the real thing:
Django's WSGI application over HTTP, a Celery worker on Redis, the lab, beat's file."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import threading
import time
import uuid
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

from drportal.healthcheck import Unhealthy, check_beat, check_lab, check_web, check_worker, host_header
from hosts.lab import cli
from hosts.lab.seed import seed_reference
from hosts.lab.server import start_lab_in_thread
from hosts.lab.store import LabStore

from .compose import REPO


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def https_site(settings):
    """drportal as production configures it (HTTPS redirect, one allowed host), served
    over plain HTTP on loopback like the web container's port."""
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["drportal.example.org"]
    server = make_server("127.0.0.1", 0, WSGIHandler(), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_web_check_passes_over_plain_http_while_everything_else_redirects_to_https(https_site):
    assert check_web(https_site, "drportal.example.org") == "web: ok"
    conn = socket.create_connection(("127.0.0.1", https_site))
    conn.sendall(b"GET /accounts/login/ HTTP/1.0\r\nHost: drportal.example.org\r\n\r\n")
    status = conn.recv(100).split(b"\r\n")[0]
    conn.close()
    assert b" 301 " in status


def test_the_web_check_fails_for_a_host_django_does_not_serve(https_site):
    with pytest.raises(Unhealthy, match="/healthz answered 400"):
        check_web(https_site, "elsewhere.example.org")


def test_the_web_check_fails_when_nothing_listens():
    with pytest.raises(Unhealthy, match=r"no answer on 127\.0\.0\.1"):
        check_web(free_port(), "localhost")


@pytest.mark.parametrize(
    ("allowed", "host"),
    [
        ("drportal.example.org,localhost", "drportal.example.org"),
        (".example.org", "example.org"),
        ("*", "localhost"),
    ],
)
def test_the_web_check_asks_with_a_host_from_allowed_hosts(allowed, host):
    assert host_header(allowed) == host


def test_the_beat_check_wants_a_schedule_written_recently(tmp_path):
    schedule = tmp_path / "celerybeat-schedule"
    with pytest.raises(Unhealthy, match="no schedule file"):
        check_beat(str(schedule), 600)
    (tmp_path / "celerybeat-schedule.db").write_bytes(b"")  # dbm may add a suffix
    assert check_beat(str(schedule), 600).startswith("beat: schedule written")
    old = time.time() - 601
    os.utime(tmp_path / "celerybeat-schedule.db", (old, old))
    with pytest.raises(Unhealthy, match="last written 601 s ago"):
        check_beat(str(schedule), 600)


@pytest.fixture
def lab_of_two_arrays(tmp_path):
    seed_reference(LabStore(tmp_path))
    server = start_lab_in_thread(tmp_path, 0, hosts=["eva-wsl", "eva-ka"])
    try:
        yield tmp_path
    finally:
        server.stop()


def test_the_lab_check_passes_while_one_host_answers_and_fails_when_none_does(lab_of_two_arrays):
    lab_dir = lab_of_two_arrays
    assert check_lab(str(lab_dir)).startswith("lab: SSH answers on")
    cli.lab_fault(lab_dir, "eva-wsl", "down", [])  # eva-wsl is 127.0.1.2, eva-ka 127.0.2.2
    wait_for(lambda: _answers_on(lab_dir, "127.0.2.2"), exceptions=(AssertionError, Unhealthy))
    cli.lab_fault(lab_dir, "eva-ka", "down", [])
    wait_for(lambda: _answers_on(lab_dir, None), exceptions=(AssertionError,))
    with pytest.raises(Unhealthy, match="nothing answers on port"):
        check_lab(str(lab_dir), timeout=1)


def test_the_lab_check_fails_before_the_lab_started(tmp_path):
    with pytest.raises(Unhealthy, match=r"no readable .*server\.json"):
        check_lab(str(tmp_path))


def _answers_on(lab_dir, address: str | None) -> None:
    """The check answers from ``address`` (None: it finds the lab unhealthy); else AssertionError."""
    try:
        message = check_lab(str(lab_dir), timeout=1)
    except Unhealthy:
        assert address is None, f"unhealthy, expected an answer on {address}"
        return
    assert address is not None and message.startswith(f"lab: SSH answers on {address}:"), message


def wait_for(probe, timeout: float = 10, exceptions=(Unhealthy,)):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return probe()
        except exceptions:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


WORKER = [sys.executable, *shlex.split("-m celery -A drportal worker --pool threads --concurrency 1")]


@pytest.mark.slow
def test_the_worker_check_gets_an_answer_from_its_own_worker_only(tmp_path):
    node = f"healthcheck-{uuid.uuid4().hex[:8]}"
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [*WORKER, "--without-gossip", "--without-mingle", "--hostname", f"celery@{node}", "--queues", node],
        cwd=REPO,
        env=os.environ | {"REDIS_URL": settings.REDIS_URL, "DJANGO_SETTINGS_MODULE": "drportal.settings"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        assert (
            wait_for(lambda: check_worker(node, timeout=2), timeout=60) == f"worker: celery@{node} answered"
        )
        with pytest.raises(Unhealthy, match=r"celery@nobody-here did not answer a ping within 1 s"):
            check_worker("nobody-here", timeout=1)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
