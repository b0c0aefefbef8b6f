"""The OpenAPI schema: generated without a warning, valid OpenAPI 3, every API URL in it,
and served to a client with a token."""

from __future__ import annotations

import json

import pytest
import yaml
from django.core.management import call_command
from django.urls import reverse

pytestmark = pytest.mark.django_db

API_PATHS = {
    "/api/sites/",
    "/api/hosts/",
    "/api/vms/",
    "/api/dr-groups/",
    "/api/profiles/",
    "/api/capacity/",
    "/api/readiness/",
    "/api/runs/",
    "/api/runs/{id}/",
    "/api/runs/{id}/events/",
    "/api/plan/",
    "/api/declare/",
    "/api/drills/",
}


def test_the_schema_validates_without_a_single_warning(tmp_path):
    path = tmp_path / "schema.yml"
    # --validate checks it against the OpenAPI 3 JSON schema; --fail-on-warn turns every
    # warning (a view spectacular cannot describe, an enum name clash) into a failure.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    schema = yaml.safe_load(path.read_text())
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == API_PATHS
    assert set(schema["components"]["securitySchemes"]) == {"tokenAuth", "cookieAuth"}


def test_the_schema_says_who_may_declare_and_what_comes_back(tmp_path):
    path = tmp_path / "schema.yml"
    call_command("spectacular", "--file", str(path))
    declare = yaml.safe_load(path.read_text())["paths"]["/api/declare/"]["post"]
    assert set(declare["responses"]) == {"200", "201", "400", "403", "409"}
    assert declare["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/RunSummary"
    )
    drills = yaml.safe_load(path.read_text())["paths"]["/api/drills/"]["post"]
    assert {"201", "400", "403"} <= set(drills["responses"])


def test_the_schema_is_served_as_json_or_yaml_to_a_client_with_a_token(api_as):
    client = api_as("helpdesk")
    as_json = client.get(reverse("api:schema"), {"format": "json"})
    assert as_json.status_code == 200
    assert set(json.loads(as_json.content)["paths"]) == API_PATHS
    as_yaml = client.get(reverse("api:schema"))
    assert as_yaml["Content-Type"].startswith("application/vnd.oai.openapi")
    assert yaml.safe_load(as_yaml.content)["info"]["title"] == "drportal API"
