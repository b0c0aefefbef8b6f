"""Issue 17 item 6 on the web and in the API: "noticed at 1999-01-01" is refused on the
field, and a time long ago goes through only with "I confirm this time"."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from failover.models import Disaster
from tests.engine.conftest import lose_wsl

from .test_declare import _digest, _form


@pytest.mark.django_db(transaction=True)
def test_the_declare_form_refuses_1999_and_accepts_an_old_time_only_when_confirmed(client, lab, estate):
    lose_wsl(lab)
    client.force_login(estate["mod"])
    page = client.get(reverse("declare")).content.decode()
    assert 'name="confirm_detected_at"' in page and "I confirm this time" in page
    digest = _digest(client)
    refused = client.post(
        reverse("declare"),
        _form(detected_at="1999-01-01T00:00", confirm_isolated="on", plan_digest=digest),
    )
    assert refused.status_code == 422
    body = refused.content.decode()
    assert "Noticed at: " in body and "more than 24 h ago" in body and "I confirm this time" in body
    assert not Disaster.objects.exists()

    two_days = (timezone.localtime() - dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    confirmed = client.post(
        reverse("declare"),
        _form(detected_at=two_days, confirm_isolated="on", confirm_detected_at="on", plan_digest=digest),
    )
    assert confirmed.status_code == 302
    assert Disaster.objects.get().detected_at < timezone.now() - dt.timedelta(days=1)
