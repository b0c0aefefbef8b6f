"""In a real browser, the rough edges of issue 17: the memory editor shows a server failure
as a message instead of staying silently in edit mode."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from hosts.models import MemoryProfile, VMAllocation
from hosts.permissions import ROLE_DR_ADMIN
from tests.e2e.test_e2e_board import DESKTOP, log_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def dradmin(estate):
    user = get_user_model().objects.create_user("dradmin", password="x")
    user.groups.set([Group.objects.get(name=ROLE_DR_ADMIN)])
    return user


def test_the_memory_editor_shows_a_server_failure_as_a_message(browser, web, dradmin):
    row = VMAllocation.objects.get(profile=MemoryProfile.objects.get(name="WSL lost"), vm__name="dasi-xen01")
    context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = context.new_page()
    log_in(page, web.base, "dradmin")
    page.goto(f"{web.base}/profiles/{row.profile_id}/")
    page.click(f"#alloc-{row.pk} button:has-text('Edit')")
    page.wait_for_selector(f"#mem-{row.pk}")

    # The server fails this one save (the boundary we do not own: the network answer).
    def fail_once(route):
        if route.request.method == "POST":
            route.fulfill(status=500, body="Internal Server Error")
        else:
            route.continue_()

    page.route("**/allocations/*/edit/", fail_once)
    page.fill(f"#mem-{row.pk}", "1100")
    page.click(f"#alloc-{row.pk} button[type=submit]")
    alert = page.wait_for_selector(f"#alloc-{row.pk} .htmx-error[role=alert]", timeout=10_000)
    assert "The server failed (HTTP 500)" in alert.inner_text()
    assert "may not have been saved" in alert.inner_text()

    # Trying again after the failure: the message goes, the value is saved.
    page.unroute("**/allocations/*/edit/")
    page.click(f"#alloc-{row.pk} button[type=submit]")
    page.wait_for_selector(f"#alloc-{row.pk} td.mem:has-text('1100')", timeout=10_000)
    assert page.locator(".htmx-error").count() == 0
    context.close()
