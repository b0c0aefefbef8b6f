"""Issue 17 item 12: a drill of a site that is lost is not offered, and refused if asked."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from failover.choices import RunStateChoices as R
from failover.models import Run
from failover.runs.drill import build_drill_plan, drill_start

from .runs import build_run

pytestmark = pytest.mark.django_db(transaction=True)


def test_no_drill_is_offered_or_started_while_a_site_is_failed_over(client, lab, estate):
    failover = build_run(user=estate["mod"], state=R.SUCCEEDED)
    client.force_login(estate["mod"])
    page = client.get(reverse("drills")).content.decode()
    assert 'name="site" value="WSL"' not in page and 'name="site" value="KA"' not in page
    assert f"no drill while it is not in service (Failed over to KA by run {failover.pk}" in page
    assert "no drill while WSL is not in service" in page
    plan = build_drill_plan(site="WSL")
    (problem,) = [p for p in plan.blocking if p.code == "site-away"]
    assert problem.hard
    with pytest.raises(ValidationError) as refused:
        drill_start(user=estate["mod"], plan=plan, override_reason="just a rehearsal")
    assert "no drill of WSL until WSL is home again" in str(refused.value)
    assert not Run.objects.filter(kind="drill").exists()
