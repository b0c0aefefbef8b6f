"""The drills page's form: every refusal names its field and the reason, nothing starts."""

from __future__ import annotations

import html
import re

from django.urls import reverse

from failover.models import Run


def field_errors(response) -> dict[str, list[str]]:
    """The errors the page shows beside each field: {input name: [messages]}."""
    page = html.unescape(response.content.decode())
    found: dict[str, list[str]] = {}
    for block in re.findall(r'<div class="field invalid".*?</div>', page, re.S):
        name = re.search(r'name="(\w+)"', block).group(1)
        found[name] = re.findall(r'<p class="field-error">✖ (.*?)</p>', block)
    return found


def test_it_refuses_to_start_a_drill_without_a_site_naming_the_field(as_role, reference_estate):
    response = as_role("mod").post(reverse("drills"), {})
    assert response.status_code == 422
    assert field_errors(response) == {"site": ["Choose the site whose loss the drill rehearses."]}
    assert not Run.objects.exists()


def test_it_refuses_a_hold_that_is_no_number_or_below_zero_naming_the_field(as_role, reference_estate):
    client = as_role("mod")
    for hold in ("-5", "soon"):
        response = client.get(reverse("drills"), {"site": "WSL", "hold": hold})
        assert response.status_code == 200
        assert field_errors(response) == {"hold": ["Minutes must be a number, 0 or more."]}, hold
        assert 'id="drill-plan"' not in response.content.decode()


def test_it_refuses_a_site_that_does_not_exist_naming_the_field(as_role, reference_estate):
    response = as_role("mod").get(reverse("drills"), {"site": "XX"})
    assert field_errors(response) == {"site": ["There is no site XX."]}


def test_it_refuses_vms_the_sites_loss_would_not_move_naming_the_field(as_role, reference_estate):
    response = as_role("mod").get(reverse("drills"), {"site": "WSL", "vms": "dns-xen01, no-such-vm"})
    assert field_errors(response) == {"vms": ["not VMs of the estate that WSL's loss would move: no-such-vm"]}


def test_a_start_refused_for_blocking_problems_asks_for_the_reason_on_its_field(as_role, reference_estate):
    # Without the lab nothing at the surviving site answers: the plan has blocking problems.
    response = as_role("mod").post(reverse("drills"), {"site": "WSL", "hold": "0"})
    assert response.status_code == 422
    page = html.unescape(response.content.decode())
    assert re.search(r"Override reason</a>: the drill has blocking problems: .*unreachable", page)
    assert 'id="drill-plan"' in page and 'name="override_reason" required' in page
    assert not Run.objects.exists()
