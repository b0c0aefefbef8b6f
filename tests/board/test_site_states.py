"""Issue 17 item 1: every site's state through the whole life of a disaster, from one
place (failover.runs.sitestate), the same on the overview and the board: in service, lost,
failed over to X, failing back, home again, each with the run that says so."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from failover.choices import RunStateChoices as R
from failover.models import Run
from failover.runs.sitestate import site_states

from .runs import build_run

pytestmark = pytest.mark.django_db


def failback_of(failover: Run, *, state: str) -> Run:
    """A failback as failback_start makes it: from the surviving site back home."""
    return Run.objects.create(
        kind="failback",
        mode="planned",
        state=state,
        lost_site=failover.target_site,
        target_site=failover.lost_site,
        created_by=failover.created_by,
        parent=failover,
    )


def card(page: str, code: str) -> str:
    """The text of one site's card on the overview."""
    match = re.search(rf'<article class="card site site-[\w-]+" id="site-{code}">(.*?)</article>', page, re.S)
    assert match, f"no card for {code}"
    return re.sub(r"<[^>]+>", "", match.group(1))


def overview(client) -> str:
    return client.get(reverse("overview")).content.decode()


def test_the_overview_follows_the_whole_life_of_a_disaster(as_role, users):
    client = as_role("helpdesk")
    failover = build_run(user=users["mod"], state=R.RUNNING)
    page = overview(client)
    assert f"Lost — failing over to KA (run {failover.pk}, running)" in card(page, "WSL")
    assert "In service" in card(page, "KA") and "Lost" not in card(page, "KA")
    assert "No open disaster" not in page

    Run.objects.filter(pk=failover.pk).update(state=R.SUCCEEDED)
    page = overview(client)
    assert f"Failed over to KA by run {failover.pk} — its services run there" in card(page, "WSL")
    assert "In service" in card(page, "KA")
    assert "No open disaster" not in page  # the site is still away: its disaster is open

    first = failback_of(failover, state=R.RUNNING)
    page = overview(client)
    assert f"Failing back from KA (run {first.pk}, running)" in card(page, "WSL")
    assert "In service" in card(page, "KA") and "Lost" not in card(page, "KA")

    Run.objects.filter(pk=first.pk).update(state=R.ABORTED)
    page = overview(client)
    wsl = card(page, "WSL")
    assert f"Failed over to KA by run {failover.pk}" in wsl
    assert f"Failback run {first.pk} aborted: fail back again from run {failover.pk}" in wsl
    assert "In service" in card(page, "KA") and "Lost" not in card(page, "KA")

    second = failback_of(failover, state=R.SUCCEEDED)
    page = overview(client)
    assert f"In service — home again since failback run {second.pk}" in card(page, "WSL")
    assert "Lost" not in page
    assert "No open disaster." in page


def test_an_aborted_failover_leaves_the_site_lost_with_its_run(users):
    failover = build_run(user=users["mod"], state=R.ABORTED)
    wsl, ka = site_states()[1], site_states()[0]
    assert (wsl.site.code, wsl.state, wsl.run) == ("WSL", "lost", failover)
    assert f"failover to KA stopped: run {failover.pk} aborted" in wsl.label
    assert ka.state == "in-service"


def test_a_drill_does_not_change_a_site_state(users):
    build_run(user=users["mod"], kind="drill", state=R.SUCCEEDED)
    assert [s.state for s in site_states()] == ["in-service", "in-service"]


def test_site_states_cost_two_queries_whatever_the_history(users, django_assert_max_num_queries):
    for _ in range(3):
        failover = build_run(user=users["mod"], state=R.SUCCEEDED)
        failback_of(failover, state=R.ABORTED)
        failback_of(failover, state=R.SUCCEEDED)
    with django_assert_max_num_queries(2):
        states = site_states()
    assert [s.state for s in states] == ["in-service", "home-again"]
