"""Fixtures of the board tests: runs of any size without the lab, and the role users."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from hosts.permissions import ROLE_DR_ADMIN, ROLE_HELPDESK, ROLE_MOD, sync_roles
from tests.engine.conftest import estate, lab  # noqa: F401 (the lab and the estate on it, for declaring)

from .runs import build_run

ROLE_GROUPS = {"helpdesk": ROLE_HELPDESK, "mod": ROLE_MOD, "dradmin": ROLE_DR_ADMIN}


@pytest.fixture
def users(db):
    """One user per role (logged in with force_login), the roles synced first: a
    transactional test before this one may have flushed the groups the migration made."""
    sync_roles(Group, Permission)
    User = get_user_model()
    made = {}
    for name, role in ROLE_GROUPS.items():
        user, _ = User.objects.get_or_create(username=name)
        user.groups.set([Group.objects.get(name=role)])
        made[name] = user
    return made


@pytest.fixture
def as_role(client, users):
    def login(role: str | None):
        client.logout()
        if role is not None:
            client.force_login(users[role])
        return client

    return login


@pytest.fixture
def make_run(users):
    def make(**kwargs):
        kwargs.setdefault("user", users["mod"])
        return build_run(**kwargs)

    return make
