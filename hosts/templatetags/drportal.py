from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def percent_of(part, whole) -> str:
    """Width for a bar segment, clamped to 0..100 and formatted for CSS."""
    try:
        value = 100.0 * float(part) / float(whole)
    except (TypeError, ValueError, ZeroDivisionError):
        return "0"
    return f"{max(0.0, min(value, 100.0)):.2f}"
