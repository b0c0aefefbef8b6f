"""Issue 17 item 5: a failback whose home dom0 does not answer is a hard block naming the
fix ("bring xenwsl01 up first"); no typed reason overrides it, so no failback starts to
stop at step 0 waiting for a person."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from failover.choices import RunStateChoices as R
from failover.models import Run
from failover.runs.failback import build_failback_plan, failback_start
from tests.engine.conftest import lose_wsl

from .runs import build_run

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_unreachable_home_dom0_is_a_hard_block_no_reason_overrides(client, lab, estate, settings):
    # Three plans are built here (preview, start, POST): trying the dead dom0 again would
    # only make each wait (~1.1 s with 3 attempts); what blocks is the same.
    settings.DRPORTAL_SSH_CONNECT_ATTEMPTS = 1
    lose_wsl(lab)  # WSL is still down: its dom0 does not answer
    failover = build_run(user=estate["mod"], state=R.SUCCEEDED)
    plan = build_failback_plan(failover=failover)
    (problem,) = [p for p in plan.blocking if p.code == "unreachable"]
    assert problem.hard and problem.message.startswith("xenwsl01 at WSL is unreachable")
    assert problem.fix == "bring xenwsl01 up first, then fail back"
    with pytest.raises(ValidationError) as refused:
        failback_start(user=estate["mod"], failover_id=failover.pk, override_reason="I am sure")
    text = str(refused.value.message_dict["plan"])
    assert "bring xenwsl01 up first" in text and "cannot be overridden" in text

    client.force_login(estate["mod"])
    response = client.post(reverse("run-failback", args=[failover.pk]), {"reason": "I am sure"}, follow=True)
    assert "bring xenwsl01 up first" in response.content.decode()
    assert Run.objects.filter(kind="failback").count() == 0


def test_a_failback_with_both_sites_up_is_not_blocked_by_them(lab, estate):
    failover = build_run(user=estate["mod"], state=R.SUCCEEDED)
    plan = build_failback_plan(failover=failover)
    assert not [p for p in plan.blocking if p.code == "unreachable"]
