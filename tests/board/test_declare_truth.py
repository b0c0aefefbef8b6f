"""Issue 17 item 4: the declare preview says what is true. A site already failed over says
so, with its run (a blocking problem, not "no blocking problems" and "3 DR groups fail
over"); a "lost" site that answers and runs its VMs is a blocking problem unless a person
overrides it with a typed reason."""

from __future__ import annotations

import re
import time

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from failover.choices import RunStateChoices as R
from failover.models import Run
from failover.runs.failover import build_plan
from tests.engine.conftest import declare, lose_wsl

from .runs import build_run

pytestmark = pytest.mark.django_db(transaction=True)


def _preview(client) -> str:
    return client.get(reverse("declare"), {"lost_site": "WSL"}, HTTP_HX_REQUEST="true").content.decode()


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def test_the_preview_of_a_site_already_failed_over_says_so_with_its_run(client, lab, estate):
    lose_wsl(lab)
    failover = build_run(user=estate["mod"], state=R.SUCCEEDED)
    client.force_login(estate["mod"])
    page = _preview(client)
    text = _text(page)
    assert f"WSL now: Failed over to KA by run {failover.pk}" in text
    assert f'href="{reverse("run-board", args=[failover.pk])}"' in page
    assert "No blocking problems" not in text
    assert f"WSL is already failed over to KA by run {failover.pk}" in text
    assert "DR groups fail over," not in text
    assert f"3 DR groups failed over already (run {failover.pk})" in text
    with pytest.raises(ValidationError) as refused:
        declare(estate["mod"])
    assert "already failed over" in str(refused.value.message_dict["override_reason"])
    assert Run.objects.count() == 1


def test_a_failover_still_running_is_where_a_declaration_leads_not_a_problem(lab, estate):
    lose_wsl(lab)
    running = build_run(user=estate["mod"], state=R.RUNNING)
    plan = build_plan(lost_site="WSL")
    assert not [p for p in plan.blocking if p.code in ("already-failed-over", "failing-back")]
    assert plan.site["state"] == "lost" and plan.site["run"] == running.pk


def test_a_lost_site_that_answers_and_runs_its_vms_blocks_unless_overridden(client, lab, estate):
    lab.fault("eva-wsl", "down")  # the array is gone, but the dom0 answers and runs its VMs
    client.force_login(estate["mod"])
    text = _text(_preview(client))
    assert "No blocking problems" not in text
    assert "WSL answers: xenwsl01 runs dns-xen01, proxy-xen01, rsync-xen01" in text
    assert "isolate it first (power off xenwsl01" in text
    with pytest.raises(ValidationError) as refused:
        declare(estate["mod"])
    assert "WSL answers" in str(refused.value.message_dict["override_reason"])
    run = declare(estate["mod"], override="xenwsl01 is being powered off by the DC team").run
    assert [o["code"] for o in run.overrides] == ["lost-site-answers"]
    assert run.overrides[0]["reason"] == "xenwsl01 is being powered off by the DC team"


def test_a_lost_site_whose_dom0_came_back_empty_is_a_warning_not_a_block(lab, estate):
    lose_wsl(lab)
    lab.fault("xenwsl01", "crash")  # the power cut: its VMs are gone
    lab.fault("xenwsl01", "up")  # and the dom0 boots again, empty
    time.sleep(1)  # the lab reopens a host's listener within 0.2 s of "up"
    plan = build_plan(lost_site="WSL")
    assert plan.blocking == []
    assert any("xenwsl01 is up, though it runs none of the VMs to move" in w for w in plan.warnings)


def test_the_lost_sites_dom0s_are_asked_once_the_surviving_side_again(lab, estate, settings, caplog):
    """The preview expects the lost site not to answer: trying it again would only make
    every plan wait. A surviving dom0 that does not answer at first is tried again."""
    settings.DRPORTAL_SSH_CONNECT_ATTEMPTS = 2
    lose_wsl(lab)
    lab.fault("xenka01", "down")
    with caplog.at_level("WARNING", logger="hosts.drivers.ssh"):
        plan = build_plan(lost_site="WSL")
    retried = [r.getMessage().split(":")[0] for r in caplog.records if "connect attempt" in r.getMessage()]
    assert retried == ["xenka01"]
    assert any(p.code == "unreachable" and "(after 2 attempts)" in p.message for p in plan.blocking)
