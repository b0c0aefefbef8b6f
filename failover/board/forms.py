"""Forms of the board: declaring a disaster, planning a drill, filtering the incident list.

Forms parse and check input; the rules of a declaration live in
``runs.failover.check_declaration``, whose errors name the field they belong to.
"""

from __future__ import annotations

from typing import cast

from django import forms
from django.contrib.auth import authenticate
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from failover.choices import DisasterClassChoices, EventCategoryChoices, RunKindChoices, RunStateChoices
from failover.runs.drill import DRILL_HOLD_MAX_MINUTES

# Thesis table 1 (Desasterfälle): what each class looks like.
CLASS_DETAILS = {
    DisasterClassChoices.CATASTROPHE: _(
        "Examples: nuclear accident (a radioactive release at Philippsburg)."
    ),
    DisasterClassChoices.EMERGENCY: _(
        "Examples: biological or chemical accident, fire or explosion, water damage. "
        "The loss of one site: this is what the DR plan is for."
    ),
    DisasterClassChoices.FAILURE: _(
        "Example: a hardware defect of a server. Ordinary operations, not a DR case."
    ),
}

# Thesis table 2 (Entscheidungskriterien): examples, the longest wait before the DR plan
# must be declared, and who notices.
CATEGORY_DETAILS = {
    EventCategoryChoices.SYSTEMS_DOWN: _(
        "“In scope” systems have failed or cannot be used. Declare within 4 h; noticed by HP."
    ),
    EventCategoryChoices.POWER: _(
        "Power fails and the generator does not start. Declare within 4 h; noticed by HP."
    ),
    EventCategoryChoices.DC_INACCESSIBLE: _(
        "The data centre (or data communication, backup or vault room) cannot be entered: fire, "
        "flooding, contamination, radiation, the extinguishing system went off. Declare within 4 h; "
        "noticed by the security control centre."
    ),
    EventCategoryChoices.NETWORK: _(
        "The whole data centre, data communication room or backup room is cut off. "
        "Declare within 4 h; noticed by HP."
    ),
    EventCategoryChoices.COOLING: _(
        "The data centre's air conditioning failed. Declare within about 2 h; noticed by HP "
        "(CDM team, 8×5) or the security control centre."
    ),
    EventCategoryChoices.FORCE_MAJEURE: _(
        "Earthquake, mining damage, plane crash, flood, tornado, fire, rain, snow, ice. "
        "Declare within 4 h; noticed by HP or the security control centre."
    ),
    EventCategoryChoices.DELIBERATE: _(
        "Terror, threats, bombs, espionage, sabotage, contamination, vandalism, hackers, viruses. "
        "Declare within 4 h; noticed by HP or the customer."
    ),
    EventCategoryChoices.ORGANISATIONAL: _(
        "No coordination (a power shutdown), rules ignored (core drilling in the data centre), "
        "big changes not agreed. Declare within 4 h; noticed by HP or the customer."
    ),
    EventCategoryChoices.HUMAN_ERROR: _(
        "Emergency stop pressed by mistake, wrong staffing or training, intoxicants. "
        "Declare within 4 h; noticed by HP or the customer."
    ),
}

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


class ServiceErrorsForm(forms.Form):
    """A form whose service may still refuse: its ValidationError lands on the field it
    names (through SERVICE_FIELDS where the names differ), else on the form."""

    SERVICE_FIELDS: dict[str, str] = {}

    def add_service_errors(self, exc: ValidationError) -> None:
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc.messages)
            return
        for name, messages in exc.message_dict.items():
            field = self.SERVICE_FIELDS.get(name, name)
            self.add_error(field if field in self.fields else None, messages)


