"""The engine against the lab, with a real Celery worker process and Redis.

The worker is a subprocess (``celery -A drportal worker -B``, threads pool) pointed at
the pytest database and at the same Redis database as this process; the lab runs in
this process on a free port; Host rows point at it with its pinned keys.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.utils import timezone

from failover.choices import RunStateChoices
from failover.models import Run
from failover.runs.failover import build_plan, disaster_declare
from hosts.lab.keys import client_key_path, fingerprints
from hosts.lab.vm_services import vm_fingerprints
from hosts.permissions import ROLE_HELPDESK, ROLE_MOD, sync_roles
from hosts.services import estate_load_reference
from tests.lab.conftest import Lab

REPO = Path(__file__).resolve().parents[2]
FINAL = (RunStateChoices.SUCCEEDED, RunStateChoices.FAILED, RunStateChoices.ABORTED)

WORKER_ENV = {
    # The lab's services open within ~0.2 s of a start; a test that makes one down on
    # purpose should not wait the production boot grace.
    "DRPORTAL_CHECK_SETTLE_S": "5",
    "DRPORTAL_CHECK_POLL_S": "0.3",
    # Short leases so a killed worker's actions are reaped within seconds.
    "DRPORTAL_ACTION_LEASE_S": "3",
    "DRPORTAL_REQUEUE_AFTER_S": "3",
    "DRPORTAL_REAPER_INTERVAL_S": "1",
    "DRPORTAL_SSH_CONNECT_TIMEOUT": "3",
    "DRPORTAL_SSH_COMMAND_TIMEOUT": "20",
}


def database_url() -> str:
    """The test database, for the worker and server processes the tests start."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"  # a file (tests/conftest.py): other processes open it too
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


