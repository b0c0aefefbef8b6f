"""GET /metrics: the Prometheus text format with readiness, run durations, action failures
and active runs, read from the database; open to loopback, or to a bearer token if set."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from failover.engine.journal import record_event
from failover.models import Action, Run
from tests.board.runs import build_run

from .conftest import record_readiness

pytestmark = pytest.mark.django_db


def _samples(response) -> dict[tuple[str, tuple], float]:
    families = text_string_to_metric_families(response.content.decode())
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


@pytest.fixture
def finished_run(reference_estate, users):
    """A failover that finished in 1234.5 s with two failed attempts on the way, an older
    one, and a drill still running."""
    older = build_run(user=users["mod"], per_step=1, state="succeeded")
    Run.objects.filter(pk=older.pk).update(
        finished_at=timezone.now() - dt.timedelta(days=1), summary={"run_seconds": 99.0}
    )
    run = build_run(user=users["mod"], per_step=1, state="succeeded")
    Run.objects.filter(pk=run.pk).update(
        finished_at=timezone.now(), summary={"run_seconds": 1234.5, "recovery_seconds": 2000.0}
    )
    action = Action.objects.filter(run=run).order_by("pk").first()
    with transaction.atomic():
        for attempt in (1, 2):
            record_event(
                run_id=run.pk,
                kind="action_failed",
                message="FAILED",
                action_id=action.pk,
                data={"attempt": attempt},
            )
    build_run(user=users["mod"], per_step=1, kind="drill", state="running")
    record_readiness(
        {
            "KA": [("critical", "unrecoverable", "lws-xen01 has no replica at WSL")],
            "WSL": [("warning", "drill-age", "the last drill of WSL is 120 days old")],
        }
    )
    return run


def test_metrics_after_a_finished_run_show_its_duration_failures_readiness_and_active_runs(
    client, finished_run
):
    response = client.get(reverse("api:metrics"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    assert "# TYPE drportal_action_failures_total counter" in text
    assert "# TYPE drportal_run_duration_seconds gauge" in text
    samples = _samples(response)
    assert samples[("drportal_run_duration_seconds", (("kind", "failover"),))] == 1234.5
    assert ("drportal_run_duration_seconds", (("kind", "drill"),)) not in samples  # none finished yet
    assert samples[("drportal_action_failures_total", (("kind", "check_host"),))] == 2
    assert samples[("drportal_runs_active", (("kind", "drill"),))] == 1
    assert samples[("drportal_runs_active", (("kind", "failover"),))] == 0
    assert samples[("drportal_readiness", (("site", "KA"),))] == 0
    # WSL's verdict is "ready", but the finished failover moved its services to KA: a site
    # that is away is never reported ready (issue 17 item 12).
    assert samples[("drportal_readiness", (("site", "WSL"),))] == 0
    assert samples[("drportal_readiness_findings", (("severity", "critical"), ("site", "KA")))] == 1
    assert samples[("drportal_readiness_findings", (("severity", "warning"), ("site", "WSL")))] == 1
    checked = samples[("drportal_readiness_checked_timestamp_seconds", (("site", "WSL"),))]
    assert abs(checked - timezone.now().timestamp()) < 60
    groups = {labels[0][1]: v for (name, labels), v in samples.items() if name == "drportal_dr_groups"}
    assert groups["unknown"] == 3 and groups["none"] == 3 and sum(groups.values()) == 6


def test_metrics_take_a_bounded_number_of_queries(client, finished_run, django_assert_max_num_queries):
    with django_assert_max_num_queries(20):
        client.get(reverse("api:metrics"))


def test_without_a_token_metrics_are_for_loopback_only(client, db):
    assert client.get(reverse("api:metrics"), REMOTE_ADDR="::1").status_code == 200
    refused = client.get(reverse("api:metrics"), REMOTE_ADDR="10.0.0.5")
    assert refused.status_code == 403
    assert "DRPORTAL_METRICS_TOKEN" in refused.content.decode()


def test_with_a_token_set_metrics_need_it_from_anywhere(client, db, settings):
    settings.DRPORTAL_METRICS_TOKEN = "s3cret"
    url = reverse("api:metrics")
    missing = client.get(url)
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    assert client.get(url, HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    assert client.get(url, HTTP_AUTHORIZATION="Bearer s3cret", REMOTE_ADDR="10.0.0.5").status_code == 200


def test_metrics_are_not_sent_to_the_login_page_and_refuse_post(client, db):
    assert client.get(reverse("api:metrics")).status_code == 200
    assert client.post(reverse("api:metrics")).status_code == 405


def test_a_site_not_checked_yet_has_no_readiness_sample(client, reference_estate):
    samples = _samples(client.get(reverse("api:metrics")))
    assert not [key for key in samples if key[0] == "drportal_readiness"]
