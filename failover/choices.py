"""Thesis table 1 (disaster classes) and table 2 (decision criteria), with descriptions."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class DisasterClassChoices(models.IntegerChoices):
    CATASTROPHE = 1, _("1 – Catastrophe: all data centres, all WAN/SAN/LAN links or all power/cooling gone")
    EMERGENCY = 2, _("2 – Emergency: one data centre, telecom, backup or vault room, or one supply of one DC")
    FAILURE = 3, _("3 – Failure: one hardware system or component")


class EventCategoryChoices(models.TextChoices):
    SYSTEMS_DOWN = "systems-down", _("Total failure of the in-scope systems")
    POWER = "power", _("Power and generator failure")
    DC_INACCESSIBLE = (
        "dc-inaccessible",
        _("Data centre not accessible (fire, flood, contamination, extinguishing)"),
    )
    NETWORK = "network", _("Network failure")
    COOLING = "cooling", _("Cooling failure (about 2 h)")
    FORCE_MAJEURE = "force-majeure", _("Force majeure")
    DELIBERATE = "deliberate", _("Deliberate acts (terror, sabotage, hackers, viruses)")
    ORGANISATIONAL = "organisational", _("Organisational failure")
    HUMAN_ERROR = "human-error", _("Human error")
