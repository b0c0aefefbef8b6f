"""Issue 17 item 12: readiness is not up to DRPORTAL_READINESS_INTERVAL_S stale: a real
worker checks when it starts and after a run ends (beat's interval set out of reach, so
neither check can be beat's)."""

from __future__ import annotations

import time

import pytest
from django.conf import settings

from failover.choices import RunStateChoices as R
from failover.readiness.models import ReadinessCheck
from tests.engine.conftest import Worker, declare, flush_redis, lose_wsl, wait_for_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def wait_for(find, timeout: float, what: str, worker: Worker):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find()
        if found is not None:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {what} in {timeout} s\n{worker.logs()}")


def test_a_worker_checks_readiness_when_it_starts_and_after_a_run_ends(tmp_path, lab, estate):
    flush_redis(settings.REDIS_URL)
    assert not ReadinessCheck.objects.exists()
    worker = Worker(tmp_path, lab.lab_dir, settings.REDIS_URL, {"DRPORTAL_READINESS_INTERVAL_S": "86400"})
    worker.start()
    try:
        first = wait_for(lambda: ReadinessCheck.objects.first(), 30, "check at start", worker)
        assert set(first.verdicts.values_list("site__code", flat=True)) == {"KA", "WSL"}

        lose_wsl(lab)
        run = wait_for_run(declare(estate["mod"]).run.pk, worker=worker, timeout=120)
        assert run.state == R.SUCCEEDED
        after = wait_for(
            lambda: ReadinessCheck.objects.filter(started_at__gte=run.finished_at).first(),
            60,
            "check after the run's end",
            worker,
        )
        assert after.pk != first.pk
    finally:
        worker.stop()
