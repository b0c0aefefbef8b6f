"""/runbook/: docs/two-sites.md (and the other docs/*.md) inside the portal's layout,
read-only and safe (drportal/runbook.py)."""

from __future__ import annotations

import re

import pytest

from drportal import runbook
from tests.board.live import free_port

pytestmark = pytest.mark.django_db

SECTIONS = (
    "Normal operation",
    "Taking over",
    "The old site comes back",
    "Rejoining",
    "Failing back the portal itself",
)


def test_the_runbook_shows_the_two_site_runbook_with_its_sections_inside_the_layout(client_as):
    page = client_as("helpdesk").get("/runbook/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'class="topbar"' in html, "not inside the portal's layout"
    assert re.search(r'<h1 id="[a-z0-9-]+">drportal at two sites', html), "no title heading"
    for section in SECTIONS:
        assert re.search(rf'<h2 id="[a-z0-9-]+">{re.escape(section)}', html), f"no section {section!r}"
        # the contents link to each section
        anchor = re.search(rf'<h2 id="([a-z0-9-]+)">{re.escape(section)}', html).group(1)
        assert f'href="#{anchor}"' in html
    assert "docs/two-sites.md" in html


def test_raw_html_in_a_document_is_shown_as_text_never_passed_through(client_as, tmp_path, monkeypatch):
    (tmp_path / "two-sites.md").write_text(
        "# Title\n\n<script>alert('x')</script>\n\nA <b onclick=\"x()\">word</b> and "
        "[a link](javascript:alert(1)).\n\n## Section <i>two</i>\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(runbook, "DOCS_DIR", tmp_path)
    html = client_as("helpdesk").get("/runbook/").content.decode()
    body = html[html.index('class="runbook-body"') :]
    assert "<script>alert" not in body and "&lt;script&gt;alert" in body
    assert "<b onclick" not in body and "&lt;b onclick" in body
    assert 'href="javascript:' not in body
    assert "<i>two</i>" not in body


def test_another_document_is_served_by_name_and_an_unknown_or_odd_name_is_404(
    client_as, tmp_path, monkeypatch
):
    (tmp_path / "two-sites.md").write_text("# Two sites\n", encoding="utf-8")
    (tmp_path / "upgrades.md").write_text("# Upgrades\n\n## Before you start\n", encoding="utf-8")
    monkeypatch.setattr(runbook, "DOCS_DIR", tmp_path)
    client = client_as("helpdesk")
    page = client.get("/runbook/upgrades/").content.decode()
    assert '<h2 id="before-you-start">Before you start</h2>' in page
    assert 'href="/runbook/upgrades/"' not in page and "<strong>upgrades</strong>" in page
    assert 'href="/runbook/two-sites/"' in client.get("/runbook/upgrades/").content.decode()
    assert client.get("/runbook/missing/").status_code == 404
    assert client.get("/runbook/..%2Fsettings/").status_code == 404
    assert client.get("/runbook/Two-Sites/").status_code == 404


def test_the_runbook_needs_a_login(client):
    page = client.get("/runbook/")
    assert page.status_code == 302 and "/accounts/login/" in page["Location"]


def test_the_site_page_links_to_the_runbook_standalone_and_at_two_sites(settings, client_as):
    settings.DRPORTAL_SITE = ""
    assert 'href="/runbook/"' in client_as("helpdesk").get("/site/").content.decode()
    settings.DRPORTAL_SITE = "WSL"
    settings.DRPORTAL_PEER_DATABASE_URL = f"postgresql://postgres@127.0.0.1:{free_port()}/drportal"
    client = client_as("helpdesk")
    site = client.get("/site/").content.decode()
    assert 'href="/runbook/"' in site
    # and the banner on every page
    overview = client.get("/").content.decode()
    banner = overview[overview.index('id="site-banner"') :]
    assert 'href="/runbook/"' in banner[: banner.index("</div>")]
