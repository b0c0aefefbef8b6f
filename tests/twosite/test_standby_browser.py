"""The standby portal in a real browser (Debian's Chromium through Playwright): KA's portal
served by uvicorn on a real hot standby of WSL's portal database. The banner says whose
standby it is and how old its data is, every write control is disabled with the reason,
a forged write gets the clear 503 page, and the Manager on Duty takes over through the
page ("take over, then declare"): refused while WSL still answers as a primary, done with
the override typed."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from tests.board.live import Uvicorn
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.test_e2e_board import log_in

from .portals import PASSWORD, RedisServer, count, prepare, site_env

pytestmark = pytest.mark.slow


@pytest.fixture
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (apt-get install -y chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def ka_portal(make_pg_pair, tmp_path):
    pair = make_pg_pair()
    redis = {site: RedisServer(tmp_path / f"redis-{site}").start() for site in ("WSL", "KA")}
    prepare(pair, site_env(pair, "WSL", redis["WSL"].url))
    env = site_env(pair, "KA", redis["KA"].url, DEBUG="1", DRPORTAL_SSH_CONNECT_TIMEOUT="1")
    (tmp_path / "web").mkdir()
    web = Uvicorn(env, tmp_path / "web").start()
    try:
        yield pair, web
    finally:
        web.stop()
        for r in redis.values():
            r.kill()


def test_a_standby_portal_shows_its_banner_disables_writes_refuses_a_forged_post_and_takes_over(
    chromium, ka_portal
):
    pair, web = ka_portal
    page = chromium.new_context(locale="en-GB").new_page()
    log_in(page, web.base, "mod", PASSWORD)

    banner = page.locator("#site-banner")
    assert banner.get_attribute("data-site-mode") == "standby"
    text = " ".join(banner.inner_text().split())
    assert re.search(r"Standby of WSL's portal; data as of \d\d:\d\d:\d\d, \d+\.\d s behind\.", text), text
    assert "Read-only: nothing can be changed here." in text
    assert page.locator("#site-take-over-link").is_visible()

    page.goto(f"{web.base}/declare/")
    reason = "this portal is a standby of WSL's portal (read-only): take over (Manager on Duty) or use the primary at WSL"
    show_plan = page.locator("#show-plan")
    assert show_plan.is_disabled() and show_plan.get_attribute("title") == reason
    assert (
        page.locator("#declare-form .site-readonly-note").inner_text()
        == f"⛔ {reason[0].upper()}{reason[1:]}."
    )
    assert page.locator("#take-over").is_enabled(), "the take-over stays usable on a standby"

    forged = page.request.post(f"{web.base}/declare/", form={"lost_site": "WSL"}, max_redirects=0)
    assert forged.status == 503
    assert forged.headers["retry-after"] == "60"
    answer = html.unescape(forged.text())
    assert "Nothing was changed" in answer and f"{reason[0].upper()}{reason[1:]}." in answer
    assert count(pair.wsl, "SELECT count(*) FROM failover_run") == 0

    page.fill("#id_confirmation", "WSL IS LOST")
    page.click("#take-over")
    refused = page.locator("#take-over-form .error").first.inner_text()
    assert "Refused: WSL's database still answers as a primary (primary, epoch 1, timeline 1)." in refused
    assert pair.ka.in_recovery()

    page.fill("#id_confirmation", "WSL IS LOST")
    page.fill("#id_override_reason", "WSL's portal is switched off; its database is on a UPS")
    page.click("#take-over")
    page.wait_for_url(re.compile(r"/declare/\?lost_site=WSL$"), timeout=90_000)
    assert not pair.ka.in_recovery()
    assert (
        "Taken over: KA's portal is the primary now (epoch 2). Declare the disaster of WSL next."
        in page.content()
    )
    assert page.locator("#site-banner").get_attribute("data-site-mode") == "primary"
    assert page.locator("#take-over-form").count() == 0
    assert page.locator("input[name=lost_site][value=WSL]").is_checked()
    assert pair.ka.sql("SELECT override_reason FROM drportal_epoch WHERE number = 2", "drportal") == (
        "WSL's portal is switched off; its database is on a UPS"
    )
