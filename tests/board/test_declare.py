"""Declaring a disaster on the web: class and category with their descriptions, the plan
preview from the lab, isolation, overrides, four eyes, then straight to the board."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse

from failover.models import Disaster, Run, RunEvent
from hosts.permissions import ROLE_MOD
from tests.engine.conftest import lose_wsl

FORM = {
    "lost_site": "WSL",
    "disaster_class": "2",
    "category": "power",
    "detected_at": "",
    "notes": "",
}


def _form(**extra) -> dict:
    from django.utils import timezone

    data = dict(FORM, detected_at=timezone.localtime().strftime("%Y-%m-%dT%H:%M"))
    data.update(extra)
    return data


def _digest(client) -> str:
    page = client.get(reverse("declare"), {"lost_site": "WSL"}, HTTP_HX_REQUEST="true").content.decode()
    return re.search(r'name="plan_digest" value="([0-9a-f]+)"', page).group(1)


@pytest.mark.django_db
def test_the_declare_page_offers_thesis_classes_and_categories_with_descriptions(as_role, reference_estate):
    page = as_role("mod").get(reverse("declare")).content.decode()
    assert "1 – Catastrophe" in page and "2 – Emergency" in page and "3 – Failure" in page
    assert "nuclear accident" in page and "hardware defect" in page
    assert "Cooling failure (about 2 h)" in page and "Declare within about 2 h" in page
    assert "noticed by the security control centre" in page
    assert 'name="lost_site"' in page and 'value="WSL"' in page
    assert "Show the plan" in page and "declare-button" not in page  # no declaring before the plan


@pytest.mark.django_db(transaction=True)
def test_the_preview_shows_the_plan_from_the_surviving_site(client, lab, estate):
    lose_wsl(lab)
    client.force_login(estate["mod"])
    response = client.get(reverse("declare"), {"lost_site": "WSL"}, HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert response.status_code == 200
    assert page.lstrip().startswith('<section id="plan"')  # htmx gets the preview alone
    assert "The plan for the loss of WSL" in page
    assert "Everything fails over to KA" in page
    assert "3 VMs start" in page and "3 VMs already run there" in page
    assert "No blocking problems" in page
    assert "proxy-xen01" in page and "dasi-xen01" in page
    assert 'name="confirm_isolated"' in page and 'id="declare-button"' in page
    assert not Run.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_declaration_without_isolation_or_against_a_changed_plan_is_refused_and_starts_nothing(
    client, lab, estate
):
    lose_wsl(lab)
    client.force_login(estate["mod"])
    digest = _digest(client)
    unconfirmed = client.post(reverse("declare"), _form(plan_digest=digest))
    assert unconfirmed.status_code == 422
    assert "confirm that WSL is isolated" in unconfirmed.content.decode()
    stale = client.post(reverse("declare"), _form(plan_digest="0" * 16, confirm_isolated="on"))
    assert stale.status_code == 422
    assert "The plan has changed since it was shown" in stale.content.decode()
    unseen = client.post(reverse("declare"), _form(confirm_isolated="on"))
    assert unseen.status_code == 422
    assert not Run.objects.exists() and not Disaster.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.sqlite
def test_a_declaration_goes_straight_to_the_run_board_and_is_audited(client, lab, estate):
    lose_wsl(lab)
    client.force_login(estate["mod"])
    response = client.post(
        reverse("declare"),
        _form(plan_digest=_digest(client), confirm_isolated="on", notes="generator on fire"),
    )
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("run-board", args=[run.pk])
    disaster = run.disaster
    assert (disaster.disaster_class, disaster.category, disaster.notes) == (2, "power", "generator on fire")
    assert disaster.declared_by == estate["mod"] and disaster.isolation_confirmed_by == estate["mod"]
    started = RunEvent.objects.get(run=run, seq=1)
    assert started.kind == "run_started" and started.user == estate["mod"]
    board = client.get(response["Location"]).content.decode()
    assert f"Run {run.pk}: Failover WSL → KA" in board


@pytest.mark.django_db(transaction=True)
def test_blocking_problems_need_a_typed_reason_which_the_run_keeps(client, lab, estate):
    lose_wsl(lab)
    lab.fault("xenka01", "down")  # the surviving dom0 does not answer: a blocking problem
    client.force_login(estate["mod"])
    preview = client.get(reverse("declare"), {"lost_site": "WSL"}, HTTP_HX_REQUEST="true").content.decode()
    assert "Blocking problems" in preview and "xenka01 at the surviving site is unreachable" in preview
    assert 'name="override_reason"' in preview
    digest = re.search(r'name="plan_digest" value="([0-9a-f]+)"', preview).group(1)
    refused = client.post(reverse("declare"), _form(plan_digest=digest, confirm_isolated="on"))
    assert refused.status_code == 422 and "override with a typed reason" in refused.content.decode()
    assert not Run.objects.exists()
    accepted = client.post(
        reverse("declare"),
        _form(plan_digest=digest, confirm_isolated="on", override_reason="KA console says it is up"),
    )
    assert accepted.status_code == 302
    run = Run.objects.get()
    assert run.overrides and run.overrides[0]["reason"] == "KA console says it is up"
    assert RunEvent.objects.filter(run=run, kind="override", user=estate["mod"]).exists()


@pytest.mark.django_db(transaction=True)
def test_with_four_eyes_a_second_manager_on_duty_approves_with_a_password(client, lab, estate, settings):
    settings.DRPORTAL_FOUR_EYES = True
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    second = get_user_model().objects.create_user("mod2", password="second")
    second.groups.set([Group.objects.get(name=ROLE_MOD)])
    estate["mod"].set_password("x")
    estate["mod"].save()
    lose_wsl(lab)
    client.force_login(estate["mod"])
    preview = client.get(reverse("declare"), {"lost_site": "WSL"}, HTTP_HX_REQUEST="true").content.decode()
    assert "Four-eyes rule" in preview and 'name="approver_password"' in preview
    digest = re.search(r'name="plan_digest" value="([0-9a-f]+)"', preview).group(1)
    base = _form(plan_digest=digest, confirm_isolated="on")
    wrong = client.post(
        reverse("declare"), {**base, "approver_username": "mod2", "approver_password": "nope"}
    )
    assert wrong.status_code == 422 and "Wrong user name or password" in wrong.content.decode()
    myself = client.post(reverse("declare"), {**base, "approver_username": "mod", "approver_password": "x"})
    assert myself.status_code == 422 and "another Manager on Duty" in myself.content.decode()
    assert not Run.objects.exists()
    approved = client.post(
        reverse("declare"), {**base, "approver_username": "mod2", "approver_password": "second"}
    )
    assert approved.status_code == 302
    assert Disaster.objects.get().approved_by == second
