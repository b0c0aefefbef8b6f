"""Several workers (issue 7): nothing in the engine assumes one worker or one machine.

Two real worker processes, each with its own beat (so two reapers run side by side as
well), share the reference failover; the one that holds a side effect in flight is
killed with SIGKILL, and the other finishes the run.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from failover.choices import ActionStateChoices, RunStateChoices
from failover.engine import reaper as engine
from failover.models import Action, RunEvent
from hosts.lab import cli
from hosts.lab.journal import read_journal

from .conftest import Worker, declare, flush_redis, lose_wsl, side_effects, wait_for_run
from .test_reference_failover import EXPECTED_XENKA01, xenka01_domains
from .test_resilience import assert_each_side_effect_once, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

SIDE_EFFECT_KINDS = ("failover_group", "set_memory", "start_vm")
# Slow enough that an action with a side effect is still on the wire when the kill lands.
LATENCY = {"sssu": "0.4", "xl mem-set": "0.8", "xl create": "0.8"}


@pytest.fixture
def two_workers(tmp_path, lab, estate):
    flush_redis(settings.REDIS_URL)
    workers = [Worker(tmp_path, lab.lab_dir, settings.REDIS_URL, name=name) for name in ("alpha", "beta")]
    try:
        for worker in workers:
            worker.start()
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def attempts(run_id: int) -> list[tuple[int, int, str]]:
    """(action, attempt, worker) of every attempt so far, in the order they started."""
    return [
        (event.action_id, event.data["attempt"], event.data["worker"])
        for event in RunEvent.objects.filter(run_id=run_id, kind="action_started").order_by("seq")
    ]


def side_effect_in_flight(run_id: int) -> Action | None:
    return (
        Action.objects.filter(run_id=run_id, kind__in=SIDE_EFFECT_KINDS, state=ActionStateChoices.RUNNING)
        .order_by("started_at")
        .first()
    )


@pytest.mark.slow
def test_two_workers_share_a_run_and_when_one_dies_mid_action_the_other_finishes_with_each_effect_once(
    lab, estate, two_workers
):
    lose_wsl(lab)
    cli.lab_latency(lab.lab_dir, per_command=list(LATENCY.items()))
    start = len(side_effects(lab))
    by_id = {worker.claims_as: worker for worker in two_workers}
    run_id = declare(estate["mod"]).run.pk

    # Both take actions of the same run, and both beats (two reapers) are live.
    wait_until(
        lambda: {worker for _a, _n, worker in attempts(run_id)} == set(by_id), what="both workers at work"
    )
    wait_until(
        lambda: all("Sending due task reaper" in worker.log_path.read_text() for worker in two_workers),
        what="both beats sending the reaper",
    )

    # Kill the worker that holds a side effect while its commands are on the wire.
    wait_until(lambda: side_effect_in_flight(run_id) is not None, what="a side effect in flight")
    held = side_effect_in_flight(run_id)
    time.sleep(0.2)
    victim = by_id[held.claimed_by]
    survivor = next(worker for worker in two_workers if worker is not victim)
    victim.kill()
    killed_at = len(attempts(run_id))
    held.refresh_from_db()
    assert (held.state, held.claimed_by) == (ActionStateChoices.RUNNING, victim.claims_as), (
        "the kill must land while the victim still holds the action"
    )

    run = wait_for_run(run_id, timeout=90, worker=survivor)
    assert run.state == RunStateChoices.SUCCEEDED, [
        (a.target, a.state, a.error) for a in run.actions.exclude(state=ActionStateChoices.SUCCEEDED)
    ]
    assert_each_side_effect_once(lab, start)
    assert xenka01_domains(lab) == EXPECTED_XENKA01
    # Everything after the kill ran on the survivor, the orphan included (finished by its
    # reaper from what the estate shows, or tried again under a new attempt number).
    assert {worker for _a, _n, worker in attempts(run_id)[killed_at:]} == {survivor.claims_as}
    held.refresh_from_db()
    assert held.state == ActionStateChoices.SUCCEEDED
    assert (
        held.attempt > 1
        or RunEvent.objects.filter(
            action=held, kind="action_succeeded", message__contains="by the reaper"
        ).exists()
    )


def test_two_reapers_at_once_take_a_dead_workers_action_once_observe_it_once_and_decide_once(lab, estate):
    lose_wsl(lab)
    run = declare(estate["mod"]).run  # no worker: its messages wait in Redis, nobody claims
    orphan = run.actions.get(kind="start_vm", target="dns-xen01")
    Action.objects.filter(pk=orphan.pk).update(
        state=ActionStateChoices.RUNNING,
        attempt=1,
        claimed_by="a-dead-machine:4242",
        lease_expires_at=timezone.now() - timedelta(seconds=5),
    )
    journal_seq = max((entry["seq"] for entry in read_journal(lab.lab_dir)), default=0)
    barrier = threading.Barrier(2)
    reports: list[dict] = []

    def reaper() -> None:
        try:
            barrier.wait(5)
            reports.append(engine.reap())
        finally:
            connection.close()

    threads = [threading.Thread(target=reaper) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(reports) == 2
    assert sorted(report["requeued"] for report in reports) == [0, 1]
    observed = [
        entry
        for entry in read_journal(lab.lab_dir, journal_seq)
        if entry["host"] == "xenka01" and entry["command"] == "xl list"
    ]
    assert len(observed) == 1, observed
    orphan.refresh_from_db()
    assert (orphan.state, orphan.attempt) == (ActionStateChoices.PENDING, 1)
    assert RunEvent.objects.filter(action=orphan, kind="action_requeued").count() == 1
