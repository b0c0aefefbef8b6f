"""The report of the reference failover, run end to end by a real worker in the lab."""

from __future__ import annotations

import pytest
from django.urls import reverse

from failover.choices import RunStateChoices

from .conftest import declare, lose_wsl, pdf_text, squash, wait_for_run

pytestmark = pytest.mark.django_db(transaction=True)

STARTED = ("dns-xen01", "proxy-xen01", "rsync-xen01")
SHRUNK = ("lws-xen01", "dasi-xen01", "tomcat-xen01")


def test_the_report_of_a_real_failover_shows_its_figures_as_html_and_as_pdf(lab, estate, worker, client):
    # Thesis table 3.2 had a test "down"; replay one so the table shows both outcomes.
    lab.fault("proxy-xen01", "service-down", "3128")
    lose_wsl(lab)
    run = wait_for_run(declare(estate["mod"]).run.pk, worker=worker, timeout=120)
    assert run.state == RunStateChoices.SUCCEEDED
    recovery = f"{round(run.summary['recovery_seconds'], 1):.1f} s"
    steps = [s.name for s in run.steps.order_by("number")]
    client.force_login(estate["helpdesk"])  # the helpdesk reads reports too

    page = squash(client.get(reverse("reports:run", args=[run.pk])).content.decode())
    assert f"Run {run.pk}: Failover of WSL to KA" in page
    assert "2 – Emergency" in page and "Power and generator failure" in page
    assert 'class="declared-by">' in page and " by mod " in page
    assert "confirmed by mod" in page
    assert f"{recovery}, counted from" in page
    assert 'class="deadline-met"><span class="state tone-ok"' in page
    for name in steps:
        assert name in page
    for vm in STARTED + SHRUNK:
        assert vm in page
    # Every action with the commands it sent, e.g. the starts with their DR memory.
    assert "[xenka01] $ xl create /etc/xen/vm/dns-xen01 memory=256" in page
    assert '<tr class="check-row" data-outcome="down">' in page
    assert '<tr class="check-row" data-outcome="ok">' in page

    response = client.get(reverse("reports:run-pdf", args=[run.pk]))
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    text = pdf_text(response.content)
    assert f"Run {run.pk}: Failover of WSL to KA" in text
    assert f"{recovery}, counted from" in text
    for name in steps:
        assert name in text, name
    for vm in STARTED + SHRUNK:
        assert vm in text, vm
    assert "Squid answers for the outstations" in text
    assert "xl create /etc/xen/vm/dns-xen01 memory=256" in text
