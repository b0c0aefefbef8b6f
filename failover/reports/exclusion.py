"""The report page's form to mark a run as counted, an exercise or bad data (the rule
and the log: failover.runs.exclusion)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy

from failover.choices import ReportExclusionChoices


class ExclusionForm(forms.Form):
    report_exclusion = forms.ChoiceField(
        label=gettext_lazy("Left out of the reports"),
        choices=ReportExclusionChoices.choices,
        required=False,
        error_messages={
            "invalid_choice": gettext_lazy(
                "Left out of the reports: %(value)s is not one of the choices (counted, an exercise, bad data)."
            )
        },
    )
