"""Issue 17 item 12: readiness never says "Losing WSL: Ready" while WSL is lost or its
services run at KA. It says what is true (the site's state from failover.runs.sitestate,
with its run) and what readiness then measures: nothing for the away site (the failback's
own checks run in its preview), the other site's verdict as before."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from failover.choices import RunStateChoices as R
from failover.models import Run
from failover.readiness.selectors import readiness_latest
from tests.board.runs import build_run, failback_of

from .conftest import make_verdict

pytestmark = pytest.mark.django_db


def panel(page: str, code: str) -> str:
    """The text of one site's readiness article (the overview and the readiness page)."""
    match = re.search(
        rf'<article class="readiness-site[^"]*" id="readiness-{code}"[^>]*>(.*?)</article>', page, re.S
    )
    assert match, f"no readiness article for {code}"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


@pytest.mark.parametrize("url", ["overview", "reports:readiness"])
def test_readiness_never_calls_a_failed_over_site_ready(people, client, url):
    failover = build_run(user=people["mod"], state=R.SUCCEEDED)
    make_verdict("WSL", "ready", changed=True)
    make_verdict("KA", "ready", changed=True)
    client.force_login(people["helpdesk"])
    page = client.get(reverse(url)).content.decode()
    wsl = panel(page, "WSL")
    assert "Ready" not in wsl
    assert f"WSL is lost; its services run at KA since run {failover.pk}" in wsl
    assert "No readiness verdict while WSL's services are away" in wsl
    assert 'id="readiness-WSL" data-verdict="away"' in page
    assert "Ready" in panel(page, "KA")  # the other site is still judged


def test_readiness_says_a_site_is_being_failed_over_or_failed_back_with_its_run(people):
    failover = build_run(user=people["mod"], state=R.RUNNING)
    make_verdict("WSL", "ready")
    (wsl,) = [r for r in readiness_latest() if r.site.code == "WSL"]
    assert (wsl.state, wsl.ready, wsl.away) == ("away", False, True)
    assert wsl.label == f"WSL is lost: failing over to KA, run {failover.pk} (running)"

    Run.objects.filter(pk=failover.pk).update(state=R.SUCCEEDED)
    back = failback_of(failover, state=R.RUNNING)
    (wsl,) = [r for r in readiness_latest() if r.site.code == "WSL"]
    assert wsl.label == f"WSL is failing back from KA, run {back.pk} (running)"
    data = wsl.as_dict()
    assert (data["ready"], data["site_state"], data["verdict"]) == (False, "failing-back", "ready")
    assert data["away_run"] == back.pk


def test_readiness_judges_a_site_again_once_it_is_home(people):
    failover = build_run(user=people["mod"], state=R.SUCCEEDED)
    failback_of(failover, state=R.SUCCEEDED)
    make_verdict("WSL", "ready")
    (wsl,) = [r for r in readiness_latest() if r.site.code == "WSL"]
    assert (wsl.state, wsl.ready, wsl.away, str(wsl.label)) == ("ready", True, False, "Ready")
