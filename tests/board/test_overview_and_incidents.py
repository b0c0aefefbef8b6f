"""The overview (sites, memory, open disasters, active runs, the last drill) and the
incident list (every disaster, run and drill, newest first, filterable)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from failover.choices import ActionStateChoices as A
from failover.choices import RunStateChoices as R
from failover.models import Action, Run

pytestmark = pytest.mark.django_db


def test_with_nothing_going_on_every_site_is_in_service_and_no_drill_is_a_warning(as_role, reference_estate):
    page = as_role("helpdesk").get(reverse("overview")).content.decode()
    assert page.count("In service") == 2
    assert "No open disaster: every site is in service." in page and "No run is active." in page
    assert "No drill yet" in page
    assert "Memory in normal operation" in page and 'class="hostbar"' in page


def test_during_a_failover_the_lost_site_its_run_progress_and_its_memory_show(
    as_role, reference_estate, make_run
):
    run = make_run(per_step=2)
    Action.objects.filter(run=run, step__number__in=(0, 1, 2)).update(state=A.SUCCEEDED)
    page = as_role("helpdesk").get(reverse("overview")).content.decode()
    assert f"Lost — failing over to KA (run {run.pk}, running)" in page
    assert f"Run {run.pk}: Failover WSL → KA" in page
    assert "6 of 14 actions done (43 %)" in page
    assert "Memory while WSL is lost" in page
    assert 'hx-trigger="every 5s"' in page  # the active runs refresh themselves


def test_after_the_failover_the_site_reads_as_failed_over_with_its_services_elsewhere(
    as_role, reference_estate, make_run
):
    failover = make_run(state=R.SUCCEEDED)
    drill = make_run(kind="drill", state=R.SUCCEEDED)
    page = as_role("helpdesk").get(reverse("overview")).content.decode()
    assert f"Failed over to KA by run {failover.pk} — its services run there" in page
    assert "No run is active." in page and 'hx-trigger="every 5s"' not in page
    assert f"Run {drill.pk}: WSL → KA" in page  # the last drill


def test_incidents_list_every_run_newest_first_with_who_when_and_duration(as_role, make_run, users):
    older = make_run(state=R.SUCCEEDED)
    Run.objects.filter(pk=older.pk).update(
        created_at=timezone.now() - dt.timedelta(days=2),
        finished_at=timezone.now() - dt.timedelta(days=2) + dt.timedelta(minutes=42),
    )
    drill = make_run(kind="drill", user=users["dradmin"])
    page = as_role("helpdesk").get(reverse("incidents")).content.decode()
    assert page.index(f'id="incident-{drill.pk}"') < page.index(f'id="incident-{older.pk}"')
    assert "42 min 00 s" in page
    assert "dradmin" in page and "mod" in page
    assert "Drill" in page and "Failover" in page


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ({"kind": "drill"}, "drill", "failover"),
        ({"state": "active"}, "drill", "failover"),
        ({"state": "succeeded"}, "failover", "drill"),
        ({"until": (timezone.localdate() - dt.timedelta(days=1)).isoformat()}, "failover", "drill"),
    ],
)
def test_incidents_are_filterable(as_role, make_run, query, shown, hidden):
    runs = {"failover": make_run(state=R.SUCCEEDED), "drill": make_run(kind="drill")}
    Run.objects.filter(pk=runs["failover"].pk).update(created_at=timezone.now() - dt.timedelta(days=3))
    response = as_role("helpdesk").get(reverse("incidents"), query, HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert page.lstrip().startswith('<div id="incident-table">')  # htmx gets the table alone
    assert f'id="incident-{runs[shown].pk}"' in page
    assert f'id="incident-{runs[hidden].pk}"' not in page


def test_a_long_incident_list_is_paged(as_role, make_run, users):
    for _ in range(3):
        make_run(per_step=0, state=R.SUCCEEDED)
    from failover.board import overview as board

    page = board.incident_page(per_page=2, page=2)
    assert page.number == 2 and len(page.object_list) == 1 and page.paginator.num_pages == 2
