"""The portal's two-site mode (drportal/twosite.py) and what every page says about it, on
the tests' own PostgreSQL (a primary). A real standby: tests/twosite/."""

from __future__ import annotations

import pytest
from django.db import connection

from drportal import twosite
from drportal.models import Epoch
from tests.board.live import free_port
from tests.sites.conftest import set_peer_epoch

pytestmark = pytest.mark.django_db


def test_a_standalone_portal_asks_the_database_nothing_and_shows_no_banner(
    settings, client_as, django_assert_num_queries
):
    settings.DRPORTAL_SITE = ""
    with django_assert_num_queries(0):
        status = twosite.site_status()
    assert status.mode == "standalone" and status.may_act and not status.read_only
    page = client_as("helpdesk").get("/").content.decode()
    assert 'id="site-banner"' not in page


def test_a_primary_whose_peer_does_not_answer_acts_and_says_no_standby_is_connected(settings, client_as):
    settings.DRPORTAL_SITE = "WSL"
    settings.DRPORTAL_PEER_DATABASE_URL = f"postgresql://postgres@127.0.0.1:{free_port()}/drportal"
    status = twosite.site_status()
    assert status.mode == "primary" and status.may_act
    assert not status.peer.reachable and status.peer.error
    assert any("no standby connected" in p for p in status.problems)
    assert any("drportal_standby is missing" in p for p in status.problems)
    page = client_as("helpdesk").get("/").content.decode()
    assert 'data-site-mode="primary"' in page and "no standby connected" in page


def test_a_portal_whose_peer_answers_as_primary_of_a_newer_epoch_is_behind_and_says_how_to_rejoin(
    settings, client_as, reference_estate, peer_url
):
    settings.DRPORTAL_SITE = "WSL"
    settings.DRPORTAL_PEER_DATABASE_URL = peer_url
    assert twosite.site_status().mode == "primary"  # same epoch: the peer is no newer
    set_peer_epoch(peer_url, 2)
    twosite.clear_cache()
    status = twosite.site_status()
    assert status.mode == "behind" and not status.may_act and status.read_only
    assert status.peer_site == "KA" and status.peer.epoch == 2
    assert "KA's portal took over (epoch 2)" in status.reason
    page = client_as("helpdesk").get("/").content.decode()
    assert 'data-site-mode="behind"' in page
    assert "This portal is behind: KA's portal took over (epoch 2)" in page
    assert "scripts/rejoin-as-standby --pgdata /" in page and "--slot drportal_standby" in page


def test_the_primary_that_took_over_names_an_older_primary_as_fenced(settings, reference_estate, peer_url):
    settings.DRPORTAL_SITE = "KA"
    settings.DRPORTAL_PEER_DATABASE_URL = peer_url
    Epoch.objects.create(number=2, site="KA", started_at="2026-01-01T00:00:00Z")
    status = twosite.site_status()
    assert status.mode == "primary" and status.epoch == 2
    assert any("WSL's PostgreSQL also answers as a primary (epoch 1" in p for p in status.problems)


def test_the_site_page_shows_the_mode_and_the_epochs(settings, client_as):
    settings.DRPORTAL_SITE = "WSL"
    settings.DRPORTAL_PEER_DATABASE_URL = f"postgresql://postgres@127.0.0.1:{free_port()}/drportal"
    page = client_as("helpdesk").get("/site/").content.decode()
    assert '<dd id="site-mode">primary</dd>' in page
    assert "unreachable" in page


@pytest.mark.django_db(transaction=True)
def test_a_write_that_meets_a_read_only_database_becomes_the_read_only_answer_not_a_500(
    settings, client, users
):
    """The safety net behind the 503 before every write: PostgreSQL's own refusal
    (ReadOnlySqlTransaction, as on a standby) in a view becomes the clear answer."""
    settings.DRPORTAL_SITE = "WSL"
    settings.DRPORTAL_PEER_DATABASE_URL = f"postgresql://postgres@127.0.0.1:{free_port()}/drportal"
    client.force_login(users["helpdesk"])
    with connection.cursor() as cursor:
        cursor.execute("SET default_transaction_read_only = on")
    try:
        answer = client.post("/accounts/logout/")  # deletes the session row: a write
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET default_transaction_read_only = off")
    assert answer.status_code == 503
    assert "read-only" in answer.content.decode() and answer["Retry-After"] == "60"
