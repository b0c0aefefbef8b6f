"""Each test starts with a driver that has not seen any DR group yet (the EVA driver keeps
the member vdisks it saw as a hint for its next call; call counts depend on it)."""

from __future__ import annotations

import pytest

from hosts.drivers import eva


@pytest.fixture(autouse=True)
def _fresh_eva_hints():
    eva.forget_hints()
    yield
    eva.forget_hints()
