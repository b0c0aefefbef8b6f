"""The recovery deadline of the thesis: an event on a working day must be recovered
24 h later; one on a non-working day by 06:00 of the next working day. Working days
are Monday to Friday minus public holidays (``holidays``; Baden-Württemberg by default)."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from django.conf import settings

DECISION_WINDOW = dt.timedelta(hours=4)
RECOVERY_WINDOW = dt.timedelta(hours=24)
SERVICE_START = dt.time(6, 0)


@lru_cache(maxsize=8)
def _calendar(country: str, subdiv: str | None):
    return holidays.country_holidays(country, subdiv=subdiv or None)


def is_working_day(day: dt.date) -> bool:
    cal = _calendar(settings.DRPORTAL_HOLIDAY_COUNTRY, settings.DRPORTAL_HOLIDAY_SUBDIV)
    return day.weekday() < 5 and day not in cal


def recovery_deadline(detected_at: dt.datetime) -> dt.datetime:
    """When services must be back, for an event noticed at ``detected_at`` (aware)."""
    tz = ZoneInfo(settings.TIME_ZONE)
    local = detected_at.astimezone(tz)
    if is_working_day(local.date()):
        return detected_at + RECOVERY_WINDOW
    day = local.date() + dt.timedelta(days=1)
    while not is_working_day(day):
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, SERVICE_START, tzinfo=tz)


def decision_deadline(detected_at: dt.datetime) -> dt.datetime:
    """The thesis' table 2: the DR plan must be declared at most 4 h after the event is noticed."""
    return detected_at + DECISION_WINDOW
