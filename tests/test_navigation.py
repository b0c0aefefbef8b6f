"""Every page a role may open is reachable: the navigation links the readiness page and the
reports, and the estate page links the memory-profile editor."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from hosts.models import MemoryProfile

pytestmark = pytest.mark.django_db


def nav_links(html: str) -> set[str]:
    nav = re.search(r"<nav[^>]*>(.*?)</nav>", html, re.S)
    assert nav, "no navigation"
    return set(re.findall(r'href="([^"]+)"', nav.group(1)))


@pytest.mark.parametrize("role", ["helpdesk", "mod", "dradmin"])
def test_the_navigation_links_readiness_and_reports_for_every_role(client_as, reference_estate, role):
    html = client_as(role).get(reverse("overview")).content.decode()
    links = nav_links(html)
    assert reverse("reports:readiness") in links and reverse("reports:index") in links
    for url in (reverse("reports:readiness"), reverse("reports:index")):
        assert client_as(role).get(url).status_code == 200, url


def test_the_estate_page_links_the_profile_editor_and_each_profile(client_as, reference_estate):
    html = client_as("dradmin").get(reverse("dashboard")).content.decode()
    assert re.search(
        rf'id="profiles-link"><a href="{reverse("profile-list")}">Change the memory profiles', html
    )
    for profile in MemoryProfile.objects.all():
        assert f'href="{reverse("profile-detail", args=[profile.pk])}"' in html, profile.name


@pytest.mark.parametrize("role,shown", [("dradmin", True), ("helpdesk", False), ("mod", False)])
def test_the_dr_admin_has_an_inventory_entry_leading_to_the_admins_hosts_app(
    client_as, reference_estate, role, shown
):
    inventory = reverse("admin:app_list", args=["hosts"])
    html = client_as(role).get(reverse("dashboard")).content.decode()
    assert (inventory in nav_links(html)) is shown
    assert ('id="inventory-note"' in html) is shown
    if shown:
        assert "Hosts, VMs, DR groups, storage arrays and sites are changed in the inventory" in html
        page = client_as(role).get(inventory)
        assert page.status_code == 200 and reverse("admin:hosts_host_changelist").encode() in page.content
