"""The faster capacity search gives the answers the old one gave: the same placement, the
same shed proposal, the same reasons, on random estates that fit and that do not."""

from __future__ import annotations

import dataclasses

import pytest

from bench.capacity import synthetic_estate
from hosts import capacity
from tests.capacity.reference_capacity import old_proposal, old_run, old_set


def _answers(hosts, vms, memory) -> list[dict]:
    return [r.as_dict() for r in capacity.what_ifs(hosts, vms, **memory)]


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("ram_share", [1.0, 0.7, 0.55, 0.4])
def test_the_faster_search_answers_what_the_old_one_did_on_random_estates(seed, ram_share, monkeypatch):
    hosts, vms, memory = synthetic_estate(400 + 97 * seed, 12 + 5 * seed, seed=seed)
    hosts = [dataclasses.replace(h, ram_mb=int(h.ram_mb * ram_share)) for h in hosts]
    faster = _answers(hosts, vms, memory)
    with monkeypatch.context() as old:
        old.setattr(capacity._FreeIndex, "set", old_set)
        old.setattr(capacity._Context, "run", old_run)
        old.setattr(capacity, "_proposal", old_proposal)
        before = _answers(hosts, vms, memory)
    assert faster == before
    if ram_share < 0.6:  # the shedding search ran, not only the placement
        assert any(r["shed"] for r in faster)
