"""The notes given when the disaster was declared are on the board, not only in the report."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_the_board_shows_the_disaster_s_notes_escaped_with_their_line_breaks(as_role, make_run):
    run = make_run()
    run.disaster.notes = "Power cut in hall 2.\nCall <Facilities> at 3 a.m."
    run.disaster.save(update_fields=["notes"])
    page = as_role("helpdesk").get(reverse("run-board", args=[run.pk])).content.decode()
    assert "<dt>Notes</dt>" in page
    assert "Power cut in hall 2.<br>Call &lt;Facilities&gt; at 3 a.m." in page


def test_a_board_without_notes_shows_no_empty_notes_line(as_role, make_run):
    run = make_run()
    page = as_role("helpdesk").get(reverse("run-board", args=[run.pk])).content.decode()
    assert "<dt>Notes</dt>" not in page
