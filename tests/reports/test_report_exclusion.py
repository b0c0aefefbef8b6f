"""Issue 17 item 6, second half: runs marked as an exercise or as bad data stay listed but
are left out of the figures (median and longest recovery, drills per site, failovers),
and the index says how many were left out. The MoD or a DR admin marks a run on its
report page (a small POST) or in the admin; the helpdesk cannot."""

from __future__ import annotations

import pytest
from django.urls import reverse

from failover.models import Run, RunEvent
from failover.reports.build import report_index
from tests.board.runs import build_run

from .conftest import squash
from .test_report_pages import _finish

pytestmark = pytest.mark.django_db


def _failovers(users, *seconds: float) -> list[Run]:
    return [_finish(build_run(user=users["mod"], per_step=0), recovery_s=s) for s in seconds]


def test_a_run_marked_as_bad_data_is_left_out_of_the_median_and_the_longest_recovery(users):
    runs = _failovers(users, 100.0, 200.0, 440_528_400.0)  # the last: "noticed at 1999-01-01"
    Run.objects.filter(pk=runs[2].pk).update(report_exclusion="bad-data")
    failovers = next(k for k in report_index().kinds if k.kind == "failover")
    assert (failovers.median_recovery_s, failovers.max_recovery_s) == (150.0, 200.0)
    assert (failovers.total, failovers.succeeded, failovers.left_out) == (2, 2, 1)
    assert next(s for s in report_index().sites if s.site.code == "WSL").failovers == 2


def test_a_drill_marked_as_an_exercise_does_not_count_as_a_test_of_the_site(users):
    drill = _finish(build_run(user=users["mod"], per_step=0, kind="drill"), recovery_s=60.0, met=None)
    Run.objects.filter(pk=drill.pk).update(report_exclusion="exercise")
    wsl = next(s for s in report_index().sites if s.site.code == "WSL")
    assert (wsl.drills_last_year, wsl.last_drill_at) == (0, None)


def test_the_index_says_how_many_runs_were_left_out_and_marks_them_in_the_list(users, client):
    runs = _failovers(users, 100.0, 200.0)
    Run.objects.filter(pk=runs[1].pk).update(report_exclusion="exercise")
    client.force_login(users["helpdesk"])
    page = squash(client.get(reverse("reports:index")).content.decode())
    assert "1 run left out of these figures (marked as an exercise or as bad data)" in page
    assert f'<tr class="run-row" data-run="{runs[1].pk}" data-kind="failover">' in page
    assert "left out: an exercise" in page


@pytest.mark.parametrize("role", ["mod", "dradmin"])
def test_the_mod_or_a_dr_admin_marks_a_run_on_its_report_page_and_the_log_says_who(users, client, role):
    (run,) = _failovers(users, 100.0)
    client.force_login(users[role])
    url = reverse("reports:run-exclusion", args=[run.pk])
    report = client.get(reverse("reports:run", args=[run.pk])).content.decode()
    assert f'action="{url}"' in report and 'name="report_exclusion"' in report
    response = client.post(url, {"report_exclusion": "bad-data"})
    assert response.status_code == 302 and response["Location"] == reverse("reports:run", args=[run.pk])
    run.refresh_from_db()
    assert run.report_exclusion == "bad-data"
    event = RunEvent.objects.filter(run=run, kind="report-exclusion").get()
    assert event.user == users[role] and "bad data" in event.message
    page = squash(client.get(reverse("reports:run", args=[run.pk])).content.decode())
    assert "Left out of the reports' figures: bad data" in page
    assert client.post(url, {"report_exclusion": ""}).status_code == 302
    run.refresh_from_db()
    assert run.report_exclusion == ""


def test_the_helpdesk_may_not_mark_a_run_and_sees_no_form(users, client):
    (run,) = _failovers(users, 100.0)
    client.force_login(users["helpdesk"])
    url = reverse("reports:run-exclusion", args=[run.pk])
    assert 'name="report_exclusion"' not in client.get(reverse("reports:run", args=[run.pk])).content.decode()
    assert client.post(url, {"report_exclusion": "bad-data"}).status_code == 403
    run.refresh_from_db()
    assert run.report_exclusion == ""


def test_an_unknown_mark_is_refused_naming_the_field(users, client):
    (run,) = _failovers(users, 100.0)
    client.force_login(users["mod"])
    response = client.post(reverse("reports:run-exclusion", args=[run.pk]), {"report_exclusion": "typo"})
    assert response.status_code == 422
    body = response.content.decode()
    assert "Left out of the reports" in body and "typo" in body and "not one of the choices" in body
    run.refresh_from_db()
    assert run.report_exclusion == ""


def test_the_mod_marks_a_run_in_the_admin_and_the_helpdesk_is_kept_out(users, client):
    (run,) = _failovers(users, 100.0)
    change = reverse("admin:failover_runreportmark_change", args=[run.pk])
    client.force_login(users["helpdesk"])
    assert client.get(change).status_code == 302  # to the admin's login: not for the helpdesk
    assert client.post(change, {"report_exclusion": "exercise"}).status_code == 302
    run.refresh_from_db()
    assert run.report_exclusion == ""
    client.force_login(users["mod"])
    page = client.get(change)
    assert page.status_code == 200 and b'name="report_exclusion"' in page.content
    assert b'name="state"' not in page.content  # nothing else of the run is editable
    assert client.post(change, {"report_exclusion": "exercise"}).status_code == 302
    run.refresh_from_db()
    assert run.report_exclusion == "exercise"
    assert RunEvent.objects.filter(run=run, kind="report-exclusion", user=users["mod"]).exists()
