"""A thread gives its pooled database connection back before an SSH command unless the
pool is mostly idle (failover.actions.base.lend_back_connection)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from failover.actions import base
from failover.actions.base import lend_back_connection, pool_mostly_idle


class FakeConnection:
    """What lend_back_connection reads of Django's connection, with a pool's stats."""

    def __init__(self, *, pool: bool, available: int, waiting: int = 0, held: bool = True, atomic=False):
        self.settings_dict = {"OPTIONS": {"pool": {"max_size": 10}} if pool else {}}
        self.in_atomic_block = atomic
        self.connection = object() if held else None
        stats = {"pool_max": 10, "pool_size": 10, "pool_available": available, "requests_waiting": waiting}
        self.pool = SimpleNamespace(get_stats=lambda: stats)
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("kwargs", "given_back"),
    [
        ({"pool": True, "available": 5}, False),  # half the pool idle: kept
        ({"pool": True, "available": 4}, True),  # busier: given back
        ({"pool": True, "available": 9, "waiting": 1}, True),  # a thread waits for one
        ({"pool": True, "available": 0, "held": False}, True),  # nothing held: close is a no-op
        ({"pool": True, "available": 0, "atomic": True}, False),  # inside a transaction: never
        ({"pool": False, "available": 0}, False),  # no pool: a connection of its own, kept
    ],
)
def test_a_pooled_connection_is_given_back_before_a_command_unless_half_the_pool_is_idle(
    monkeypatch, kwargs, given_back
):
    fake = FakeConnection(**kwargs)
    monkeypatch.setattr(base, "connection", fake)
    lend_back_connection()
    assert fake.closed is given_back


def test_mostly_idle_means_half_the_pool_idle_and_nobody_waiting():
    assert pool_mostly_idle({"pool_max": 10, "pool_available": 5, "requests_waiting": 0})
    assert not pool_mostly_idle({"pool_max": 10, "pool_available": 4, "requests_waiting": 0})
    assert not pool_mostly_idle({"pool_max": 10, "pool_available": 10, "requests_waiting": 2})
