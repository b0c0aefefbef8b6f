"""Verdicts and the severity of findings, each with a tone for the UI (never colour alone)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class VerdictChoices(models.TextChoices):
    READY = "ready", _("Ready")
    NOT_READY = "not-ready", _("Not ready")

    @classmethod
    def tone(cls, value: str) -> str:
        tones: dict[str, str] = {cls.READY: "ok", cls.NOT_READY: "bad"}
        return tones.get(value, "idle")


class SeverityChoices(models.TextChoices):
    # A critical finding makes the site not ready; a warning is worth knowing and fixing.
    CRITICAL = "critical", _("Critical")
    WARNING = "warning", _("Warning")

    @classmethod
    def tone(cls, value: str) -> str:
        tones: dict[str, str] = {cls.CRITICAL: "bad", cls.WARNING: "warn"}
        return tones.get(value, "idle")


class FindingCodes:
    """What a finding is about; stable strings for the API, the metrics and the tests."""

    REPLICATION = "replication"  # replication not consistent at the target array
    RPO = "rpo"  # replication lag above the recovery point objective
    FAILED_OVER = "failed-over"  # the target copy is already the source
    GROUPS_UNREADABLE = "groups-unreadable"  # the target array did not answer
    GROUPS_MANUAL = "groups-manual"  # a manual array: a person must look
    CONFIG_MISSING = "config-missing"
    CONFIG_UNREADABLE = "config-unreadable"
    BRIDGE_MISSING = "bridge-missing"
    CAPACITY = "capacity"  # the what-if does not fit without swapping
    UNPLACED = "unplaced"
    UNRECOVERABLE = "unrecoverable"  # no replica at a surviving site
    NORMAL_CAPACITY = "normal-capacity"  # normal operation itself does not fit
    UNREACHABLE = "unreachable"
    HOST_KEY = "host-key"  # the host presented a key other than the pinned one
    TOOLSTACK = "toolstack"  # SSH works, the Xen toolstack does not answer
    NEVER_DRILLED = "never-drilled"
    DRILL_AGE = "drill-age"
    PORTAL_REPLICATION = "portal-replication"  # the portal's own database does not replicate (issue 14)
