"""Fixtures of the two-site tests (issue 14): two real PostgreSQL 15 clusters with streaming
replication between them (tests/twosite/pgpair.py).

``pg_pair`` is one pair for the whole session (WSL primary, KA standby). A test that kills,
promotes or rejoins a cluster takes a pair of its own from ``make_pg_pair``, so the tests
after it still find the session's pair as they expect it. Every cluster is stopped and its
directory deleted at the end, the test failed or not.

Without the PostgreSQL 15 server binaries the tests are skipped, saying what to install;
in CI (the ``CI`` variable set) they fail instead: there the harness must run.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .pgpair import BINDIR, PgPair, missing_binaries


def require_postgresql_15(bindir: Path = BINDIR) -> None:
    missing = missing_binaries(bindir)
    if not missing:
        return
    reason = (
        f"PostgreSQL 15 server binaries missing in {bindir} ({', '.join(missing)}): "
        "scripts/ensure-services installs postgresql-15"
    )
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


class _Pairs:
    """The pairs made so far, destroyed by destroy_all (also at interpreter exit, if the
    session is cut short before its teardown)."""

    def __init__(self) -> None:
        self.made: list[PgPair] = []
        atexit.register(self.destroy_all)

    def make(self, **kwargs) -> PgPair:
        require_postgresql_15()
        pair = PgPair.create(**kwargs)
        self.made.append(pair)
        return pair

    def destroy(self, pair: PgPair) -> None:
        if pair in self.made:
            self.made.remove(pair)
        pair.destroy()

    def destroy_all(self) -> None:
        while self.made:
            self.made.pop().destroy()


@pytest.fixture(scope="session")
def _pg_pairs() -> Iterator[_Pairs]:
    pairs = _Pairs()
    try:
        yield pairs
    finally:
        pairs.destroy_all()
        atexit.unregister(pairs.destroy_all)


@pytest.fixture(scope="session")
def pg_pair(_pg_pairs) -> PgPair:
    """WSL's PostgreSQL as the primary, KA's as its streaming hot standby, for the session.
    Tests that kill, promote or rejoin a cluster use make_pg_pair instead."""
    return _pg_pairs.make()


@pytest.fixture
def make_pg_pair(_pg_pairs) -> Iterator[Callable[..., PgPair]]:
    """Makes a new pair of the test's own (PgPair.create's arguments); destroyed when the
    test ends, passed or failed."""
    mine: list[PgPair] = []

    def make(**kwargs) -> PgPair:
        pair = _pg_pairs.make(**kwargs)
        mine.append(pair)
        return pair

    try:
        yield make
    finally:
        for pair in mine:
            _pg_pairs.destroy(pair)
