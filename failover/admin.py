from django.contrib import admin

from .models import Disaster


@admin.register(Disaster)
class DisasterAdmin(admin.ModelAdmin):
    list_display = ("lost_site", "disaster_class", "category", "detected_at", "declared_at", "declared_by")
    list_filter = ("lost_site", "disaster_class", "category")
