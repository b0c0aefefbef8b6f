from __future__ import annotations

from hosts.permissions import roles_of


def roles(request):
    user = getattr(request, "user", None)
    return {"roles": roles_of(user) if user is not None and user.is_authenticated else frozenset()}
