from __future__ import annotations

from django.contrib import admin

from .models import (
    VM,
    DRGroup,
    Host,
    HostAllocation,
    MemoryProfile,
    Site,
    StorageArray,
    VMAllocation,
    VMDisk,
    VMInterface,
)
from .permissions import PERM_DECLARE, PERM_EDIT_INVENTORY
from .validators import validate_private_key_path

_staff_only = admin.site.has_permission


def _staff_or_role(request) -> bool:
    """The admin admits staff, and also the DR admin (the inventory: the hosts models, by
    the role's permissions) and the Manager on Duty (to mark runs for the reports; the
    inventory read-only). The helpdesk stays out."""
    user = request.user
    if _staff_only(request):
        return True
    return bool(user.is_active and (user.has_perm(PERM_EDIT_INVENTORY) or user.has_perm(PERM_DECLARE)))


admin.site.has_permission = _staff_or_role  # type: ignore[method-assign]


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "role")
    list_filter = ("role",)
    search_fields = ("code", "name")


@admin.register(StorageArray)
class StorageArrayAdmin(admin.ModelAdmin):
    list_display = ("name", "site", "kind", "model", "management_address")
    list_filter = ("site", "kind")
    search_fields = ("name", "system_name")


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "site",
        "address",
        "ssh_port",
        "ram_mb",
        "toolstack",
        "host_key_fingerprint",
        "last_seen",
    )
    list_filter = ("site", "toolstack")
    search_fields = ("name", "address")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "ssh_key_path":
            # First, so a pasted key is named as such (not only as too long).
            field.validators.insert(0, validate_private_key_path)
        return field


class VMInterfaceInline(admin.TabularInline):
    model = VMInterface
    extra = 0


class VMDiskInline(admin.TabularInline):
    model = VMDisk
    extra = 0


@admin.register(VM)
class VMAdmin(admin.ModelAdmin):
    list_display = ("name", "home_host", "tier", "vcpus", "storage_gb", "dr_group", "observed_state")
    list_filter = ("home_host__site", "home_host", "tier", "observed_state")
    search_fields = ("name", "description")
    filter_horizontal = ("depends_on",)
    inlines = (VMInterfaceInline, VMDiskInline)


@admin.register(DRGroup)
class DRGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "source_array", "target_array", "mode", "replication_state", "replication_lag_s")
    list_filter = ("source_array", "target_array", "mode", "replication_state")
    search_fields = ("name",)


class VMAllocationInline(admin.TabularInline):
    model = VMAllocation
    extra = 0


class HostAllocationInline(admin.TabularInline):
    model = HostAllocation
    extra = 0


@admin.register(MemoryProfile)
class MemoryProfileAdmin(admin.ModelAdmin):
    list_display = ("name", "lost_site")
    inlines = (HostAllocationInline, VMAllocationInline)


@admin.register(VMAllocation)
class VMAllocationAdmin(admin.ModelAdmin):
    list_display = ("profile", "vm", "host", "memory_mb")
    list_filter = ("profile", "host")


@admin.register(HostAllocation)
class HostAllocationAdmin(admin.ModelAdmin):
    list_display = ("profile", "host", "dom0_memory_mb")
    list_filter = ("profile",)
