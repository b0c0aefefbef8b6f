"""The reference failover (WSL lost), end to end: declaration, a real worker, the lab."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest

from failover.choices import ActionStateChoices, RunStateChoices
from failover.models import Run

from .conftest import declare, lose_wsl, side_effects, wait_for_run

pytestmark = pytest.mark.django_db(transaction=True)

EXPECTED_XENKA01 = {
    "Domain-0": 128,
    "lws-xen01": 512,
    "dasi-xen01": 1024,
    "tomcat-xen01": 512,
    "proxy-xen01": 512,
    "dns-xen01": 256,
    "rsync-xen01": 512,
}


def xenka01_domains(lab) -> dict[str, int]:
    return {d["name"]: d["memory_mb"] for d in lab.store.read()["hosts"]["xenka01"]["domains"]}


@pytest.mark.sqlite
def test_the_reference_failover_ends_with_every_vm_on_xenka01_at_its_dr_memory(lab, estate, worker):
    lose_wsl(lab)
    start = len(side_effects(lab))
    declaration = declare(estate["mod"])
    run = wait_for_run(declaration.run.pk, worker=worker)
    assert run.state == RunStateChoices.SUCCEEDED, [
        (a.target, a.error) for a in run.actions.exclude(state="succeeded")
    ]
    assert xenka01_domains(lab) == EXPECTED_XENKA01
    effects = Counter(side_effects(lab)[start:])
    assert all(count == 1 for count in effects.values()), effects
    assert sum(1 for c in effects if "FAILOVER" in c) == 3
    assert sum(1 for c in effects if " create " in f" {c} ") == 3
    assert {c.split()[2] for c in effects if "mem-set" in c} == {"Domain-0", "dasi-xen01", "tomcat-xen01"}


@pytest.mark.sqlite
def test_every_step_is_done_and_timed_and_events_are_numbered_without_gaps(lab, estate, worker):
    lose_wsl(lab)
    run = wait_for_run(declare(estate["mod"]).run.pk, worker=worker)
    steps = list(run.steps.order_by("number"))
    assert [s.key for s in steps] == [
        "preflight",
        "inventory",
        "storage",
        "integrity",
        "shrink",
        "start",
        "verify",
    ]
    assert all(s.state == "done" and s.started_at and s.finished_at for s in steps)
    assert [s.planned_minutes for s in steps] == [0, 5, 30, 30, 15, 15, 30]
    seqs = list(run.events.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert run.summary["recovery_seconds"] > 0
    assert len(run.summary["steps"]) == 7


def test_vms_already_running_at_the_surviving_site_are_only_shrunk(lab, estate, worker):
    lose_wsl(lab)
    run = wait_for_run(declare(estate["mod"]).run.pk, worker=worker)
    inventory = run.actions.get(kind="inventory_host")
    assert set(inventory.result["running"]) == {"lws-xen01", "dasi-xen01", "tomcat-xen01"}
    starts = set(run.actions.filter(kind="start_vm").values_list("target", flat=True))
    assert starts == {"proxy-xen01", "dns-xen01", "rsync-xen01"}
    lws = run.actions.get(kind="set_memory", target="lws-xen01")
    assert lws.state == ActionStateChoices.SUCCEEDED and lws.result == {"memory_mb": 512}


def test_starts_go_in_tier_order(lab, estate, worker):
    lose_wsl(lab)
    run = wait_for_run(declare(estate["mod"]).run.pk, worker=worker)
    started = {a.target: a.started_at for a in run.actions.filter(kind="start_vm")}
    assert started["dns-xen01"] < started["proxy-xen01"] < started["rsync-xen01"]


def test_declaring_again_after_success_finds_everything_already_done(lab, estate, worker):
    lose_wsl(lab)
    wait_for_run(declare(estate["mod"]).run.pk, worker=worker)
    before = len(side_effects(lab))
    # The preview says WSL is failed over already (a blocking problem): a typed reason goes on.
    second = wait_for_run(
        declare(estate["mod"], override="check that every step is done").run.pk, worker=worker
    )
    assert second.state == RunStateChoices.SUCCEEDED
    assert side_effects(lab)[before:] == []  # observe first: nothing is done twice
    assert Run.objects.count() == 2


def test_a_functional_test_that_fails_is_recorded_as_down_and_the_recovery_goes_on(lab, estate, worker):
    """Thesis table 3.2: the printer database was 'down' in the test; the recovery went on."""
    lose_wsl(lab)
    lab.fault("tomcat-xen01", "service-down", "8081")
    run = wait_for_run(declare(estate["mod"]).run.pk, worker=worker)
    assert run.state == RunStateChoices.SUCCEEDED
    checks = {a.target: a for a in run.actions.filter(kind="functional_check")}
    printer = next(
        a for target, a in checks.items() if target.startswith("tomcat-xen01") and "rinter" in target
    )
    assert printer.state == ActionStateChoices.FAILED and printer.outcome == "down" and printer.optional
    assert "8081" in printer.error
    # Every VM at the surviving site is tested, the ones that ran there already included.
    assert {t.split(":")[0] for t in checks} >= {"lws-xen01", "tomcat-xen01", "proxy-xen01", "dns-xen01"}
    others = [a for a in checks.values() if a is not printer]
    assert all(a.state == ActionStateChoices.SUCCEEDED and a.outcome == "ok" for a in others), [
        (a.target, a.error) for a in others if a.state != ActionStateChoices.SUCCEEDED
    ]
    assert "functional test(s) not ok" in run.events.get(kind="run_succeeded").message


def test_a_host_never_runs_more_actions_at_once_than_its_bound_while_slots_are_handed_on(
    tmp_path, lab, estate, settings
):
    """DRPORTAL_MAX_ACTIONS_PER_HOST=1: a finished action hands its host's slot straight to
    the next one (no pass, no broker), and no two actions of one host ever overlap."""
    from .conftest import Worker, flush_redis

    settings.DRPORTAL_MAX_ACTIONS_PER_HOST = 1

    flush_redis(settings.REDIS_URL)
    worker = Worker(tmp_path, lab.lab_dir, settings.REDIS_URL, {"DRPORTAL_MAX_ACTIONS_PER_HOST": "1"}).start()
    try:
        lose_wsl(lab)
        run = wait_for_run(declare(estate["mod"]).run.pk, worker=worker)
    finally:
        worker.stop()
    assert run.state == RunStateChoices.SUCCEEDED
    by_host: dict[str, list] = {}
    for action in run.actions.exclude(host="").order_by("started_at"):
        by_host.setdefault(action.host, []).append(action)
    # Not vacuous: xenka01 shrinks three domains in one step.
    assert max(len(actions) for actions in by_host.values()) >= 3
    for host, actions in by_host.items():
        for before, after in pairwise(actions):
            assert before.finished_at <= after.started_at, (host, before.target, after.target)


def test_worker_threads_sharing_a_pool_of_two_database_connections_recover_the_estate(
    tmp_path, lab, estate, settings
):
    """DB_POOL_MAX_SIZE=2 under 8 threads: a thread gives its connection back while it waits
    on SSH, and the run still ends with every side effect once."""
    from .conftest import Worker, flush_redis

    flush_redis(settings.REDIS_URL)
    worker = Worker(tmp_path, lab.lab_dir, settings.REDIS_URL, {"DB_POOL_MAX_SIZE": "2"}).start()
    try:
        lose_wsl(lab)
        start = len(side_effects(lab))
        run = wait_for_run(declare(estate["mod"]).run.pk, worker=worker)
    finally:
        worker.stop()
    assert run.state == RunStateChoices.SUCCEEDED, [
        (a.target, a.error) for a in run.actions.exclude(state="succeeded")
    ]
    assert xenka01_domains(lab) == EXPECTED_XENKA01
    effects = Counter(side_effects(lab)[start:])
    assert effects and all(count == 1 for count in effects.values()), effects
