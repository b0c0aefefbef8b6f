"""Status and kind choices, each with a colour for the UI (NetBox's habit).

Colours are never the only signal: templates always print the label and an icon too.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class SiteRoleChoices(models.TextChoices):
    PRIMARY = "primary", _("Primary")
    ALTERNATE = "alternate", _("Alternate (DR)")


class ArrayKindChoices(models.TextChoices):
    EVA_CA = "eva-ca", _("HP EVA Continuous Access")
    DRBD = "drbd", _("DRBD")
    CEPH_RBD = "ceph-rbd", _("Ceph RBD mirroring")
    MANUAL = "manual", _("Manual (storage team)")


class ToolstackChoices(models.TextChoices):
    XL = "xl", "xl"
    XM = "xm", "xm"


class ReplicationModeChoices(models.TextChoices):
    SYNC = "sync", _("Synchronous")
    ASYNC = "async", _("Asynchronous")


class ReplicationStateChoices(models.TextChoices):
    CONSISTENT = "consistent", _("Consistent")
    SYNCING = "syncing", _("Synchronising")
    SUSPENDED = "suspended", _("Suspended")
    BROKEN = "broken", _("Broken")
    NONE = "none", _("No replica")
    UNKNOWN = "unknown", _("Unknown")

    @classmethod
    def colour(cls, value: str) -> str:
        colours: dict[str, str] = {
            cls.CONSISTENT: "green",
            cls.SYNCING: "yellow",
            cls.SUSPENDED: "orange",
            cls.BROKEN: "red",
            cls.NONE: "grey",
        }
        return colours.get(value, "grey")


class LanRoleChoices(models.TextChoices):
    USER = "user", _("User LAN")
    BACKUP = "backup", _("Backup LAN")
    ADMIN = "admin", _("Admin LAN")
    ISOLATED = "isolated", _("Isolated (drill)")


class DomainStateChoices(models.TextChoices):
    RUNNING = "running", _("Running")
    STOPPED = "stopped", _("Not running")
    PAUSED = "paused", _("Paused")
    CRASHED = "crashed", _("Crashed")
    UNKNOWN = "unknown", _("Unknown")
