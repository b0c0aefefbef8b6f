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
