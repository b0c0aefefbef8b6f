"""The audit log in the admin: disasters, runs and their numbered events, to read only.

Who declared what, who overrode which problem and every state change of a run are
written by drportal alone (failover.runs, failover.engine); nobody edits or deletes
them here, not even a superuser: no add, change or delete permission, no bulk actions.
"""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from failover.runs.exclusion import may_mark, run_mark_for_reports

from .models import Disaster, Run, RunEvent, RunReportMark


class AuditLogAdmin(admin.ModelAdmin):
    """View only, for everyone."""

    actions = None

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Disaster)
class DisasterAdmin(AuditLogAdmin):
    list_display = ("lost_site", "disaster_class", "category", "detected_at", "declared_at", "declared_by")
    list_filter = ("lost_site", "disaster_class", "category")


@admin.register(Run)
class RunAdmin(AuditLogAdmin):
    list_display = ("pk", "kind", "mode", "lost_site", "target_site", "state", "created_by", "created_at")
    list_filter = ("kind", "mode", "state", "lost_site")
    list_select_related = ("lost_site", "target_site", "created_by")
    readonly_fields = ("event_log",)

    @admin.display(description="event log")
    def event_log(self, run: Run) -> str:
        url = reverse("admin:failover_runevent_changelist") + f"?run={run.pk}"
        return format_html('<a href="{}">{} events</a>', url, run.event_seq)


@admin.register(RunEvent)
class RunEventAdmin(AuditLogAdmin):
    list_display = ("run", "seq", "created_at", "kind", "user", "message")
    list_filter = ("kind",)
    # One run's log: ?run=N (linked from the run's page)
    search_fields = ("message",)
    list_select_related = ("run__lost_site", "run__target_site", "user")


@admin.register(RunReportMark)
class RunReportMarkAdmin(admin.ModelAdmin):
    """The Manager on Duty or a DR admin marks a run as an exercise or bad data, so the
    reports leave it out (failover.runs.exclusion logs who did); nothing else changes."""

    actions = None
    list_display = ("pk", "kind", "lost_site", "target_site", "state", "report_exclusion", "created_at")
    list_filter = ("report_exclusion", "kind", "state")
    list_select_related = ("lost_site", "target_site")
    fields = ("kind", "state", "lost_site", "target_site", "created_at", "finished_at", "report_exclusion")
    readonly_fields = ("kind", "state", "lost_site", "target_site", "created_at", "finished_at")

    def has_module_permission(self, request) -> bool:
        return may_mark(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return may_mark(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return may_mark(request.user)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        run_mark_for_reports(run_id=obj.pk, exclusion=obj.report_exclusion, user=request.user)
