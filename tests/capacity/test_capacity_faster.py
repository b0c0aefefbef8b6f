"""The faster capacity search gives the answers the old one gave: the same placement, the
same shed proposal, the same reasons and shortfalls, on random estates that fit and that do not.

The oracle is tests/capacity/reference_capacity.py, the search as it was at the start of issue 16."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given, settings

from bench.capacity import synthetic_estate
from hosts import capacity
from hosts.capacity import HostSpec, Scenario, VMSpec
from tests.capacity import reference_capacity as reference
from tests.capacity.test_capacity_algorithm import build, estates


def _what_ifs(module, hosts, vms, memory, reserve_mb=0) -> list[dict]:
    return [r.as_dict() for r in module.what_ifs(hosts, vms, **memory, reserve_mb=reserve_mb)]


def _check(module, hosts, vms, scenario, reserve_mb=0) -> dict:
    return module.check_scenario(hosts, vms, scenario, reserve_mb=reserve_mb).as_dict()


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("ram_share", [1.0, 0.7, 0.55, 0.4])
def test_the_faster_search_answers_what_the_old_one_did_on_random_estates(seed, ram_share):
    hosts, vms, memory = synthetic_estate(400 + 97 * seed, 12 + 5 * seed, seed=seed)
    hosts = [dataclasses.replace(h, ram_mb=int(h.ram_mb * ram_share)) for h in hosts]
    faster = _what_ifs(capacity, hosts, vms, memory)
    assert faster == _what_ifs(reference, hosts, vms, memory)
    if ram_share < 0.6:  # the shedding search ran, not only the placement
        assert any(r["shed"] for r in faster)


@pytest.mark.parametrize("seed", [7, 8])
@pytest.mark.parametrize("ram_share", [0.62, 0.5])
def test_the_faster_search_answers_what_the_old_one_did_on_estates_of_3000_vms(seed, ram_share):
    hosts, vms, memory = synthetic_estate(3000, 150, seed=seed)
    hosts = [dataclasses.replace(h, ram_mb=int(h.ram_mb * ram_share)) for h in hosts]
    faster = _what_ifs(capacity, hosts, vms, memory, reserve_mb=128)
    assert faster == _what_ifs(reference, hosts, vms, memory, reserve_mb=128)
    assert any(r["shed"] for r in faster)


def _awkward_estate(seed: int) -> tuple[list[HostSpec], list[VMSpec], dict]:
    """A synthetic estate with what the generator lacks: VMs pinned to lost or unknown hosts,
    bridges no host offers, larger anti-affinity groups, replicas at a third site, odd sizes."""
    hosts, vms, memory = synthetic_estate(700, 24, seed=seed)
    rnd = random.Random(seed)
    hosts += [HostSpec(f"xenzrh{i}", "ZRH", 6144 + 1024 * i, 512) for i in range(3)]
    changed = []
    for vm in vms:
        roll = rnd.random()
        if roll < 0.02:
            vm = dataclasses.replace(vm, pinned_host=rnd.choice([hosts[0].name, "gone01"]))
        elif roll < 0.04:
            vm = dataclasses.replace(vm, bridges=vm.bridges | {"xenbr9"})
        elif roll < 0.10:
            vm = dataclasses.replace(vm, anti_affinity=f"big{rnd.randrange(6)}")
        elif roll < 0.16:
            vm = dataclasses.replace(vm, replica_sites=vm.replica_sites | {"ZRH"})
        memory["dr_memory"][vm.name] = rnd.randrange(200, 5000)
        changed.append(vm)
    small = [dataclasses.replace(h, ram_mb=h.ram_mb * 3 // 5) for h in hosts]
    return small, changed, memory


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_faster_search_answers_what_the_old_one_did_with_pins_bridges_groups_and_a_third_site(seed):
    hosts, vms, memory = _awkward_estate(seed)
    faster = _what_ifs(capacity, hosts, vms, memory, reserve_mb=256)
    assert faster == _what_ifs(reference, hosts, vms, memory, reserve_mb=256)
    assert any(r["shed"] for r in faster) and any(r["unplaced_reasons"] for r in faster)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_faster_search_answers_what_the_old_one_did_for_an_explicit_placement(seed):
    hosts, vms, memory = _awkward_estate(seed)
    rnd = random.Random(seed)
    placement = {vm.name: rnd.choice([vm.home_host, hosts[-1].name, "gone01"]) for vm in vms}
    for lost in (None, "KA", "ZRH"):
        scenario = Scenario("moved", lost, memory["dr_memory"], {}, placement)
        assert _check(capacity, hosts, vms, scenario) == _check(reference, hosts, vms, scenario)


@settings(max_examples=120, deadline=None)
@given(estates(max_vms=24))  # above 12 VMs in play the shedding takes its large-estate path
def test_the_faster_search_answers_what_the_old_one_did_on_small_random_estates(estate):
    hosts, vms, memory, reserve = build(estate)
    assert _what_ifs(capacity, hosts, vms, memory, reserve) == _what_ifs(
        reference, hosts, vms, memory, reserve
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("lost", [None, "WSL"])
def test_a_rerun_from_another_shed_set_places_every_vm_where_a_full_placement_does(seed, lost):
    hosts, vms, memory = synthetic_estate(1500, 60, seed=seed)
    hosts = [dataclasses.replace(h, ram_mb=h.ram_mb * 11 // 20) for h in hosts]
    scenario = Scenario("changed shed sets", lost, memory["dr_memory"], memory["dom0_dr_memory"])
    ctx = capacity._Context(hosts, vms, scenario, 0)
    full_runs = []
    ctx.run = lambda shed, probe=False: full_runs.append(shed) or capacity._Context.run(ctx, shed, probe)
    rnd, names = random.Random(seed), [vm.name for vm in vms]
    base = ctx.run(frozenset(rnd.sample(names, 150)))
    for _ in range(40):
        shed = base.shed ^ frozenset(rnd.sample(names, rnd.randint(1, 4)))
        again, probe = ctx.rerun(base, shed), ctx.rerun(base, shed, probe=True)
        full = capacity._Context.run(ctx, shed)
        assert (again.load, again.choice, again.placed, again.fits) == (
            full.load,
            full.choice,
            full.placed,
            full.fits,
        )
        assert list(again.unplaced) == list(full.unplaced) and probe.fits == full.fits
        if rnd.random() < 0.5:
            base = again
    assert len(full_runs) < 60  # most re-runs were incremental, not a full placement again
