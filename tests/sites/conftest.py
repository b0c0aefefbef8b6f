"""A peer portal's database for the two-site tests on the tests' own PostgreSQL server."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from drportal import twosite
from drportal.models import Epoch
from tests.engine.conftest import estate, lab  # noqa: F401 (fixtures of tests/sites/test_epoch.py)


@pytest.fixture(autouse=True)
def fresh_status():
    twosite.clear_cache()
    yield
    twosite.clear_cache()


@pytest.fixture
def peer_url(settings):
    """A second database on the tests' PostgreSQL server that answers like a peer portal's
    database: a primary, with an epoch table."""
    s = connection.settings_dict
    base = (
        f"postgresql://{s.get('USER') or 'postgres'}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}"
    )
    name = f"{s['NAME']}_peer"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}"
    with psycopg.connect(url, autocommit=True) as peer:
        peer.execute(f'CREATE TABLE "{Epoch._meta.db_table}" (number integer)')
        peer.execute(f'INSERT INTO "{Epoch._meta.db_table}" VALUES (1)')
    yield url
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def set_peer_epoch(url: str, number: int) -> None:
    with psycopg.connect(url, autocommit=True) as peer:
        peer.execute(f'INSERT INTO "{Epoch._meta.db_table}" VALUES (%s)', [number])
