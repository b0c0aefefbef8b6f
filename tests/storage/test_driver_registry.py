"""The storage driver registry: a table of dotted paths, resolved on use."""

from __future__ import annotations

import pytest

from hosts.drivers.storage import DRIVERS, StorageDriver, driver_class


@pytest.mark.parametrize("kind", sorted(DRIVERS))
def test_every_registered_kind_resolves_to_its_driver_class(kind):
    cls = driver_class(kind)
    assert issubclass(cls, StorageDriver)
    assert f"{cls.__module__}.{cls.__qualname__}" == DRIVERS[kind]
