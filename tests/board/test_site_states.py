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

from .runs import build_run, failback_of

pytestmark = pytest.mark.django_db


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
    assert "No open disaster: every site is in service." in page


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


def test_the_open_disasters_say_which_site_is_away_and_which_run_says_so(as_role, users):
    client = as_role("helpdesk")
    failover = build_run(user=users["mod"], state=R.SUCCEEDED)
    runs = re.search(r'<section id="overview-runs".*?</section>', overview(client), re.S).group(0)
    text = " ".join(re.sub(r"<[^>]+>", "", runs).split())
    assert f"WSL: Failed over to KA by run {failover.pk}" in text
    assert f'href="/runs/{failover.pk}/"' in runs


def test_a_site_moved_away_without_a_disaster_is_never_beside_no_open_disaster(as_role, users):
    client = as_role("helpdesk")
    migration = build_run(user=users["mod"], kind="migration", state=R.SUCCEEDED)
    page = overview(client)
    assert "No open disaster" not in page
    runs = re.search(r'<section id="overview-runs".*?</section>', page, re.S).group(0)
    text = " ".join(re.sub(r"<[^>]+>", "", runs).split())
    assert (
        f"WSL: Failed over to KA by run {migration.pk} — its services run there "
        "(a planned migration: no disaster was declared)"
    ) in text

    failback_of(migration, state=R.SUCCEEDED)
    assert "No open disaster: every site is in service." in " ".join(
        re.sub(r"<[^>]+>", " ", overview(client)).split()
    )
