"""Epochs (issue 14, item 4 of the issue): every run and action carries the epoch it was
started or claimed in; a portal that may not act claims nothing and starts nothing; after
a take-over the reaper adopts the lost portal's actions at once and observes them."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from drportal import twosite
from drportal.models import Epoch
from failover.choices import ActionStateChoices as A
from failover.engine import reaper
from failover.engine.execute import execute
from failover.models import Action, RunEvent
from tests.engine.conftest import declare, lose_wsl, side_effects
from tests.sites.conftest import set_peer_epoch


def new_epoch(number: int) -> None:
    Epoch.objects.create(number=number, site="KA", started_at=timezone.now())
    twosite.clear_cache()


def test_a_run_and_its_actions_record_the_epoch_they_were_started_in(lab, estate):
    new_epoch(2)
    lose_wsl(lab)
    run = declare(estate["mod"]).run
    assert run.epoch == 2
    assert set(run.actions.values_list("epoch", flat=True)) == {2}


def test_a_portal_that_is_behind_claims_no_action_and_starts_no_run(lab, estate, settings, peer_url):
    lose_wsl(lab)
    run = declare(estate["mod"]).run
    action = run.actions.order_by("pk").first()
    Action.objects.filter(pk=action.pk).update(state=A.QUEUED, queued_at=timezone.now())
    settings.DRPORTAL_SITE = "WSL"
    settings.DRPORTAL_PEER_DATABASE_URL = peer_url
    set_peer_epoch(peer_url, 2)  # KA's portal took over
    assert twosite.site_status().mode == "behind"
    execute(action.pk)
    action.refresh_from_db()
    assert action.state == A.QUEUED and action.attempt == 0 and not action.claimed_by
    run.refresh_from_db()
    with pytest.raises(ValidationError) as refused:
        declare(estate["mod"], lost_site="KA", override="the test loses KA too")
    assert (
        "No run started: this portal is behind: KA's portal took over (epoch 2)" in refused.value.messages[0]
    )


def test_a_claim_in_an_epoch_the_database_no_longer_holds_is_refused(lab, estate, settings, peer_url):
    """A worker whose cached status still says epoch 1 while the database is in epoch 2."""
    lose_wsl(lab)
    action = declare(estate["mod"]).run.actions.order_by("pk").first()
    Action.objects.filter(pk=action.pk).update(state=A.QUEUED, queued_at=timezone.now())
    settings.DRPORTAL_SITE = "KA"
    settings.DRPORTAL_PEER_DATABASE_URL = peer_url
    settings.DRPORTAL_SITE_STATUS_CACHE_S = 3600
    assert twosite.site_status().epoch == 1
    Epoch.objects.create(number=2, site="KA", started_at=timezone.now())  # behind the cache's back
    execute(action.pk)
    action.refresh_from_db()
    assert action.state == A.QUEUED and action.attempt == 0


def test_after_a_take_over_the_reaper_observes_the_lost_portals_running_action_at_once_and_never_reruns_it(
    lab, estate
):
    lose_wsl(lab)
    run = declare(estate["mod"]).run
    action = run.actions.get(kind="start_vm", target="dns-xen01")
    # Claimed at WSL in epoch 1; its lease has not run out yet (WSL's worker died a moment ago).
    Action.objects.filter(pk=action.pk).update(
        state=A.RUNNING, attempt=1, epoch=1, lease_expires_at=timezone.now() + dt.timedelta(minutes=5)
    )
    queued = run.actions.filter(state=A.PENDING).exclude(pk=action.pk).order_by("pk").first()
    Action.objects.filter(pk=queued.pk).update(state=A.QUEUED, queued_at=timezone.now(), epoch=1)
    new_epoch(2)
    report = reaper.reap()
    action.refresh_from_db()
    assert report["requeued"] == 1 and report["resent"] >= 1, report
    assert action.state == A.PENDING and action.epoch == 2
    event = RunEvent.objects.get(run=run, kind="action_requeued", action=action)
    assert "it was claimed at the lost portal (epoch 1); observed" in event.message
    assert Action.objects.get(pk=queued.pk).epoch == 2
    assert side_effects(lab) == []  # observed, not started: the engine starts it again later
