"""A run's report (HTML, PDF) and the auditors' index, on runs written like the engine
writes them: who may read them, what they show, and how many queries they cost."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from failover.choices import ActionStateChoices
from failover.engine.journal import record_event
from failover.models import Run
from failover.reports.build import report_index, run_report
from failover.runs import controls
from tests.board.runs import build_run

from .conftest import pdf_text, squash

pytestmark = pytest.mark.django_db


def _finish(run: Run, *, recovery_s: float, met: bool | None = True) -> Run:
    finished = run.created_at + dt.timedelta(seconds=recovery_s)
    Run.objects.filter(pk=run.pk).update(
        state="succeeded",
        finished_at=finished,
        summary={"recovery_seconds": recovery_s, "run_seconds": recovery_s, "deadline_met": met},
    )
    run.refresh_from_db()
    return run


def _urls(run: Run) -> dict[str, str]:
    return {
        "html": reverse("reports:run", args=[run.pk]),
        "pdf": reverse("reports:run-pdf", args=[run.pk]),
        "index": reverse("reports:index"),
    }


def test_every_role_that_sees_runs_reads_the_report_and_the_index(users, client):
    run = build_run(user=users["mod"], per_step=1)
    for role in ("helpdesk", "mod", "dradmin"):
        client.force_login(users[role])
        for name, url in _urls(run).items():
            response = client.get(url)
            assert response.status_code == 200, f"{name} as {role}: {response.status_code}"


def test_anonymous_users_are_sent_to_log_in(users, client):
    run = build_run(user=users["mod"], per_step=1)
    for url in _urls(run).values():
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url


def test_a_user_without_a_role_is_refused(users, client, django_user_model):
    run = build_run(user=users["mod"], per_step=1)
    client.force_login(django_user_model.objects.create_user("nobody"))
    assert {client.get(url).status_code for url in _urls(run).values()} == {403}


def test_the_report_of_a_run_that_does_not_exist_is_404(users, client):
    client.force_login(users["helpdesk"])
    assert client.get(reverse("reports:run", args=[999999])).status_code == 404
    assert client.get(reverse("reports:run-pdf", args=[999999])).status_code == 404


def test_the_report_shows_the_declaration_and_the_recovery_time_against_the_deadline(users, client):
    run = _finish(build_run(user=users["mod"], per_step=1), recovery_s=5400.0)
    client.force_login(users["helpdesk"])
    page = squash(client.get(reverse("reports:run", args=[run.pk])).content.decode())
    assert f"Run {run.pk}: Failover of WSL to KA" in page
    assert "2 – Emergency" in page and "Power and generator failure" in page
    assert "confirmed by mod" in page
    assert "no second approval" in page
    assert "1 h 30 min (5400.0 s), counted from" in page
    assert 'class="deadline-met"><span class="state tone-ok"' in page


def test_the_report_lists_overrides_skips_and_hand_marked_actions_with_their_reasons(users, client):
    run = build_run(user=users["mod"], per_step=1, action_state=ActionStateChoices.FAILED)
    skipped, done = list(run.actions.order_by("pk")[:2])
    Run.objects.filter(pk=run.pk).update(
        overrides=[
            {
                "problem": "xenka01 lacks bridge(s) xenbr1",
                "code": "bridge",
                "reason": "VLAN moved by hand",
                "by": "mod",
            }
        ]
    )
    with transaction.atomic():
        record_event(
            run_id=run.pk, kind="override", message="Blocking problem overridden by mod", user=users["mod"]
        )
    controls.action_skip(user=users["mod"], action_id=skipped.pk, reason="the vendor restores it")
    controls.action_mark_done(user=users["mod"], action_id=done.pk, reason="started from the console")
    client.force_login(users["dradmin"])
    page = squash(client.get(reverse("reports:run", args=[run.pk])).content.decode())
    assert '<tr class="override-row"><td>xenka01 lacks bridge(s) xenbr1' in page
    assert "VLAN moved by hand" in page
    assert 'data-kind="action_skipped"' in page and "reason: the vendor restores it" in page
    assert 'data-kind="action_marked_done_by_hand"' in page and "reason: started from the console" in page
    assert "<strong>Reason:</strong> the vendor restores it" in page  # on the action too


def test_the_functional_test_table_shows_ok_and_down_with_the_details(users, client):
    run = build_run(user=users["mod"], per_step=1, checks=4)
    client.force_login(users["helpdesk"])
    page = squash(client.get(reverse("reports:run", args=[run.pk])).content.decode())
    assert page.count('<tr class="check-row" data-outcome="ok">') == 2
    assert page.count('<tr class="check-row" data-outcome="down">') == 2
    assert "connection refused" in page


def test_every_action_is_shown_with_its_commands_and_attempts(users, client):
    run = build_run(user=users["mod"], per_step=2)
    client.force_login(users["helpdesk"])
    page = squash(client.get(reverse("reports:run", args=[run.pk])).content.decode())
    assert page.count('<tbody class="action" id="action-') == 14
    assert "[xenka01] $ xl list -&gt; exit 0 line 1" in page


def test_the_report_reads_a_run_in_four_queries_whatever_its_size(users, django_assert_max_num_queries):
    run = build_run(user=users["mod"], per_step=15, checks=20, events=50)
    with django_assert_max_num_queries(4):
        render_to_string("failover/report_body.html", {"report": run_report(run_id=run.pk)})


def test_the_pdf_is_a_pdf_named_after_the_run_with_its_figures(users, client):
    run = _finish(build_run(user=users["mod"], per_step=1, checks=2), recovery_s=42.25)
    client.force_login(users["helpdesk"])
    response = client.get(reverse("reports:run-pdf", args=[run.pk]))
    assert response["Content-Type"] == "application/pdf"
    assert f'filename="drportal-run-{run.pk}-failover-WSL-' in response["Content-Disposition"]
    assert response.content.startswith(b"%PDF")
    text = pdf_text(response.content)
    assert f"Run {run.pk}: Failover of WSL to KA" in text
    assert "42.2 s, counted from" in text
    assert "vm-1" in text and "connection refused" in text


def test_the_index_lists_runs_and_drills_with_who_when_recovery_time_and_deadline(users, client):
    failover = _finish(build_run(user=users["mod"], per_step=1), recovery_s=5400.0)
    late = _finish(build_run(user=users["mod"], per_step=1), recovery_s=90000.0, met=False)
    drill = _finish(build_run(user=users["mod"], per_step=1, kind="drill"), recovery_s=600.0, met=None)
    running = build_run(user=users["mod"], per_step=1)
    client.force_login(users["helpdesk"])
    page = squash(client.get(reverse("reports:index")).content.decode())
    for run in (failover, late, drill, running):
        assert f'<tr class="run-row" data-run="{run.pk}" data-kind="{run.kind}">' in page
    assert "1 h 30 min (5400.0 s)" in page and "10 min 00 s (600.0 s)" in page
    assert page.count('class="deadline-met"><span class="state tone-ok"') == 1
    assert page.count('class="deadline-met"><span class="state tone-bad"') == 1
    # How often tested: one successful drill of WSL in the last twelve months.
    assert '<tr class="site-row" data-site="WSL"><td>WSL (Wiesloch)</td><td>1</td>' in page


def test_the_index_sums_up_recovery_times_per_kind(users):
    for seconds in (100.0, 300.0, 200.0):
        _finish(build_run(user=users["mod"], per_step=0, kind="drill"), recovery_s=seconds, met=None)
    index = report_index()
    drills = next(k for k in index.kinds if k.kind == "drill")
    assert (drills.total, drills.succeeded, drills.median_recovery_s, drills.max_recovery_s) == (
        3,
        3,
        200.0,
        300.0,
    )
    assert next(s for s in index.sites if s.site.code == "WSL").drills_last_year == 3


def test_the_index_filters_by_kind_and_costs_a_fixed_number_of_queries(users, django_assert_max_num_queries):
    for _ in range(3):
        build_run(user=users["mod"], per_step=0)
        build_run(user=users["mod"], per_step=0, kind="drill")
    with django_assert_max_num_queries(6):
        index = report_index(kind="drill")
        render_to_string("failover/report_index.html", {"index": index})
    assert {row.run.kind for row in index.rows} == {"drill"} and len(index.rows) == 3


def test_a_drill_older_than_a_year_does_not_count_as_tested_this_year(users):
    old = _finish(build_run(user=users["mod"], per_step=0, kind="drill"), recovery_s=60.0, met=None)
    Run.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=400))
    wsl = next(s for s in report_index().sites if s.site.code == "WSL")
    assert (wsl.drills_last_year, wsl.last_drill_at is not None) == (0, True)
