"""In a real browser: the Manager on Duty declares WSL lost and watches the recovery on
the board without reloading; the helpdesk watches and cannot act."""

from __future__ import annotations

import re

import pytest

from failover.choices import RunStateChoices
from failover.models import Run
from failover.runs.controls import run_pause, run_resume
from tests.engine.conftest import declare, lose_wsl, wait_for_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

DESKTOP = {"width": 1280, "height": 720}
PHONE = {"width": 390, "height": 844}

# Records every state a step row shows, as the DOM changes, and survives no reload.
WATCH_STEPS = """
() => {
  window.__sameDocument = true;
  window.__stepStates = {};
  const record = () => document.querySelectorAll('tr[id^="step-"]').forEach(row => {
    const seen = (window.__stepStates[row.id] = window.__stepStates[row.id] || []);
    if (seen[seen.length - 1] !== row.dataset.state) seen.push(row.dataset.state);
  });
  record();
  new MutationObserver(record).observe(document.getElementById('board'), {subtree: true, childList: true, attributes: true});
}
"""


# The text of the board's parts, and the log's line numbers, newest first.
BOARD_TEXT = """
() => ({
  parts: Object.fromEntries(['run-header', 'run-steps', 'run-actions', 'run-checks', 'run-log'].map(
    id => [id, document.getElementById(id).textContent.replace(/\\s+/g, ' ').trim()])),
  log: [...document.querySelectorAll('#log-lines > li')].map(li => li.id),
})
"""


def assert_reads_as_drawn_afresh(context, page, url: str, seq: int) -> None:
    """The board that followed the run (the stream sends only what changed in a part) reads
    as the board drawn afresh; its log has every line once, newest first."""
    followed = page.evaluate(BOARD_TEXT)
    fresh_page = context.new_page()
    fresh_page.goto(url)
    fresh = fresh_page.evaluate(BOARD_TEXT)
    fresh_page.close()
    for part, text in fresh["parts"].items():
        assert followed["parts"][part] == text, part
    assert followed["log"] == fresh["log"] == [f"event-{n}" for n in range(seq, 0, -1)]


def log_in(page, base: str, username: str, password: str = "x") -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/")


