"""Issue 17 item 6 in the API: detected_at in the future or long ago (unconfirmed) is
refused on the field, by the same rule as the board's form (failover.runs.noticed)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.engine.conftest import lose_wsl

from .conftest import token_client


@pytest.mark.django_db(transaction=True)
def test_the_api_refuses_a_future_or_unconfirmed_old_time_on_detected_at(lab, estate, clean_redis):
    lose_wsl(lab)
    mod = token_client(estate["mod"])
    body = {"lost_site": "WSL", "disaster_class": 2, "category": "power", "confirm_isolated": True}
    future = (timezone.now() + dt.timedelta(days=1)).isoformat()
    response = mod.post(
        reverse("api:declare"), {**body, "detected_at": future}, content_type="application/json"
    )
    assert response.status_code == 400
    assert list(response.json()) == ["detected_at"] and "in the future" in response.json()["detected_at"][0]
    old = (timezone.now() - dt.timedelta(days=3)).isoformat()
    response = mod.post(reverse("api:declare"), {**body, "detected_at": old}, content_type="application/json")
    assert response.status_code == 400 and "more than 24 h ago" in response.json()["detected_at"][0]
    response = mod.post(
        reverse("api:declare"),
        {**body, "detected_at": old, "confirm_detected_at": True},
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
