"""Roles are Django groups (created by a data migration); code checks permissions."""

from __future__ import annotations

from django.contrib.auth.decorators import user_passes_test
from django.core.exceptions import PermissionDenied

ROLE_MOD = "Manager on Duty"
ROLE_HELPDESK = "Helpdesk"
ROLE_DR_ADMIN = "DR admin"

PERM_EDIT_INVENTORY = "hosts.change_vmallocation"
PERM_DECLARE = "failover.declare_disaster"
PERM_OPERATE = "failover.operate_run"


def roles_of(user) -> frozenset[str]:
    """What the templates need to decide which controls to draw."""
    roles = set()
    if user.has_perm(PERM_EDIT_INVENTORY):
        roles.add("edit_inventory")
    if user.has_perm(PERM_DECLARE):
        roles.add("declare")
    if user.has_perm(PERM_OPERATE):
        roles.add("operate")
    return frozenset(roles)


def permission_or_403(perm: str):
    """Like permission_required, but a logged-in user without it gets 403, never a login loop."""

    def check(user) -> bool:
        if user.has_perm(perm):
            return True
        raise PermissionDenied(f"missing permission {perm}")

    return user_passes_test(check)


HOSTS_MODELS = (
    "site",
    "storagearray",
    "host",
    "vm",
    "vminterface",
    "vmdisk",
    "drgroup",
    "memoryprofile",
    "vmallocation",
    "hostallocation",
    "functionalcheck",
)
FAILOVER_MODELS = ("disaster", "run", "step", "action", "runevent")


def role_codenames() -> dict[str, list[tuple[str, str]]]:
    """Each role's permissions as (app_label, codename)."""
    view_all = [("hosts", f"view_{m}") for m in HOSTS_MODELS] + [
        ("failover", f"view_{m}") for m in FAILOVER_MODELS
    ]
    edit_inventory = [("hosts", f"{verb}_{m}") for m in HOSTS_MODELS for verb in ("add", "change", "delete")]
    operate = [("failover", "declare_disaster"), ("failover", "operate_run"), ("failover", "add_disaster")]
    return {
        ROLE_HELPDESK: view_all,
        ROLE_DR_ADMIN: view_all + edit_inventory,
        ROLE_MOD: view_all + operate,
    }


def sync_roles(group_model, permission_model) -> None:
    """Create the role groups with exactly their permissions. Takes the model classes so
    the data migration (historical models) and tests (after a flush) share it."""
    for role, wanted in role_codenames().items():
        found = []
        for app_label, codename in wanted:
            perm = permission_model.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if perm is None:
                raise RuntimeError(f"permission {app_label}.{codename} missing for role {role}")
            found.append(perm)
        group, _ = group_model.objects.get_or_create(name=role)
        group.permissions.set(found)
