"""Template helpers of the board: states as icon + text, durations people can read."""

from __future__ import annotations

from django import template
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.translation import gettext as _

register = template.Library()

# Never colour alone: every state is drawn as icon + label; the tone only adds colour.
STATE_ICONS = {
    "running": "▶",
    "paused": "❚❚",
    "waiting": "⚑",
    "succeeded": "✔",
    "failed": "✖",
    "aborted": "⊘",
    "stopped": "⊘",
    "pending": "○",
    "queued": "⋯",
    "done": "✔",
    "skipped": "⤼",
    "manual": "⚑",
    "attention": "⚠",
    "ok": "✔",
    "down": "✖",
    "note": "ℹ",
    "not-run": "○",
}
STATE_TONES = {
    "succeeded": "ok",
    "done": "ok",
    "ok": "ok",
    "failed": "bad",
    "aborted": "bad",
    "down": "bad",
    "attention": "bad",
    "waiting": "warn",
    "manual": "warn",
    "paused": "warn",
    "stopped": "warn",
    "note": "warn",
    "running": "busy",
    "queued": "busy",
}


@register.simple_tag
def state(value: str, label: str = "") -> str:
    """A state as icon and text (never colour alone); the tone only adds colour."""
    return format_html(
        '<span class="state tone-{}" data-state="{}"><span class="icon" aria-hidden="true">{}</span> {}</span>',
        STATE_TONES.get(value, "idle"),
        value,
        STATE_ICONS.get(value, "•"),
        label or value,
    )


@register.filter
def duration(seconds) -> str:
    """12.3 s, 4 min 05 s, 2 h 07 min; negative values read as their size."""
    if seconds is None or seconds == "":
        return "—"
    seconds = abs(float(seconds))
    if seconds < 60:
        return _("%(s)s s") % {"s": number_format(seconds, 1)}
    mins, secs = divmod(round(seconds), 60)
    if mins < 60:
        return _("%(m)d min %(s)02d s") % {"m": mins, "s": secs}
    hours, mins = divmod(mins, 60)
    return _("%(h)d h %(m)02d min") % {"h": hours, "m": mins}


@register.filter
def minutes(value) -> str:
    """Planned and actual minutes of a step: whole minutes, tenths below ten, seconds below one."""
    if value is None or value == "":
        return "—"
    value = float(value)
    if 0 < value < 1:  # a lab run's steps take seconds
        return _("%(s)s s") % {"s": number_format(value * 60, 1)}
    return _("%(m)s min") % {"m": number_format(value, 1 if value < 10 else 0)}


@register.filter
def pct(value) -> str:
    """A float as a CSS/SVG percentage with a dot, whatever the language's decimal mark."""
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return "0"
