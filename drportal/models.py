"""The portal's own facts (not the estate's, not a run's): the epochs of a two-site portal.

An epoch starts when a standby portal takes over (``manage.py take_over``); every run and
action records the epoch it was created or claimed in. The rows are the audit of every
take-over: who, when, what the peer answered and the typed override, if any. Epoch 1 is
the portal as first installed (written by the migration)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Epoch(models.Model):
    number = models.PositiveIntegerField(verbose_name=_("epoch"), unique=True)
    site = models.CharField(
        verbose_name=_("site"), max_length=16, blank=True, help_text=_("the site whose portal started it")
    )
    started_at = models.DateTimeField(verbose_name=_("started at"))
    started_by = models.ForeignKey(
        to=settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("started by"),
    )
    confirmation = models.CharField(verbose_name=_("typed confirmation"), max_length=200, blank=True)
    override_reason = models.TextField(
        verbose_name=_("override reason"),
        blank=True,
        help_text=_("typed by the Manager on Duty when the peer still answered as primary"),
    )
    peer_state = models.TextField(verbose_name=_("what the peer answered"), blank=True)

    class Meta:
        ordering = ("-number",)
        verbose_name = _("epoch")
        verbose_name_plural = _("epochs")

    def __str__(self) -> str:
        return f"epoch {self.number}" + (f" ({self.site})" if self.site else "")
