"""Disasters and their recovery runs. The runbook engine builds on these."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .choices import DisasterClassChoices, EventCategoryChoices


class Disaster(models.Model):
    lost_site = models.ForeignKey(
        to="hosts.Site", on_delete=models.PROTECT, related_name="disasters", verbose_name=_("lost site")
    )
    disaster_class = models.PositiveSmallIntegerField(
        verbose_name=_("disaster class"), choices=DisasterClassChoices.choices
    )
    category = models.CharField(
        verbose_name=_("event category"), max_length=32, choices=EventCategoryChoices.choices
    )
    detected_at = models.DateTimeField(verbose_name=_("detected at"))
    declared_at = models.DateTimeField(verbose_name=_("declared at"), auto_now_add=True)
    declared_by = models.ForeignKey(
        to=settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="declared_disasters",
        verbose_name=_("declared by"),
    )
    notes = models.TextField(verbose_name=_("notes"), blank=True)

    class Meta:
        ordering = ("-declared_at",)
        verbose_name = _("disaster")
        verbose_name_plural = _("disasters")
        permissions = [
            ("declare_disaster", "Can declare a disaster and start a failover"),
            ("operate_run", "Can pause, resume, abort, retry and skip in a run"),
        ]

    def __str__(self) -> str:
        return f"{self.lost_site.code} lost, class {self.disaster_class} ({self.category})"
