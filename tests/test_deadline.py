"""The thesis' recovery deadline: 24 h after an event on a working day; 06:00 of the next
working day after one on a non-working day (Baden-Württemberg holidays by default)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from failover.runs.deadline import decision_deadline, is_working_day, recovery_deadline

BERLIN = ZoneInfo("Europe/Berlin")


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("detected", "deadline"),
    [
        (at(2026, 11, 24, 15, 0), at(2026, 11, 25, 15, 0)),  # Tuesday 15:00 -> Wednesday 15:00
        (at(2026, 11, 27, 15, 0), at(2026, 11, 28, 15, 0)),  # Friday: 24 h, even into the weekend
        (at(2026, 11, 28, 10, 0), at(2026, 11, 30, 6, 0)),  # Saturday -> Monday 06:00
        (at(2026, 11, 29, 23, 59), at(2026, 11, 30, 6, 0)),  # Sunday night -> Monday 06:00
        (at(2026, 12, 25, 9, 0), at(2026, 12, 28, 6, 0)),  # Christmas (Friday) -> Monday 28th
        (at(2026, 1, 6, 12, 0), at(2026, 1, 7, 6, 0)),  # Epiphany, a holiday in BW only
    ],
)
def test_the_deadline_follows_the_thesis(detected, deadline):
    assert recovery_deadline(detected) == deadline


def test_epiphany_is_a_holiday_in_baden_wuerttemberg_but_not_in_berlin(settings):
    assert not is_working_day(dt.date(2026, 1, 6))
    settings.DRPORTAL_HOLIDAY_SUBDIV = "BE"
    assert is_working_day(dt.date(2026, 1, 6))


def test_the_decision_window_is_four_hours():
    assert decision_deadline(at(2026, 11, 24, 15, 0)) == at(2026, 11, 24, 19, 0)
