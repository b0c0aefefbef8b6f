"""Fixtures of the board tests: runs of any size without the lab (the role users are tests/conftest.py's `users`)."""

from __future__ import annotations

import pytest

from tests.engine.conftest import estate, lab  # noqa: F401 (the lab and the estate on it, for declaring)

from .runs import build_run


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
