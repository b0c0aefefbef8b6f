"""The UI's permission rule, for API views.

Each view names the permissions each HTTP method needs in ``perms``; a user needs all of
them (HEAD and OPTIONS count as GET). A view, or a method of it, that names none refuses
everyone: an API view added without thinking about permissions is closed, not open.
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission

READ_METHODS = ("GET", "HEAD", "OPTIONS")


class RolePermissions(BasePermission):
    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            # DRF answers 401 (with WWW-Authenticate: Token) for a request without credentials.
            return False
        perms: dict[str, tuple[str, ...]] | None = getattr(view, "perms", None)
        if not perms:
            return False
        method = "GET" if request.method in READ_METHODS else request.method
        if not hasattr(view, request.method.lower()):
            return True  # a method the view does not implement: DRF answers 405
        needed = perms.get(method)
        return needed is not None and user.has_perms(needed)
