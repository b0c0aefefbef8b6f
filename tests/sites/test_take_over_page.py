"""/site/take-over/ on the tests' own PostgreSQL (a primary): who may see it and what a
portal that is no standby answers. The take-over of a real standby through this page:
tests/twosite/test_standby_browser.py; the service itself: tests/twosite/test_take_over.py."""

from __future__ import annotations

import pytest

from drportal.models import Epoch

pytestmark = pytest.mark.django_db


def test_the_take_over_page_is_for_the_manager_on_duty_only(settings, client_as, reference_estate):
    settings.DRPORTAL_SITE = "KA"
    assert client_as("helpdesk").get("/site/take-over/").status_code == 403
    assert client_as("helpdesk").post("/site/take-over/", {"confirmation": "WSL IS LOST"}).status_code == 403


def test_a_primary_offers_no_take_over_and_refuses_one_naming_its_epoch(
    settings, client_as, reference_estate
):
    settings.DRPORTAL_SITE = "KA"
    settings.DRPORTAL_PEER_DATABASE_URL = "postgresql://postgres@127.0.0.1:1/drportal"
    client = client_as("mod")
    epochs = Epoch.objects.count()  # the migration's epoch 1, unless a transactional test flushed it
    page = client.get("/site/take-over/").content.decode()
    assert "This portal is already primary since epoch 1: nothing to take over." in page
    assert 'id="take-over-form"' not in page
    refused = client.post("/site/take-over/", {"confirmation": "WSL IS LOST", "override_reason": "x"})
    assert refused.status_code == 422
    assert "This portal is already primary since epoch 1: nothing to take over." in refused.content.decode()
    assert Epoch.objects.count() == epochs, "a refused take-over writes no epoch"


def test_a_standalone_portal_says_there_is_no_other_site(settings, client_as):
    settings.DRPORTAL_SITE = ""
    page = client_as("mod").get("/site/take-over/").content.decode()
    assert "This portal is standalone (DRPORTAL_SITE is not set): there is no other site." in page
