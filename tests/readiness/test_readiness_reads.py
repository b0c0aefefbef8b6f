"""Reading readiness: the selector, the page, and the Celery task on beat."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from failover.readiness.models import ReadinessCheck
from failover.readiness.selectors import readiness_latest

from .conftest import make_verdict

BAD = (
    ("critical", "bridge-missing", "xenka01 lacks bridge(s) xenbr1"),
    ("warning", "never-drilled", "never"),
)


def test_the_beat_runs_the_readiness_task_at_the_interval_of_the_setting():
    from drportal.celery import app

    entry = django_settings.CELERY_BEAT_SCHEDULE["readiness"]
    assert entry["task"] == "failover.tasks_readiness.check_readiness"
    assert entry["schedule"] == django_settings.DRPORTAL_READINESS_INTERVAL_S
    # A pass that could not start before the next one is due is dropped, not queued up.
    assert entry["options"]["expires"] == django_settings.DRPORTAL_READINESS_INTERVAL_S
    app.loader.import_default_modules()
    assert "failover.tasks_readiness.check_readiness" in app.tasks


@pytest.mark.django_db(transaction=True)
def test_the_task_and_the_command_each_run_one_check(ready):
    from failover.readiness.tasks import check_readiness

    result = check_readiness.apply().get()
    assert result["verdicts"] == {"KA": "not-ready", "WSL": "ready"}
    assert sorted(result["changed"]) == ["KA"]  # a first "ready" is no news

    out = io.StringIO()
    call_command("readiness", "--json", stdout=out)
    printed = json.loads(out.getvalue())
    assert printed["changed"] == []  # nothing changed since the task's check
    assert [(s["site"], s["verdict"]) for s in printed["sites"]] == [("KA", "not-ready"), ("WSL", "ready")]
    assert ReadinessCheck.objects.count() == 2


@pytest.mark.django_db
def test_the_latest_verdicts_and_site_states_come_in_four_queries_whatever_the_history(
    people, django_assert_max_num_queries
):
    now = timezone.now()
    for minutes in range(5, 0, -1):
        make_verdict("WSL", "not-ready", findings=BAD, at=now - dt.timedelta(minutes=minutes))
        make_verdict("KA", "ready", at=now - dt.timedelta(minutes=minutes))
    with django_assert_max_num_queries(4):  # sites, site states, verdicts, findings
        latest = readiness_latest()
        summary = [(r.site.code, r.state, len(r.findings), len(r.critical)) for r in latest]
    assert summary == [("KA", "ready", 0, 0), ("WSL", "not-ready", 2, 1)]


@pytest.mark.django_db
def test_a_verdict_holds_since_the_check_that_changed_it(people):
    t0 = timezone.now() - dt.timedelta(hours=3)
    make_verdict("WSL", "ready", at=t0, changed=True)
    make_verdict("WSL", "not-ready", findings=BAD, at=t0 + dt.timedelta(hours=1), changed=True)
    make_verdict("WSL", "not-ready", findings=BAD, at=t0 + dt.timedelta(hours=2))
    (wsl,) = [r for r in readiness_latest() if r.site.code == "WSL"]
    assert wsl.since == t0 + dt.timedelta(hours=1)
    assert wsl.as_dict()["findings"][0]["code"] == "bridge-missing"


@pytest.mark.django_db
def test_a_site_never_checked_says_so(people):
    make_verdict("WSL")
    make_verdict("KA").delete()
    ka = next(r for r in readiness_latest() if r.site.code == "KA")
    assert (ka.checked, ka.ready, ka.state) == (False, False, "unchecked")


@pytest.mark.django_db
def test_the_readiness_page_shows_each_sites_verdict_with_reasons_and_what_to_do(people, client):
    make_verdict("KA", "ready", changed=True)
    make_verdict("WSL", "not-ready", findings=BAD, changed=True)
    client.force_login(people["helpdesk"])
    page = client.get(reverse("reports:readiness")).content.decode()
    assert 'id="readiness-WSL" data-verdict="not-ready"' in page
    assert 'id="readiness-KA" data-verdict="ready"' in page
    assert "xenka01 lacks bridge(s) xenbr1" in page
    assert "fix bridge-missing" in page
    assert 'class="change-row" data-site="WSL" data-verdict="not-ready"' in page


@pytest.mark.django_db
def test_the_readiness_page_sends_anonymous_users_to_log_in(client):
    response = client.get(reverse("reports:readiness"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
