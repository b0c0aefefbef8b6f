"""A drill's hold (how long the clones stay up for testers) is a finite number of minutes,
0 up to a week, wherever it comes from: the page, the API, the command, the service."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from failover.models import Run
from failover.runs.drill import DrillScopeError, build_drill_plan

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("hold", ["inf", "nan", "-inf", "1e309", "10081"])
def test_the_drill_command_refuses_a_hold_that_is_not_a_finite_number_of_minutes(
    reference_estate, users, hold
):
    with pytest.raises(CommandError, match="--hold: minutes must be a number from 0 to 10080"):
        call_command("drill", "--site", "WSL", f"--hold={hold}", "--user", "mod")
    assert not Run.objects.exists()


@pytest.mark.parametrize("hold", [float("inf"), float("nan"), -1.0, 10081.0])
def test_the_drill_service_refuses_it_before_looking_at_the_estate(reference_estate, hold):
    with pytest.raises(DrillScopeError) as refused:
        build_drill_plan(site="WSL", hold_minutes=hold)
    assert refused.value.field == "hold_minutes"


@pytest.mark.parametrize("hold", ["inf", "nan", "10081"])
def test_the_api_and_the_page_refuse_it_naming_the_field(reference_estate, users, client_as, hold):
    from tests.api.conftest import token_client

    api = token_client(users["mod"]).post(
        reverse("api:drills"), {"site": "WSL", "hold_minutes": hold}, content_type="application/json"
    )
    assert api.status_code == 400 and "hold_minutes" in api.json()
    page = client_as("mod").get(reverse("drills"), {"site": "WSL", "hold": hold})
    assert 'id="drill-plan"' not in page.content.decode()
    assert not Run.objects.exists()
