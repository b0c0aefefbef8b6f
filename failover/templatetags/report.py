"""Template helpers of the reports: signed differences and offsets from the run's start."""

from __future__ import annotations

from django import template
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from .board import duration, minutes

register = template.Library()


@register.filter
def signed_minutes(value) -> str:
    """A step's actual minus planned minutes: "+2.5 min", "−12 min", or "—"."""
    if value is None or value == "":
        return "—"
    value = float(value)
    return ("+" if value > 0 else "−" if value < 0 else "±") + minutes(abs(value))


@register.filter
def offset(seconds) -> str:
    """Seconds after the run started, as "T+4 min 05 s"."""
    if seconds is None or seconds == "":
        return "—"
    return f"T+{duration(seconds)}"


@register.filter
def took(action) -> str:
    """How long an action's last attempt took."""
    if action.started_at and action.finished_at:
        return duration((action.finished_at - action.started_at).total_seconds())
    return "—"


@register.filter
def seconds(value) -> str:
    """A recovery time to the tenth of a second ("6.9 s"); from a minute on also readable
    ("1 h 30 min (5400.0 s)"). Rounded once, so the two figures never disagree."""
    if value is None or value == "":
        return "—"
    value = round(float(value), 1)
    exact = _("%(s)s s") % {"s": number_format(value, 1)}
    return exact if value < 60 else f"{duration(value)} ({exact})"