def test_the_manager_on_duty_declares_wsl_lost_and_watches_the_recovery_live(
    browser, web, lab, estate, worker, artifacts
):
    lose_wsl(lab)
    context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = context.new_page()
    log_in(page, web.base, "mod")
    page.click("nav >> text=Declare disaster")

    page.check("input[name=lost_site][value=WSL]")
    page.check("input[name=category][value=power]")
    page.click("#show-plan")
    page.wait_for_selector("#plan h2:has-text('The plan for the loss of WSL')")
    assert page.locator("#plan .blocking").count() == 0
    assert page.locator("#plan").inner_text().count("VMs start") == 1
    page.check("input[name=confirm_isolated]")
    page.screenshot(path=str(artifacts / "e2e-1-declare-plan.png"), full_page=True)
    page.click("#declare-button")

    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    run_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    page.evaluate(WATCH_STEPS)
    page.wait_for_selector("#live-status[data-kind=open]", timeout=10_000)

    # The steps turn done on this page, without a reload, and the run's end is shown.
    page.wait_for_selector("#run-state [data-state=succeeded]", timeout=60_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('tr[id^=\"step-\"]')].every(r => r.dataset.state === 'done')",
        timeout=10_000,
    )
    assert page.evaluate("window.__sameDocument") is True
    seen = page.evaluate("window.__stepStates")
    assert set(seen) == {f"step-{n}" for n in range(7)}
    assert all(states[-1] == "done" for states in seen.values())
    turned = [row for row, states in seen.items() if len(states) > 1]
    assert len(turned) >= 3, f"too few steps seen changing on the page: {seen}"

    state_text = page.inner_text("#run-state")
    progress = page.inner_text("#run-progress")
    assert "Succeeded" in state_text
    total = Run.objects.get(pk=run_id).actions.count()
    assert f"{total} of {total} actions done (100 %)" in progress
    assert wait_for_run(run_id, timeout=5).state == RunStateChoices.SUCCEEDED
    page.wait_for_selector("#live-status[data-kind=closed]", timeout=5_000)
    assert_reads_as_drawn_afresh(context, page, page.url, Run.objects.get(pk=run_id).event_seq)
    page.screenshot(path=str(artifacts / "e2e-2-board-finished-1280x720.png"))
    page.screenshot(path=str(artifacts / "e2e-3-board-finished-full.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(artifacts / "e2e-4-board-finished-phone.png"), full_page=True)
    context.close()


def test_the_helpdesk_sees_no_declare_button_and_a_forged_post_gets_403(browser, web, estate, artifacts):
    context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = context.new_page()
    log_in(page, web.base, "helpdesk")
    assert page.locator("text=Declare disaster").count() == 0
    page.screenshot(path=str(artifacts / "e2e-5-helpdesk-overview.png"), full_page=True)

    csrf = next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")
    forged = page.request.post(
        f"{web.base}/declare/",
        form={"lost_site": "WSL", "disaster_class": "2", "category": "power", "confirm_isolated": "on"},
        headers={"X-CSRFToken": csrf, "Referer": f"{web.base}/"},
        max_redirects=0,
    )
    assert forged.status == 403
    assert "CSRF" not in forged.text()
    assert page.request.get(f"{web.base}/declare/", max_redirects=0).status == 403
    assert not Run.objects.exists()
    context.close()


def test_a_board_opened_mid_run_stays_right_across_a_server_restart(
    browser, web, lab, estate, worker, artifacts
):
    lose_wsl(lab)
    run = declare(estate["mod"]).run
    run_pause(user=estate["mod"], run_id=run.pk)
    context = browser.new_context(viewport=PHONE, locale="de-DE")
    page = context.new_page()
    log_in(page, web.base, "helpdesk")
    page.goto(f"{web.base}/runs/{run.pk}/")
    page.evaluate(WATCH_STEPS)
    page.wait_for_selector("#live-status[data-kind=open]", timeout=10_000)
    assert "Angehalten" in page.inner_text("#run-state")  # German, from the browser's language
    assert page.locator("#run-header form").count() == 0  # helpdesk: no controls
    # Someone closes the last step's actions: they stay closed, whatever is redrawn (after
    # the restart the stream sends the parts whole).
    last_step = "#actions-step-6"
    assert page.eval_on_selector(last_step, "d => d.open") is True
    page.click(f"{last_step} > summary")
    page.evaluate(
        """(sel) => { window.__reopened = false; const watch = () => {
             const d = document.querySelector(sel); if (d && d.open) window.__reopened = true; };
           new MutationObserver(watch).observe(document.getElementById('board'), {subtree: true, childList: true, attributes: true}); }""",
        last_step,
    )

    web.kill()  # no goodbye: the browser notices a dead connection
    page.wait_for_selector("#live-status[data-kind=error]", timeout=10_000)
    web.start()
    run_resume(user=estate["mod"], run_id=run.pk)

    page.wait_for_selector("#run-state [data-state=succeeded]", timeout=60_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('tr[id^=\"step-\"]')].every(r => r.dataset.state === 'done')",
        timeout=10_000,
    )
    assert page.evaluate("window.__sameDocument") is True
    assert "Erfolgreich" in page.inner_text("#run-state")
    assert wait_for_run(run.pk, timeout=5).state == RunStateChoices.SUCCEEDED
    page.wait_for_selector("#live-status[data-kind=closed]", timeout=5_000)
    assert page.evaluate("window.__reopened") is False
    assert_reads_as_drawn_afresh(context, page, page.url, Run.objects.get(pk=run.pk).event_seq)
    page.screenshot(path=str(artifacts / "e2e-6-helpdesk-after-restart-phone-de.png"), full_page=True)
    context.close()
