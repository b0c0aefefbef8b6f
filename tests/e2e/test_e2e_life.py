"""The whole life of a disaster in a real browser (issue 17): the Manager on Duty
declares WSL lost (and pauses the failover for a look), the helpdesk watches in a second browser, the MoD fails back, aborts a
second failback and fails back again. At each moment the overview's site cards, its open
disasters and readiness, and the board say what failover.runs.sitestate says is true.

What to wait for comes from the database (the run's state); the pages are then checked
with Playwright's retrying expectations, generous on the engine's progress."""

from __future__ import annotations

import re

import pytest

from failover.choices import RunStateChoices as R
from failover.models import Run
from failover.runs.controls import run_pause
from hosts.lab import cli
from tests.e2e.test_e2e_board import DESKTOP, assert_reads_as_drawn_afresh, log_in
from tests.engine.conftest import lose_wsl, wait_for_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ENGINE_S = 120  # a run of the reference estate takes seconds on the lab; the machine may be busy
PAGE_MS = 20_000


def wait_for_state(run_id: int, states, worker, timeout: float = ENGINE_S) -> Run:
    return wait_for_run(run_id, states=tuple(states), timeout=timeout, worker=worker)


def run_id_of(page) -> int:
    return int(re.search(r"/runs/(\d+)/", page.url).group(1))


