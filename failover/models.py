"""Disasters and their recovery runs: Run, Step, Action, RunEvent.

A Run's plan is frozen into its Steps and Actions when it starts; later inventory edits
do not change it. Actions change state only through conditional UPDATEs in
``failover.engine`` and ``failover.runs`` (never by save() from a stale copy).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .choices import (
    ActionKindChoices,
    ActionStateChoices,
    DisasterClassChoices,
    EventCategoryChoices,
    ReportExclusionChoices,
    RunKindChoices,
    RunModeChoices,
    RunStateChoices,
    StepStateChoices,
)


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
    declared_at = models.DateTimeField(verbose_name=_("declared at"))
    declared_by = models.ForeignKey(
        to=settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="declared_disasters",
        verbose_name=_("declared by"),
    )
    approved_by = models.ForeignKey(
        to=settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="approved_disasters",
        null=True,
        blank=True,
        verbose_name=_("approved by (four eyes)"),
    )
    approved_at = models.DateTimeField(verbose_name=_("approved at"), null=True, blank=True)
    isolation_confirmed_by = models.ForeignKey(
        to=settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        verbose_name=_("isolation confirmed by"),
    )
    isolation_confirmed_at = models.DateTimeField(
        verbose_name=_("isolation confirmed at"), null=True, blank=True
    )
    deadline = models.DateTimeField(verbose_name=_("recovery deadline"))
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

    @property
    def decision_minutes(self) -> float:
        return (self.declared_at - self.detected_at).total_seconds() / 60


class Run(models.Model):
    disaster = models.ForeignKey(
        to="failover.Disaster",
        on_delete=models.PROTECT,
        related_name="runs",
        null=True,
        blank=True,
        verbose_name=_("disaster"),
    )
    kind = models.CharField(verbose_name=_("kind"), max_length=16, choices=RunKindChoices.choices)
    parent = models.ForeignKey(
        to="failover.Run",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="followups",
        verbose_name=_("follows"),
        help_text=_("the drill a cleanup undoes, the failover a failback reverses"),
    )
    hold_until = models.DateTimeField(
        verbose_name=_("drill held up until"),
        null=True,
        blank=True,
        help_text=_("a drill's clones stay up for people to test until then, or until ended"),
    )
    cleaned_up_at = models.DateTimeField(
        verbose_name=_("drill cleaned up at"),
        null=True,
        blank=True,
        help_text=_("when the cleanup generated from this drill's undo ledger finished"),
    )
    mode = models.CharField(verbose_name=_("mode"), max_length=16, choices=RunModeChoices.choices)
    state = models.CharField(
        verbose_name=_("state"),
        max_length=16,
        choices=RunStateChoices.choices,
        default=RunStateChoices.RUNNING,
    )
    lost_site = models.ForeignKey(to="hosts.Site", on_delete=models.PROTECT, related_name="+")
    target_site = models.ForeignKey(to="hosts.Site", on_delete=models.PROTECT, related_name="+")
    plan = models.JSONField(verbose_name=_("frozen plan"), default=dict)
    overrides = models.JSONField(
        verbose_name=_("overridden blocking problems"),
        default=list,
        blank=True,
        help_text=_("with the typed reason"),
    )
    created_by = models.ForeignKey(to=settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)
    finished_at = models.DateTimeField(verbose_name=_("finished at"), null=True, blank=True)
    event_seq = models.PositiveIntegerField(default=0, help_text=_("last RunEvent number"))
    summary = models.JSONField(default=dict, blank=True)
    epoch = models.PositiveIntegerField(
        verbose_name=_("epoch"), default=1, help_text=_("the portal's epoch it was started in (two sites)")
    )
    report_exclusion = models.CharField(
        verbose_name=_("left out of the reports"),
        max_length=16,
        choices=ReportExclusionChoices.choices,
        default=ReportExclusionChoices.COUNTED,
        blank=True,
        help_text=_(
            "an exercise or bad data (an implausible time): listed, but not counted in the "
            "recovery times and test figures"
        ),
    )

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            # Two reapers (two workers) may both decide a drill is due: one cleanup wins.
            models.UniqueConstraint(
                fields=("parent",), condition=Q(kind="cleanup"), name="failover_one_cleanup_per_drill"
            ),
        ]
        verbose_name = _("run")
        verbose_name_plural = _("runs")

    def __str__(self) -> str:
        return f"run {self.pk}: {self.kind} {self.lost_site.code} → {self.target_site.code} ({self.state})"

    @property
    def active(self) -> bool:
        return self.state in RunStateChoices.active()


class RunReportMark(Run):
    """A run as the admin shows it to mark it for the reports (counted, an exercise, bad
    data): the one thing of a run anybody may change there (failover.admin)."""

    class Meta:
        proxy = True
        verbose_name = _("run's mark for the reports")
        verbose_name_plural = _("runs' marks for the reports")


class RunGroupClaim(models.Model):
    """At most one active run per DR group, enforced by the database (a partial unique
    index), so twenty concurrent declarations make one run."""

    run = models.ForeignKey(to="failover.Run", on_delete=models.CASCADE, related_name="claims")
    group = models.ForeignKey(to="hosts.DRGroup", on_delete=models.PROTECT, related_name="run_claims")
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=("group",), condition=Q(active=True), name="failover_one_active_run_per_group"
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} claims {self.group_id}{'' if self.active else ' (released)'}"


class Step(models.Model):
    run = models.ForeignKey(to="failover.Run", on_delete=models.CASCADE, related_name="steps")
    number = models.PositiveSmallIntegerField()
    key = models.CharField(max_length=16)
    name = models.CharField(max_length=200)
    planned_minutes = models.FloatField(default=0)
    state = models.CharField(
        max_length=16, choices=StepStateChoices.choices, default=StepStateChoices.PENDING
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("run", "number")
        constraints = [models.UniqueConstraint(fields=("run", "number"), name="failover_step_unique_number")]

    def __str__(self) -> str:
        return f"step {self.number} {self.key}"

    @property
    def actual_minutes(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds() / 60
        return None


class Action(models.Model):
    run = models.ForeignKey(to="failover.Run", on_delete=models.CASCADE, related_name="actions")
    step = models.ForeignKey(to="failover.Step", on_delete=models.CASCADE, related_name="actions")
    kind = models.CharField(max_length=32, choices=ActionKindChoices.choices)
    target = models.CharField(max_length=200, help_text=_("what it acts on, for people"))
    host = models.CharField(
        max_length=64, blank=True, help_text=_("the SSH host it talks to (concurrency bound)")
    )
    array = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text=_("the storage array it opens a management session on (concurrency bound)"),
    )
    params = models.JSONField(default=dict, blank=True)
    order = models.PositiveIntegerField(default=0)
    tier = models.PositiveSmallIntegerField(default=0, help_text=_("within a step, lower tiers go first"))
    optional = models.BooleanField(default=False, help_text=_("a failure is recorded and the run goes on"))
    depends_on = models.ManyToManyField(to="self", symmetrical=False, blank=True, related_name="dependants")
    state = models.CharField(
        max_length=16, choices=ActionStateChoices.choices, default=ActionStateChoices.PENDING
    )
    attempt = models.PositiveIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=8, blank=True, help_text=_("functional tests: ok, down or note"))
    result = models.JSONField(default=dict, blank=True)
    output = models.TextField(blank=True, help_text=_("the last commands and what they printed"))
    error = models.TextField(blank=True)
    reason = models.TextField(blank=True, help_text=_("why it was skipped or marked done by hand"))
    undo = models.JSONField(default=dict, blank=True, help_text=_("how to undo what it did"))
    epoch = models.PositiveIntegerField(
        default=1,
        help_text=_(
            "the portal's epoch it was created or last claimed in: an older one was the lost portal's"
        ),
    )

    class Meta:
        ordering = ("run", "step__number", "order", "pk")
        indexes = [
            models.Index(fields=("run", "state"), name="failover_action_run_state"),
            models.Index(fields=("state", "lease_expires_at"), name="failover_action_lease"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.target}"


class RunEvent(models.Model):
    """Every state change of a run, numbered per run: the source of truth of the board
    (the SSE id); Redis only rings the doorbell."""

    run = models.ForeignKey(to="failover.Run", on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    kind = models.CharField(max_length=32)
    message = models.TextField()
    action = models.ForeignKey(
        to="failover.Action", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    user = models.ForeignKey(
        to=settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("run", "seq")
        constraints = [models.UniqueConstraint(fields=("run", "seq"), name="failover_runevent_unique_seq")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind}: {self.message}"

    def save(self, *args, **kwargs) -> None:
        # The audit log is append-only: a recorded event is never rewritten.
        if not self._state.adding:
            raise PermissionError(
                f"run event #{self.seq} of run {self.run_id} is part of the audit log: it cannot change"
            )
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError(
            f"run event #{self.seq} of run {self.run_id} is part of the audit log: it cannot be deleted"
        )
