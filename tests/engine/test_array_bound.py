"""The per-array bound (DRPORTAL_MAX_ACTIONS_PER_ARRAY): no more SSSU sessions on one
array at once than it allows, counted from what the lab received, with a real worker.

The worker checks readiness when it starts and after the run ends, and that check opens
SSSU sessions too: the run is declared only once the start-up check is recorded, and only
the sessions the lab received between the run's start and its end are counted."""

from __future__ import annotations

import time
from itertools import pairwise

import pytest

from failover.choices import RunStateChoices
from failover.readiness.models import ReadinessCheck
from hosts.lab import cli
from hosts.lab.journal import read_journal

from .conftest import Worker, declare, flush_redis, lose_wsl, wait_for_run

pytestmark = pytest.mark.django_db(transaction=True)

SSSU_SECONDS = 0.3  # long enough that sessions opened together overlap in the journal


def most_sessions_at_once(lab_dir, array: str, since_seq: int, run=None) -> int:
    """The most ``sssu`` commands the lab was serving for ``array`` at one moment (each
    journal line: arrival time and duration), of those that arrived during ``run``."""
    from datetime import datetime

    window = (run.created_at.timestamp(), run.finished_at.timestamp()) if run is not None else None
    edges = []
    for entry in read_journal(lab_dir, since_seq):
        if entry["host"] == array and entry["command"].startswith("sssu "):
            start = datetime.fromisoformat(entry["time"]).timestamp()
            if window and not window[0] <= start <= window[1]:
                continue  # a readiness check's session, before or after the run
            edges += [(start, 1), (start + entry["seconds"], -1)]
    most = now = 0
    for _moment, change in sorted(edges, key=lambda edge: (edge[0], edge[1])):  # ends before starts
        now += change
        most = max(most, now)
    return most


def run_with_array_bound(tmp_path, lab, estate, settings, bound: int):
    settings.DRPORTAL_MAX_ACTIONS_PER_ARRAY = bound
    assert cli.lab_latency(lab.lab_dir, per_command=[("sssu", str(SSSU_SECONDS))])[0] == 0
    flush_redis(settings.REDIS_URL)
    worker = Worker(
        tmp_path, lab.lab_dir, settings.REDIS_URL, {"DRPORTAL_MAX_ACTIONS_PER_ARRAY": str(bound)}
    ).start()
    try:
        deadline = time.monotonic() + 60
        while not ReadinessCheck.objects.exists():  # the worker's start-up check is done
            assert time.monotonic() < deadline, worker.logs()
            time.sleep(0.2)
        lose_wsl(lab)
        since = max((e["seq"] for e in read_journal(lab.lab_dir)), default=0)
        run = wait_for_run(declare(estate["mod"]).run.pk, worker=worker, timeout=120)
    finally:
        worker.stop()
    assert run.state == RunStateChoices.SUCCEEDED, [
        (a.target, a.error) for a in run.actions.exclude(state="succeeded")
    ]
    return run, since


def test_no_more_sssu_sessions_run_on_one_array_at_once_than_its_bound(tmp_path, lab, estate, settings):
    """Bound 1: the three integrity checks run on xenka01 (whose own bound, 4, would let
    them run together) and each opens an SSSU session on eva-ka: one at a time."""
    run, since = run_with_array_bound(tmp_path, lab, estate, settings, 1)
    integrity = run.actions.filter(kind="integrity_check")
    assert integrity.count() == 3 and {a.array for a in integrity} == {"eva-ka"}
    assert {a.host for a in integrity} == {"xenka01"}
    assert most_sessions_at_once(lab.lab_dir, "eva-ka", since, run) == 1
    spans = sorted((a.started_at, a.finished_at) for a in run.actions.filter(array="eva-ka"))
    for (_start, end), (start, _end) in pairwise(spans):
        assert end <= start


def test_the_array_bound_lets_as_many_sessions_run_together_as_it_allows(tmp_path, lab, estate, settings):
    """Bound 3: the same run does open sessions on eva-ka side by side (so the test above
    measures the bound, not a run that never overlaps), and never more than three."""
    run, since = run_with_array_bound(tmp_path, lab, estate, settings, 3)
    assert 2 <= most_sessions_at_once(lab.lab_dir, "eva-ka", since, run) <= 3
