"""Reports: a real failover in the lab with a real worker (the engine's fixtures), and
runs written like the engine writes them (tests.board.runs) for the fast tests."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from pypdf import PdfReader

from hosts.permissions import ROLE_DR_ADMIN, ROLE_HELPDESK, ROLE_MOD, sync_roles
from tests.engine.conftest import declare, estate, lab, lose_wsl, wait_for_run, worker  # noqa: F401

ROLES = {"helpdesk": ROLE_HELPDESK, "mod": ROLE_MOD, "dradmin": ROLE_DR_ADMIN}


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def users(db):
    """One user per role (roles synced first: a transactional test may have flushed them)."""
    sync_roles(Group, Permission)
    User = get_user_model()
    made = {}
    for name, role in ROLES.items():
        user, _ = User.objects.get_or_create(username=name)
        user.groups.set([Group.objects.get(name=role)])
        made[name] = user
    return made


def pdf_text(data: bytes) -> str:
    """The PDF's text with white space collapsed (table cells wrap lines anywhere)."""
    reader = PdfReader(io.BytesIO(data))
    return re.sub(r"\s+", " ", " ".join(page.extract_text() or "" for page in reader.pages))


def squash(html: str) -> str:
    return re.sub(r"\s+", " ", html)