def test_the_whole_life_of_a_disaster_as_the_mod_and_the_helpdesk_see_it(
    browser, web, lab, estate, worker, artifacts
):
    from playwright.sync_api import expect

    mod = browser.new_context(viewport=DESKTOP, locale="en-GB").new_page()
    desk = browser.new_context(viewport=DESKTOP, locale="en-GB").new_page()
    mod.on("dialog", lambda dialog: dialog.accept())  # the abort's "are you sure?"
    log_in(mod, web.base, "mod")
    log_in(desk, web.base, "helpdesk")

    def overview():
        desk.goto(f"{web.base}/")
        return desk.locator("#site-WSL"), desk.locator("#site-KA")

    # In service: nothing moved, no disaster.
    wsl, ka = overview()
    expect(wsl.locator(".site-state")).to_contain_text("In service")
    expect(ka.locator(".site-state")).to_contain_text("In service")
    expect(desk.locator("#overview-runs")).to_contain_text("No open disaster: every site is in service.")

    # Lost: the MoD declares; while the failover runs (paused by the MoD, so the moment
    # lasts) WSL is lost, KA is not, and readiness gives no verdict for WSL.
    lose_wsl(lab)
    lab.fault("xenwsl01", "crash")  # the power cut: the dom0 comes back without its VMs
    # Slow memory changes and VM starts (no plan asks them): the run lasts until the MoD
    # has paused it, whatever the machine's load.
    assert cli.lab_latency(lab.lab_dir, per_command=[("xl mem-set", "4"), ("xl create", "4")])[0] == 0
    mod.click("nav >> text=Declare disaster")
    mod.check("input[name=lost_site][value=WSL]")
    mod.check("input[name=category][value=power]")
    mod.click("#show-plan")
    expect(mod.locator("#plan h2")).to_contain_text("The plan for the loss of WSL", timeout=PAGE_MS)
    mod.check("input[name=confirm_isolated]")
    mod.click("#declare-button")
    expect(mod).to_have_url(re.compile(r"/runs/\d+/$"), timeout=PAGE_MS)
    failover = run_id_of(mod)
    # Paused at once from here: a click races the header that the live board swaps in
    # on every event (Playwright waits for a stable button); the MoD resumes by click.
    run_pause(user=estate["mod"], run_id=failover)
    wait_for_state(failover, [R.PAUSED], worker)
    expect(mod.locator("#run-state")).to_contain_text("Paused", timeout=PAGE_MS)

    wsl, ka = overview()
    expect(wsl.locator(".site-state")).to_contain_text(f"Lost — failing over to KA (run {failover}, paused)")
    expect(ka.locator(".site-state")).to_contain_text("In service")
    expect(ka).not_to_contain_text("Lost")
    expect(desk.locator("#overview-runs")).to_contain_text(f"WSL: Lost — failing over to KA (run {failover}")
    expect(desk.locator("#overview-runs")).not_to_contain_text("No open disaster")
    expect(desk.locator("#readiness-WSL")).to_contain_text(f"WSL is lost: failing over to KA, run {failover}")
    expect(desk.locator("#readiness-WSL")).not_to_contain_text("Ready")
    desk.goto(f"{web.base}/runs/{failover}/")
    expect(desk.locator("#run-state")).to_contain_text("Paused")
    expect(desk.locator("#site-now")).to_contain_text(f"WSL now: Lost — failing over to KA (run {failover}")
    assert desk.locator("#run-header form").count() == 0  # the helpdesk watches, cannot act

    # Failed over: the MoD resumes; the helpdesk's board follows live to the end.
    assert cli.lab_latency(lab.lab_dir, clear=True)[0] == 0
    expect(mod.locator("#live-status[data-kind=open]")).to_have_count(1, timeout=PAGE_MS)
    mod.evaluate(
        "() => { window.__opened = 0; document.addEventListener('htmx:sseOpen', () => window.__opened++); }"
    )
    mod.click("#run-header button:has-text('Resume')")
    # The control's answer drew the header as it was then, which the stream does not know:
    # the board opens its stream afresh (from a snapshot: every part whole), and follows
    # the run to a board that reads as one drawn afresh.
    mod.wait_for_function("() => window.__opened >= 1", timeout=PAGE_MS)
    assert "last_event_id" not in mod.get_attribute("#board", "sse-connect")
    assert wait_for_state(failover, [R.SUCCEEDED, R.FAILED, R.ABORTED], worker).state == R.SUCCEEDED
    expect(mod.locator("#live-status[data-kind=closed]")).to_have_count(1, timeout=PAGE_MS)
    assert_reads_as_drawn_afresh(mod.context, mod, mod.url, Run.objects.get(pk=failover).event_seq)
    expect(desk.locator("#run-state")).to_contain_text("Succeeded", timeout=PAGE_MS)
    expect(desk.locator("#run-header")).to_contain_text("Run time")
    expect(desk.locator("#run-header")).to_contain_text("from when the event was noticed")
    expect(desk.locator("#site-now")).to_contain_text(f"Failed over to KA by run {failover}")
    desk.screenshot(path=str(artifacts / "e2e-life-1-failed-over-board.png"), full_page=True)
    wsl, ka = overview()
    expect(wsl.locator(".site-state")).to_contain_text(
        f"Failed over to KA by run {failover} — its services run there"
    )
    expect(ka.locator(".site-state")).to_contain_text("In service")
    expect(desk.locator("#overview-runs")).to_contain_text(f"WSL: Failed over to KA by run {failover}")
    expect(desk.locator("#readiness-WSL")).to_contain_text(
        f"WSL is lost; its services run at KA since run {failover}"
    )
    desk.screenshot(path=str(artifacts / "e2e-life-2-failed-over-overview.png"), full_page=True)

    # Failing back: WSL is repaired; once the failback has started, every command of the
    # lab answers slowly, so the failback runs long enough to look at it, and the MoD
    # aborts it.
    lab.fault("xenwsl01", "up")
    lab.fault("eva-wsl", "up")
    mod.goto(f"{web.base}/runs/{failover}/")
    mod.click("#failback-button")
    expect(mod).to_have_url(re.compile(rf"/runs/(?!{failover}/)\d+/$"), timeout=PAGE_MS)
    assert cli.lab_latency(lab.lab_dir, default_seconds=3)[0] == 0
    first_back = run_id_of(mod)
    assert first_back != failover
    assert Run.objects.get(pk=first_back).kind == "failback"
    wsl, ka = overview()
    expect(wsl.locator(".site-state")).to_contain_text(f"Failing back from KA (run {first_back}")
    expect(ka.locator(".site-state")).to_contain_text("In service")
    expect(ka).not_to_contain_text("Lost")
    expect(desk.locator("#readiness-WSL")).to_contain_text(f"WSL is failing back from KA, run {first_back}")

    expect(mod.locator("#run-state")).to_contain_text("Running", timeout=PAGE_MS)
    mod.fill("#abort-reason", "the storage team asks for an hour")
    mod.screenshot(path=str(artifacts / "e2e-life-3a-failback-before-abort.png"), full_page=True)
    mod.click("#run-header button:has-text('Abort')")
    expect(mod.locator("#run-state")).to_contain_text("Aborted", timeout=PAGE_MS)
    aborted = wait_for_state(first_back, [R.ABORTED, R.SUCCEEDED, R.FAILED], worker)
    assert aborted.state == R.ABORTED, [e.message for e in aborted.events.order_by("seq")]
    assert cli.lab_latency(lab.lab_dir, clear=True)[0] == 0
    expect(mod.locator("#run-state")).to_contain_text("Aborted", timeout=PAGE_MS)
    desk.goto(f"{web.base}/runs/{first_back}/")
    expect(desk.locator("#run-state")).to_contain_text("Aborted")
    expect(desk.locator("#aftermath")).to_contain_text("what it left behind and what to do")
    expect(desk.locator("#run-steps")).not_to_contain_text("Running")
    expect(desk.locator("#site-now")).to_contain_text(f"WSL now: Failed over to KA by run {failover}")
    wsl, ka = overview()
    expect(wsl.locator(".site-state")).to_contain_text(f"Failed over to KA by run {failover}")
    expect(wsl.locator(".site-detail")).to_contain_text(
        f"Failback run {first_back} aborted: fail back again from run {failover}"
    )
    expect(ka.locator(".site-state")).to_contain_text("In service")
    expect(ka).not_to_contain_text("Lost")
    desk.screenshot(path=str(artifacts / "e2e-life-3-failback-aborted-overview.png"), full_page=True)

    # Home again: the failover's board offers the failback again; this one runs through.
    mod.goto(f"{web.base}/runs/{failover}/")
    expect(mod.locator("#failback-form")).to_contain_text(
        f"Failback run {first_back} was aborted: you can fail back again."
    )
    mod.click("#failback-button")
    expect(mod).to_have_url(re.compile(rf"/runs/(?!({failover}|{first_back})/)\d+/$"), timeout=PAGE_MS)
    second_back = run_id_of(mod)
    assert second_back not in (failover, first_back)
    done = wait_for_state(second_back, [R.SUCCEEDED, R.FAILED, R.ABORTED], worker)
    assert done.state == R.SUCCEEDED, [(a.kind, a.target, a.state, a.error) for a in done.actions.all()]
    expect(mod.locator("#run-state")).to_contain_text("Succeeded", timeout=PAGE_MS)
    expect(mod.locator("#site-now")).to_contain_text(
        f"In service — home again since failback run {second_back}"
    )
    wsl, ka = overview()
    expect(wsl.locator(".site-state")).to_contain_text(
        f"In service — home again since failback run {second_back}"
    )
    expect(ka.locator(".site-state")).to_contain_text("In service")
    expect(desk.locator("section.sites")).not_to_contain_text("Lost")
    expect(desk.locator("#overview-runs")).to_contain_text("No open disaster: every site is in service.")
    expect(desk.locator("#readiness-WSL")).to_contain_text("Losing WSL")
    desk.screenshot(path=str(artifacts / "e2e-life-4-home-again-overview.png"), full_page=True)

    # The failover's board, long after: the site is home; no failback is offered.
    desk.goto(f"{web.base}/runs/{failover}/")
    expect(desk.locator("#site-now")).to_contain_text(f"home again since failback run {second_back}")
    mod.goto(f"{web.base}/runs/{failover}/")
    assert mod.locator("#failback-button").count() == 0