class DeclareForm(ServiceErrorsForm):
    lost_site = forms.ChoiceField(label=_("Lost site"), widget=forms.RadioSelect)
    disaster_class = forms.TypedChoiceField(
        label=_("Disaster class (thesis table 1)"),
        choices=DisasterClassChoices.choices,
        coerce=int,
        initial=DisasterClassChoices.EMERGENCY,
        widget=forms.RadioSelect,
    )
    category = forms.ChoiceField(
        label=_("Event category (thesis table 2)"),
        choices=EventCategoryChoices.choices,
        widget=forms.RadioSelect,
    )
    detected_at = forms.DateTimeField(
        label=_("Noticed at"),
        input_formats=[DATETIME_LOCAL, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL),
        help_text=_("When the event was noticed: the recovery deadline counts from here."),
    )
    confirm_detected_at = forms.BooleanField(
        label=_("I confirm this time"),
        required=False,
        help_text=_("Needed when the event was noticed long ago (more than the portal's limit)."),
    )
    notes = forms.CharField(label=_("Notes"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    confirm_isolated = forms.BooleanField(label=_("The lost site is isolated"), required=False)
    override_reason = forms.CharField(
        label=_("Reason to start despite the blocking problems"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    plan_digest = forms.CharField(required=False, widget=forms.HiddenInput)
    approver_username = forms.CharField(label=_("Second Manager on Duty: user name"), required=False)
    approver_password = forms.CharField(
        label=_("Second Manager on Duty: password"), required=False, widget=forms.PasswordInput
    )

    SERVICE_FIELDS = {"approver": "approver_username"}

    def __init__(self, *args, sites, four_eyes: bool, request=None, **kwargs) -> None:
        kwargs.setdefault("initial", {}).setdefault(
            "detected_at", timezone.localtime().replace(second=0, microsecond=0)
        )
        super().__init__(*args, **kwargs)
        self.request = request
        self.four_eyes = four_eyes
        cast(forms.ChoiceField, self.fields["lost_site"]).choices = [
            (s.code, f"{s.code} — {s.name} ({s.get_role_display()})") for s in sites
        ]
        if not four_eyes:
            del self.fields["approver_username"]
            del self.fields["approver_password"]

    @property
    def class_options(self):
        return [(radio, CLASS_DETAILS.get(int(radio.data["value"]), "")) for radio in self["disaster_class"]]

    @property
    def category_options(self):
        return [(radio, CATEGORY_DETAILS.get(radio.data["value"], "")) for radio in self["category"]]

    def clean(self):
        data = super().clean()
        if self.four_eyes:
            name, password = data.get("approver_username", ""), data.get("approver_password", "")
            data["approver"] = None
            if name and password:
                approver = authenticate(self.request, username=name, password=password)
                if approver is None:
                    self.add_error("approver_username", _("Wrong user name or password."))
                data["approver"] = approver
        return data

    def declaration(self) -> dict:
        """The keyword arguments of ``runs.failover.disaster_declare`` this form supplies."""
        d = self.cleaned_data
        return {
            "lost_site": d["lost_site"],
            "disaster_class": d["disaster_class"],
            "category": d["category"],
            "detected_at": d["detected_at"],
            "confirm_detected_at": d["confirm_detected_at"],
            "override_reason": d["override_reason"],
            "confirm_isolated": d["confirm_isolated"],
            "approver": d.get("approver"),
            "notes": d["notes"],
        }


class DrillForm(ServiceErrorsForm):
    """What a drill rehearses: the lost site, whether production shrinks, which VMs, how
    long the clones stay up. Its errors name the field and the reason."""

    site = forms.ChoiceField(
        label=_("The site whose loss is rehearsed"),
        widget=forms.RadioSelect,
        error_messages={
            "required": _("Choose the site whose loss the drill rehearses."),
            "invalid_choice": _("There is no site %(value)s."),
        },
    )
    shrink = forms.BooleanField(
        label=_(
            "Shrink production at the surviving site to its disaster memory (needed when the clones do not fit beside it)"
        ),
        required=False,
    )
    vms = forms.CharField(
        label=_("Only these VMs (comma-separated; empty: all)"), required=False, max_length=500
    )
    hold = forms.FloatField(
        label=_("Keep the clones up for testers (minutes)"),
        required=False,
        min_value=0,
        max_value=DRILL_HOLD_MAX_MINUTES,
        error_messages={
            "invalid": _("Minutes must be a number, 0 or more."),
            "min_value": _("Minutes must be a number, 0 or more."),
            "max_value": _("At most a week (%(limit_value)s minutes)."),
        },
    )
    override_reason = forms.CharField(label=_("Override reason"), required=False, max_length=500)

    def __init__(self, *args, sites, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["site"]).choices = [
            (s.code, f"{s.code} — {s.name}") for s in sites
        ]

    def clean_vms(self) -> list[str]:
        return [v.strip() for v in self.cleaned_data["vms"].split(",") if v.strip()]

    def clean_hold(self) -> float:
        return self.cleaned_data["hold"] or 0.0

    def plan_options(self) -> dict:
        """The keyword arguments of ``runs.drill.build_drill_plan`` this form supplies."""
        d = self.cleaned_data
        return {"site": d["site"], "shrink": d["shrink"], "hold_minutes": d["hold"], "vms": d["vms"]}


class IncidentFilterForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("Kind"), required=False, choices=[("", _("all kinds")), *RunKindChoices.choices]
    )
    state = forms.ChoiceField(
        label=_("State"),
        required=False,
        choices=[
            ("", _("all states")),
            ("active", _("active (running, paused, waiting)")),
            *RunStateChoices.choices,
        ],
    )
    site = forms.ChoiceField(label=_("Site"), required=False)
    since = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, sites, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["site"]).choices = [("", _("all sites"))] + [
            (s.code, s.code) for s in sites
        ]

    def filters(self) -> dict:
        if not self.is_valid():
            return {}
        return {k: v for k, v in self.cleaned_data.items() if v}
