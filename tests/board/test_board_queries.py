"""The board's pages and partials run a fixed number of queries, however big the run
(no N+1 as runs grow): a run of 300 actions costs what a run of 7 costs."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from failover.choices import ActionStateChoices as A
from failover.choices import StepStateChoices as S
from failover.models import Action

pytestmark = pytest.mark.django_db

# Per request, with the session, the user and its groups and permissions included.
# (Measured: board 17, the header 8 (its follow-up runs and where the site stands now),
# each other partial 6, overview 17, incidents 8; one spare each.)
BOUNDS = {
    "run-board": 18,
    "header": 9,
    "steps": 7,
    "actions": 7,
    "log": 7,
    "checks": 7,
    # The estate's capacity summary reads VMs, groups, hosts, arrays and sites one table each
    # (hosts.selectors.estate_vms: 5,000 VMs must not be 40,000 joined copies): 4 more than
    # one joined read, and still fixed however many runs pile up (checked below).
    "overview": 22,
    "incidents": 9,
}


def _big_run(make_run):
    run = make_run(per_step=40, checks=20, events=300, step_states={0: S.DONE, 1: S.RUNNING})
    Action.objects.filter(run=run, step__number=0).update(state=A.SUCCEEDED)
    Action.objects.filter(run=run, step__number=1).update(state=A.FAILED, error="boom")
    return run


def _count(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.status_code
    return len(queries)


@pytest.mark.parametrize("role", ["helpdesk", "mod"])
def test_the_board_page_of_a_run_of_300_actions_stays_within_its_query_bound(
    as_role, make_run, role, django_assert_max_num_queries
):
    client = as_role(role)
    run = _big_run(make_run)
    assert Action.objects.filter(run=run).count() == 300
    with django_assert_max_num_queries(BOUNDS["run-board"]):
        response = client.get(reverse("run-board", args=[run.pk]))
    assert response.status_code == 200
    # A page of each step's list: 25 of 40 in every step, and step 6's 10 failed (optional)
    # functional tests listed first as needing a decision (tests/board/test_board_scale.py).
    assert response.content.decode().count('id="action-') == 7 * 25 + 10


@pytest.mark.parametrize("part", ["header", "steps", "actions", "log", "checks"])
def test_each_partial_stays_within_its_query_bound(as_role, make_run, part, django_assert_max_num_queries):
    client = as_role("mod")
    run = _big_run(make_run)
    with django_assert_max_num_queries(BOUNDS[part]):
        assert client.get(reverse("run-part", args=[run.pk, part])).status_code == 200


@pytest.mark.parametrize("name", ["run-board", "header", "steps", "actions", "log", "checks"])
def test_a_big_run_costs_as_many_queries_as_a_small_one(as_role, make_run, name):
    client = as_role("mod")
    small, big = make_run(per_step=1, events=1), _big_run(make_run)

    def url(run):
        return (
            reverse("run-board", args=[run.pk])
            if name == "run-board"
            else reverse("run-part", args=[run.pk, name])
        )

    _count(client, url(small))  # warm the session and permission caches alike
    assert _count(client, url(big)) == _count(client, url(small))


def test_the_overview_and_the_incident_list_stay_within_their_bounds_as_runs_pile_up(
    as_role, make_run, django_assert_max_num_queries
):
    client = as_role("helpdesk")
    for _ in range(3):
        make_run(per_step=5)
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("overview"))
        client.get(reverse("incidents"))
    for _ in range(12):
        make_run(per_step=5, kind="drill")
    with django_assert_max_num_queries(BOUNDS["overview"]):
        assert client.get(reverse("overview")).status_code == 200
    with django_assert_max_num_queries(BOUNDS["incidents"]):
        assert client.get(reverse("incidents")).status_code == 200
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("overview"))
        client.get(reverse("incidents"))
    assert len(many) == len(few)
