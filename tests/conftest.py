from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

from hosts.permissions import ROLE_DR_ADMIN, ROLE_HELPDESK, ROLE_MOD

ROLES = {"helpdesk": ROLE_HELPDESK, "mod": ROLE_MOD, "dradmin": ROLE_DR_ADMIN}


@pytest.fixture
def reference_estate(db):
    """The thesis estate, loaded by the same code as the management command."""
    from hosts.services import estate_load_reference

    estate_load_reference()


@pytest.fixture
def make_user(db):
    def make(role: str | None):
        User = get_user_model()
        user, _ = User.objects.get_or_create(username=f"user-{role or 'none'}")
        if role:
            user.groups.set([Group.objects.get(name=ROLES[role])])
        return user

    return make


@pytest.fixture
def client_as(client, make_user):
    def login(role: str | None):
        if role is None:
            return client
        client.force_login(make_user(role))
        return client

    return login


@pytest.fixture
def load_reference_command(db):
    def run(*args):
        call_command("load_reference_estate", "--no-lab-keys", *args)

    return run