class Worker:
    """A real Celery worker (with the reaper's beat embedded), killable with SIGKILL.

    Several may run side by side: each ``name`` gets its own Celery node name, log and
    beat schedule file (two beats sharing one schedule file would corrupt it)."""

    def __init__(
        self, tmp: Path, lab_dir: Path, redis_url: str, extra_env: dict | None = None, *, name: str = "test"
    ) -> None:
        self.tmp, self.lab_dir, self.redis_url = tmp, lab_dir, redis_url
        self.extra_env = extra_env or {}
        self.name = name
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.starts = 0

    @property
    def claims_as(self) -> str:
        """What the engine records as ``claimed_by`` for this process (threads pool: the
        tasks run in the process we started)."""
        return f"{socket.gethostname()}:{self.proc.pid}"

    def start(self) -> Worker:
        self.starts += 1
        env = dict(os.environ)
        env.update(WORKER_ENV)
        env.update(
            DATABASE_URL=database_url(),
            REDIS_URL=self.redis_url,
            DRPORTAL_LAB_DIR=str(self.lab_dir),
            DRPORTAL_SSH_KEY=str(client_key_path(self.lab_dir)),
            DJANGO_SETTINGS_MODULE="drportal.settings",
        )
        env.update(self.extra_env)
        self.log_path = self.tmp / f"{self.name}-worker-{self.starts}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 (closed with the process)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "drportal",
                "worker",
                "-B",
                "--pool",
                "threads",
                "--concurrency",
                "8",
                "--loglevel",
                "INFO",
                "--schedule",
                str(self.tmp / f"{self.name}-beat-{self.starts}"),
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                f"{self.name}{self.starts}@%h",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready(log.name)
        return self

    def _wait_ready(self, log_path: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {Path(log_path).read_text()[-3000:]}")
            if b"ready." in Path(log_path).read_bytes():
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready in {timeout} s: {Path(log_path).read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the worker and everything it started: no cleanup, no acks."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:] for p in sorted(self.tmp.glob(f"{self.name}-worker-*.log"))
        )


def flush_redis(url: str) -> None:
    # Only ever the tests' own Redis database: a stale task must not meet a new run's ids.
    client = redis.Redis.from_url(url)
    if client.connection_pool.connection_kwargs.get("db", 0) == 0 and not os.environ.get(
        "DRPORTAL_TEST_FLUSH_DB0"
    ):
        pytest.skip("engine tests need REDIS_URL on a database other than 0 (make test sets /15)")
    client.flushdb()


@pytest.fixture
def lab(tmp_path: Path, vm_addresses: dict[str, str]) -> Iterator[Lab]:
    from hosts.lab.keys import ensure_keys
    from hosts.lab.seed import seed_reference
    from hosts.lab.store import LabStore

    lab_dir = tmp_path / "lab"
    store = LabStore(lab_dir)
    seed_reference(store)
    with store.transaction() as state:
        for vm, address in vm_addresses.items():
            state["services"][vm]["address"] = address
    ensure_keys(lab_dir)
    handle = Lab(lab_dir).start()
    yield handle
    handle.stop()


@pytest.fixture
def estate(transactional_db, lab, settings, vm_addresses):
    """The reference estate in the database, pointing at the lab, and the role users."""
    settings.DRPORTAL_SSH_KEY = client_key_path(lab.lab_dir)  # the arrays' key (they name none)
    sync_roles(Group, Permission)
    estate_load_reference(
        addresses=vm_addresses,
        ssh_port=lab.port,
        ssh_key_path=str(client_key_path(lab.lab_dir)),
        fingerprints=fingerprints(lab.lab_dir) | vm_fingerprints(lab.lab_dir),
    )
    User = get_user_model()
    mod = User.objects.create_user("mod", password="x")
    mod.groups.set([Group.objects.get(name=ROLE_MOD)])
    helpdesk = User.objects.create_user("helpdesk", password="x")
    helpdesk.groups.set([Group.objects.get(name=ROLE_HELPDESK)])
    return {"mod": mod, "helpdesk": helpdesk, "lab": lab}


@pytest.fixture
def worker(tmp_path: Path, lab, estate) -> Iterator[Worker]:
    flush_redis(settings.REDIS_URL)
    handle = Worker(tmp_path, lab.lab_dir, settings.REDIS_URL).start()
    yield handle
    handle.stop()


def lose_wsl(lab: Lab) -> None:
    """The disaster: every WSL machine stops answering."""
    lab.fault("xenwsl01", "down")
    lab.fault("eva-wsl", "down")


def declare(user, *, lost_site: str = "WSL", confirm_isolated: bool = True, override: str = "", plan=None):
    """Declare the loss of ``lost_site`` with ``plan`` (built now unless given)."""
    plan = plan or build_plan(lost_site=lost_site)
    return disaster_declare(
        user=user,
        lost_site=lost_site,
        disaster_class=2,
        category="power",
        detected_at=timezone.now(),
        plan=plan,
        override_reason=override,
        confirm_isolated=confirm_isolated,
    )


def wait_for_run(run_id: int, *, states=FINAL, timeout: float = 60, worker: Worker | None = None) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if run.state in states:
            return run
        time.sleep(0.1)
    events = "\n".join(
        f"#{e.seq} {e.kind}: {e.message}" for e in Run.objects.get(pk=run_id).events.order_by("seq")
    )
    raise AssertionError(
        f"run {run_id} still {Run.objects.get(pk=run_id).state} after {timeout} s\n{events}\n"
        + (worker.logs() if worker else "")
    )


def side_effects(lab: Lab, since_seq: int = 0) -> list[str]:
    """The commands that change the estate, from the lab's journal."""
    from hosts.lab.journal import read_journal

    changing = (" create ", " mem-set ", "FAILOVER", "ADD LUN", "DELETE LUN", " destroy ", " shutdown ")
    return [
        entry["command"]
        for entry in read_journal(lab.lab_dir, since_seq)
        if entry.get("exit_status") == 0 and any(word in f" {entry['command']} " for word in changing)
    ]
