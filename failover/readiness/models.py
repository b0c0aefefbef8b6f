"""What the readiness check found: one ReadinessCheck per pass over the estate, one
SiteVerdict per site and pass, and the findings behind each verdict.

Rows are written only by ``failover.readiness.services``; a verdict is never edited
after its pass, except to record whether its e-mail went out.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from .choices import SeverityChoices, VerdictChoices


class ReadinessCheck(models.Model):
    """One pass of the readiness check over the whole estate."""

    started_at = models.DateTimeField(verbose_name=_("started at"))
    finished_at = models.DateTimeField(verbose_name=_("finished at"))

    class Meta:
        ordering = ("-started_at", "-pk")
        verbose_name = _("readiness check")
        verbose_name_plural = _("readiness checks")
        indexes = [models.Index(fields=("-started_at",), name="readiness_check_started")]

    def __str__(self) -> str:
        return f"readiness check {self.pk} at {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


class SiteVerdict(models.Model):
    """Could this site be lost today? Ready, or not ready with the critical findings why."""

    readiness_check = models.ForeignKey(
        to="readiness.ReadinessCheck",
        on_delete=models.CASCADE,
        related_name="verdicts",
        verbose_name=_("readiness check"),
    )
    site = models.ForeignKey(
        to="hosts.Site",
        on_delete=models.PROTECT,
        related_name="readiness_verdicts",
        verbose_name=_("site (the one lost in the what-if)"),
    )
    verdict = models.CharField(verbose_name=_("verdict"), max_length=16, choices=VerdictChoices.choices)
    # Copied from the check so "the newest verdict of each site" is one index scan.
    checked_at = models.DateTimeField(verbose_name=_("checked at"))
    changed = models.BooleanField(
        verbose_name=_("changed"),
        default=False,
        help_text=_("The site's first verdict, or one that differs from the site's previous verdict."),
    )
    notified_at = models.DateTimeField(verbose_name=_("e-mail sent at"), null=True, blank=True)
    notify_error = models.TextField(verbose_name=_("e-mail error"), blank=True)

    class Meta:
        ordering = ("-checked_at", "site__code")
        verbose_name = _("site verdict")
        verbose_name_plural = _("site verdicts")
        constraints = [
            models.UniqueConstraint(
                fields=("readiness_check", "site"), name="readiness_siteverdict_unique_check_site"
            ),
        ]
        indexes = [
            models.Index(fields=("site", "-checked_at"), name="readiness_verdict_site_newest"),
            models.Index(
                fields=("site", "-checked_at"),
                condition=models.Q(changed=True),
                name="readiness_verdict_site_changes",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.site.code}: {self.get_verdict_display()} at {self.checked_at:%Y-%m-%d %H:%M:%S}"

    @property
    def ready(self) -> bool:
        return self.verdict == VerdictChoices.READY

    @property
    def tone(self) -> str:
        return VerdictChoices.tone(self.verdict)


class ReadinessFinding(models.Model):
    """One reason: what is wrong, how bad, and what to do about it."""

    verdict = models.ForeignKey(
        to="readiness.SiteVerdict",
        on_delete=models.CASCADE,
        related_name="findings",
        verbose_name=_("verdict"),
    )
    severity = models.CharField(verbose_name=_("severity"), max_length=16, choices=SeverityChoices.choices)
    code = models.CharField(
        verbose_name=_("code"), max_length=32, help_text=_("What it is about, e.g. config-missing.")
    )
    subject = models.CharField(
        verbose_name=_("subject"), max_length=200, blank=True, help_text=_("The host, DR group or VM.")
    )
    message = models.TextField(verbose_name=_("finding"))
    fix = models.TextField(verbose_name=_("what to do"), blank=True)

    class Meta:
        # Written critical first, then in the order the check found them.
        ordering = ("verdict", "pk")
        verbose_name = _("readiness finding")
        verbose_name_plural = _("readiness findings")

    def __str__(self) -> str:
        return f"{self.severity} {self.code}: {self.message}"

    @property
    def tone(self) -> str:
        return SeverityChoices.tone(self.severity)
