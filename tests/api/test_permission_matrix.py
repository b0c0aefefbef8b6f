"""Every API endpoint against every role, with token authentication: the UI's rules.

Everyone with a role reads; only the Manager on Duty declares, previews plans and starts
drills; no credentials is a 401 in JSON, never a login redirect. A new API URL must be
added here or this test fails."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.board.runs import build_run

from .conftest import token_client

pytestmark = pytest.mark.django_db

ROLES = (None, "norole", "helpdesk", "mod", "dradmin")
EVERY_ROLE = {"norole": 403, "helpdesk": 200, "mod": 200, "dradmin": 200}
ONLY_MOD = {"norole": 403, "helpdesk": 403, "dradmin": 403}
NOT_BY_THE_MATRIX = {"metrics"}  # not DRF, not by role: see test_metrics.py


def _matrix(run_id: int) -> dict:
    """name: (method, url, JSON body or None, {role: status}); no credentials: always 401."""
    return {
        "schema": ("get", reverse("api:schema"), None, {**EVERY_ROLE, "norole": 200}),
        "sites": ("get", reverse("api:sites"), None, EVERY_ROLE),
        "hosts": ("get", reverse("api:hosts"), None, EVERY_ROLE),
        "vms": ("get", reverse("api:vms"), None, EVERY_ROLE),
        "dr-groups": ("get", reverse("api:dr-groups"), None, EVERY_ROLE),
        "profiles": ("get", reverse("api:profiles"), None, EVERY_ROLE),
        "capacity": ("get", reverse("api:capacity") + "?lost_site=WSL", None, EVERY_ROLE),
        "readiness": ("get", reverse("api:readiness"), None, EVERY_ROLE),
        "runs": ("get", reverse("api:runs"), None, EVERY_ROLE),
        "run": ("get", reverse("api:run", args=[run_id]), None, EVERY_ROLE),
        "run-events": ("get", reverse("api:run-events", args=[run_id]) + "?after=0", None, EVERY_ROLE),
        # The Manager on Duty gets as far as the input check (no SSH to the lab here).
        "plan": ("get", reverse("api:plan"), None, {**ONLY_MOD, "mod": 400}),
        "declare": ("post", reverse("api:declare"), {}, {**ONLY_MOD, "mod": 400}),
        "drills": ("post", reverse("api:drills"), {"site": "WSL"}, {**ONLY_MOD, "mod": 400}),
    }


@pytest.fixture
def run_id(users) -> int:
    return build_run(user=users["mod"], per_step=1).pk


@pytest.fixture
def client_for(api_as):
    def make(role: str | None) -> Client:
        if role == "norole":  # logged in, but in no role group
            return token_client(get_user_model().objects.create_user("norole"))
        return api_as(role)

    return make


def _api_url_names() -> set[str]:
    names = set()

    def walk(patterns, namespace=None):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, p.namespace or namespace)
            elif isinstance(p, URLPattern) and p.name and namespace == "api":
                names.add(p.name)

    walk(get_resolver().url_patterns)
    return names


def test_the_matrix_covers_every_api_url(run_id):
    assert _api_url_names() - NOT_BY_THE_MATRIX == set(_matrix(run_id))


@pytest.mark.parametrize("role", ROLES)
def test_every_api_url_answers_each_role_as_the_matrix_says(run_id, client_for, role):
    client = client_for(role)
    for name, (method, url, body, expected) in _matrix(run_id).items():
        if body is None:
            response = getattr(client, method)(url)
        else:
            response = getattr(client, method)(url, body, content_type="application/json")
        want = 401 if role is None else expected[role]
        assert response.status_code == want, f"{name} as {role}: {response.status_code} != {want}"
        if want in (401, 403) and name != "schema":  # the schema view answers in YAML
            assert response["Content-Type"] == "application/json", name
            assert "detail" in response.json(), name


def test_no_credentials_get_401_json_asking_for_a_token_not_a_login_redirect(client):
    response = client.get(reverse("api:vms"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_a_wrong_token_is_refused_with_401(db):
    response = Client(headers={"Authorization": "Token " + "0" * 40}).get(reverse("api:sites"))
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_the_ui_session_works_for_reading(client, users):
    client.force_login(users["helpdesk"])
    assert client.get(reverse("api:sites")).status_code == 200


def test_a_session_write_needs_the_csrf_token(users):
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["mod"])
    response = client.post(reverse("api:drills"), {"site": "WSL"}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_read_endpoints_refuse_writes_with_405(api_as):
    mod = api_as("mod")
    assert mod.post(reverse("api:sites"), {}, content_type="application/json").status_code == 405
    assert mod.delete(reverse("api:runs")).status_code == 405


def test_an_inactive_users_token_stops_working(users):
    client = token_client(users["helpdesk"])
    users["helpdesk"].is_active = False
    users["helpdesk"].save()
    assert client.get(reverse("api:sites")).status_code == 401
