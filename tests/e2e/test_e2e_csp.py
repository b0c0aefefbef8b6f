"""Content-Security-Policy (issue 17 item 12): every response carries it, and in a real
browser no page of the portal breaks it: no inline script, no inline style, no style htmx
injects, while the board follows a real failover by Server-Sent Events."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from failover.choices import RunStateChoices
from tests.e2e.test_e2e_board import DESKTOP, log_in
from tests.engine.conftest import declare, lose_wsl, wait_for_run

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
}


def directives(header: str) -> dict[str, str]:
    parts = (part.strip().split(None, 1) for part in header.split(";") if part.strip())
    return {name: value for name, value in (p if len(p) == 2 else (p[0], "") for p in parts)}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/runbook/", "/healthz"])
def test_every_response_carries_the_content_security_policy(client_as, path):
    response = client_as("helpdesk").get(path)
    assert response.status_code == 200
    assert directives(response["Content-Security-Policy"]) == POLICY


@pytest.mark.django_db
def test_a_refusal_and_a_login_redirect_carry_the_policy_too(client):
    response = client.get("/estate/")
    assert response.status_code == 302
    assert directives(response["Content-Security-Policy"]) == POLICY


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_no_page_breaks_the_content_security_policy_while_a_failover_runs(
    browser, web, lab, estate, worker, artifacts
):
    violations: list[str] = []
    context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = context.new_page()

    def record(message) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            violations.append(f"{page.url}: {message.text}")

    page.on("console", record)
    page.on("pageerror", lambda error: violations.append(f"{page.url}: page error {error}"))
    log_in(page, web.base, "mod")
    lose_wsl(lab)
    run = declare(get_user_model().objects.get(username="mod")).run

    page.goto(f"{web.base}/")
    page.wait_for_selector("#overview-runs")
    page.goto(f"{web.base}/runs/{run.pk}/")
    # The board follows the run live (the event stream is a connect-src 'self').
    page.wait_for_selector("#live-status[data-kind=open]", timeout=10_000)
    page.wait_for_selector("#run-state [data-state=succeeded]", timeout=60_000)
    assert wait_for_run(run.pk).state == RunStateChoices.SUCCEEDED
    # htmx drew the parts it swapped with its request indicator, without injecting a <style>.
    assert page.evaluate("document.querySelectorAll('style').length") == 0

    page.goto(f"{web.base}/estate/")
    page.wait_for_selector(".hostbar .seg.vm")
    # The bars still have their widths (set by static JS from data attributes, not style="").
    widths = page.evaluate(
        "[...document.querySelectorAll('.hostbar .seg')].map(el => el.getBoundingClientRect().width)"
    )
    assert widths and all(width > 0 for width in widths), widths
    bar = page.evaluate("document.querySelector('.hostbar .bar').getBoundingClientRect().width")
    assert max(widths) < bar

    page.goto(f"{web.base}/runs/{run.pk}/report/")
    page.wait_for_selector("text=Print")
    printed = page.evaluate("() => { window.__printed = 0; window.print = () => window.__printed++; }")
    assert printed is None
    page.click("button:has-text('Print')")
    assert page.evaluate("window.__printed") == 1, "the Print button does nothing"
    page.goto(f"{web.base}/runbook/")
    page.screenshot(path=str(artifacts / "e2e-csp-runbook.png"), full_page=True)
    context.close()
    assert not violations, "\n".join(violations)
