"""Declaring a disaster through the API: against the lab for the real plan, without it for
input errors. No worker: the run is created and enqueued, nobody runs it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from failover.models import Disaster, Run
from tests.engine.conftest import lose_wsl
from tests.factories import SiteFactory

from .conftest import token_client

DECLARE = {"lost_site": "WSL", "disaster_class": 2, "category": "power", "confirm_isolated": True}


def _post(client, url, body):
    return client.post(url, body, content_type="application/json")


@pytest.mark.django_db(transaction=True)
def test_the_mod_declares_with_the_previewed_plan_and_a_second_declaration_leads_to_the_same_run(
    lab, estate, clean_redis
):
    lose_wsl(lab)
    mod = token_client(estate["mod"])
    preview = mod.get(reverse("api:plan"), {"lost_site": "WSL"})
    assert preview.status_code == 200
    plan = preview.json()
    assert plan["plan"]["target_site"] == "KA" and plan["plan"]["blocking"] == []
    assert {s["vm"] for s in plan["plan"]["starts"]} == {"dns-xen01", "proxy-xen01", "rsync-xen01"}

    response = _post(
        mod, reverse("api:declare"), {**DECLARE, "plan_digest": plan["digest"], "notes": "drill?"}
    )
    assert response.status_code == 201, response.json()
    run = response.json()
    assert run["kind"] == "failover" and run["state"] == "running"
    assert (run["lost_site"], run["target_site"]) == ("WSL", "KA")
    assert [s["number"] for s in run["steps"]] == [0, 1, 2, 3, 4, 5, 6]
    assert run["deadline"] is not None
    disaster = Disaster.objects.get()
    assert (
        disaster.declared_by == estate["mod"] and disaster.category == "power" and disaster.notes == "drill?"
    )
    assert disaster.isolation_confirmed_by == estate["mod"]

    again = _post(mod, reverse("api:declare"), DECLARE)
    assert again.status_code == 200
    assert again.json()["run"] == run["run"]
    assert Run.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_services_refusals_come_back_as_field_errors_and_a_changed_plan_as_409(lab, estate, clean_redis):
    lose_wsl(lab)
    mod = token_client(estate["mod"])
    unconfirmed = _post(mod, reverse("api:declare"), {**DECLARE, "confirm_isolated": False})
    assert unconfirmed.status_code == 400
    assert "confirm that WSL is isolated" in unconfirmed.json()["confirm_isolated"][0]
    stale = _post(mod, reverse("api:declare"), {**DECLARE, "plan_digest": "0" * 16})
    assert stale.status_code == 409 and "plan_digest" in stale.json()
    assert not Run.objects.exists()


@pytest.fixture
def sites(db):
    """Enough estate for input checks, which come before any look at it."""
    SiteFactory(code="WSL", name="Wiesloch")
    SiteFactory(code="KA", name="Karlsruhe", role="alternate")


@pytest.mark.django_db
def test_a_bad_category_is_a_400_naming_the_field_and_nothing_is_declared(sites, api_as):
    response = _post(api_as("mod"), reverse("api:declare"), {**DECLARE, "category": "meteor"})
    assert response.status_code == 400
    assert response.json() == {"category": ['"meteor" is not a valid choice.']}
    assert not Disaster.objects.exists()


@pytest.mark.django_db
def test_an_unknown_site_or_class_is_a_400_before_any_look_at_the_estate(sites, api_as):
    response = _post(
        api_as("mod"), reverse("api:declare"), {**DECLARE, "lost_site": "MARS", "disaster_class": 7}
    )
    assert response.status_code == 400
    assert set(response.json()) == {"lost_site", "disaster_class"}


@pytest.mark.django_db
def test_a_wrong_approver_password_is_a_400_on_the_approver(sites, api_as, settings):
    settings.DRPORTAL_FOUR_EYES = True
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, for a test
    body = {**DECLARE, "approver_username": "mod", "approver_password": "wrong"}
    response = _post(api_as("mod"), reverse("api:declare"), body)
    assert response.status_code == 400
    assert response.json() == {"approver_username": ["wrong user name or password"]}


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["approver_username", "approver_password"])
def test_with_four_eyes_off_approver_fields_are_refused_and_no_password_is_tried(
    sites, api_as, settings, field
):
    """Otherwise any MoD token could test any user's password through the declare call."""
    settings.DRPORTAL_FOUR_EYES = False
    from axes.models import AccessAttempt

    response = _post(api_as("mod"), reverse("api:declare"), {**DECLARE, field: "dradmin"})
    assert response.status_code == 400
    assert "four-eyes rule is off" in response.json()[field][0]
    assert not AccessAttempt.objects.exists()
    assert not Disaster.objects.exists()


@pytest.mark.django_db
def test_an_api_client_locked_out_by_wrong_approver_passwords_gets_429_as_json(sites, api_as, settings):
    settings.DRPORTAL_FOUR_EYES = True
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, for a test
    client = api_as("mod")
    body = {**DECLARE, "approver_username": "dradmin", "approver_password": "wrong"}
    answers = [_post(client, reverse("api:declare"), body) for _ in range(settings.AXES_FAILURE_LIMIT)]
    locked = answers[-1]
    assert locked.status_code == 429
    assert locked["Content-Type"].startswith("application/json")
    detail = locked.json()["detail"]
    assert "dradmin" in detail and "locked out" in detail and "minutes" in detail


@pytest.mark.django_db
def test_helpdesk_and_dr_admin_cannot_declare_a_valid_disaster(sites, api_as):
    for role in ("helpdesk", "dradmin"):
        response = _post(api_as(role), reverse("api:declare"), DECLARE)
        assert response.status_code == 403, role
    assert not Disaster.objects.exists()


@pytest.mark.django_db
def test_a_drill_that_cannot_reach_the_surviving_site_is_refused_naming_the_problem(api_as, reference_estate):
    response = _post(api_as("mod"), reverse("api:drills"), {"site": "WSL"})
    assert response.status_code == 400
    assert "unreachable" in response.json()["override_reason"][0]


def test_a_drill_of_an_unknown_site_names_the_field(api_as):
    response = _post(api_as("mod"), reverse("api:drills"), {"site": "XX"})
    assert response.status_code == 400
    assert response.json() == {"site": ["no site 'XX'"]}
