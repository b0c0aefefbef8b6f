"""English and German: the language follows the browser and can be switched; the German
catalogue translates everything."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

PO = Path(__file__).resolve().parents[2] / "locale" / "de" / "LC_MESSAGES" / "django.po"


def test_the_board_speaks_german_to_a_german_browser(as_role, make_run):
    run = make_run(per_step=1)
    page = (
        as_role("mod").get(reverse("run-board", args=[run.pk]), HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9").content
    )
    page = page.decode()
    assert '<html lang="de">' in page
    assert "Schritte" in page and "Protokoll" in page and "Funktionstests" in page
    assert "Ausstehend" in page and "Läuft" in page
    assert "Anhalten" in page and "Abbrechen" in page
    assert "Vorprüfung: Spiegel konsistent" in page  # step names, though stored in English
    assert "Steps" not in page


def test_the_estate_pages_are_german_too(as_role, reference_estate):
    client = as_role("dradmin")
    estate = client.get(reverse("dashboard"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Bestand" in estate and "Virtuelle Maschinen" in estate and "passt, kein Swapping" in estate
    overview = client.get(reverse("overview"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Übersicht" in overview and "In Betrieb" in overview


def test_the_language_can_be_switched_whatever_the_browser_says(as_role, reference_estate):
    client = as_role("helpdesk")
    response = client.post(reverse("set_language"), {"language": "de", "next": reverse("overview")})
    assert response.status_code == 302
    page = client.get(reverse("overview"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Übersicht" in page and '<option value="de" selected' in page


def test_the_german_catalogue_translates_every_message_and_is_compiled():
    text = PO.read_text(encoding="utf-8")
    entries = text.split("\n\n")[1:]
    untranslated = [
        e
        for e in entries
        if re.search(r'^msgstr(\[\d\])? ""$', e, re.M) and not re.search(r'^msgstr.*"\n"', e, re.M)
    ]
    assert not untranslated, untranslated[:3]
    assert "#, fuzzy" not in text
    with PO.with_suffix(".mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)._catalog
    msgids = {
        m.group(1).encode().decode("unicode_escape").encode("latin1").decode()
        for m in re.finditer(r'^msgid "(.+)"$', text, re.M)
    }
    stale = [m for m in msgids if m not in compiled and (m, 0) not in compiled]
    assert not stale, f"run manage.py compilemessages: {stale[:3]}"
