from django.contrib import admin

from .models import ReadinessCheck, ReadinessFinding, SiteVerdict


class FindingInline(admin.TabularInline):
    model = ReadinessFinding
    extra = 0
    can_delete = False
    readonly_fields = ("severity", "code", "subject", "message", "fix")


@admin.register(SiteVerdict)
class SiteVerdictAdmin(admin.ModelAdmin):
    """Read only: verdicts are written by the readiness check alone."""

    list_display = ("site", "verdict", "checked_at", "changed", "notified_at")
    list_filter = ("site", "verdict", "changed")
    inlines = [FindingInline]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ReadinessCheck)
class ReadinessCheckAdmin(admin.ModelAdmin):
    list_display = ("pk", "started_at", "finished_at")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
