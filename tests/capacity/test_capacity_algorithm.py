"""The capacity proof (hosts/capacity.py): pure Python, no database."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterable
from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.capacity import synthetic_estate
from hosts import reference as ref
from hosts.capacity import (
    CapacityResult,
    HostSpec,
    Scenario,
    VMSpec,
    check_scenario,
    what_ifs,
)

SITE_OF = {h["name"]: h["site"] for h in ref.HOSTS}
BRIDGES = frozenset(ref.BRIDGES)


def reference_estate(ram: dict[str, int] | None = None) -> tuple[list[HostSpec], list[VMSpec], dict]:
    """Specs built from hosts/reference.py; WSL-homed VMs replicate to KA, KA-homed ones nowhere."""
    ram = ram or {}
    hosts = [
        HostSpec(
            h["name"],
            h["site"],
            ram.get(h["name"], h["ram_mb"]),
            h["dom0_normal_mb"],
            frozenset(h["bridges"]),
        )
        for h in ref.HOSTS
    ]
    vms = []
    for v in ref.VMS:
        home_site = SITE_OF[v["home"]]
        replicas = frozenset({home_site, "KA"} if home_site == "WSL" else {home_site})
        vms.append(VMSpec(v["name"], v["home"], v["normal_mb"], v["tier"], replicas, bridges=BRIDGES))
    memory = {
        "dr_memory": {v["name"]: v["dr_mb"] for v in ref.VMS},
        "dom0_dr_memory": {h["name"]: h["dom0_dr_mb"] for h in ref.HOSTS},
        "normal_memory": {v["name"]: v["normal_mb"] for v in ref.VMS},
        "dom0_normal_memory": {h["name"]: h["dom0_normal_mb"] for h in ref.HOSTS},
    }
    return hosts, vms, memory


def scenarios(hosts, vms, memory, **kwargs) -> dict[str, CapacityResult]:
    return {r.scenario: r for r in what_ifs(hosts, vms, **memory, **kwargs)}


def host(result: CapacityResult, name: str):
    return next(h for h in result.hosts if h.host == name)


def lost(site: str, memory: dict[str, int], dom0: dict[str, int] | None = None) -> Scenario:
    return Scenario(f"{site} lost", site, memory, dom0 or {})


# --- the reference estate ---------------------------------------------------------------------------


def test_what_ifs_are_normal_operation_then_one_per_site_in_host_order():
    assert list(scenarios(*reference_estate())) == ["normal operation", "WSL lost", "KA lost"]


def test_normal_operation_uses_3584_of_4096_mb_on_each_host():
    normal = scenarios(*reference_estate())["normal operation"]
    assert normal.fits and normal.shortfall_mb == 0 and normal.shed == []
    for h in normal.hosts:
        assert (h.used_mb, h.ram_mb, h.dom0_mb, h.free_mb, h.fits) == (3584, 4096, 256, 512, True)
    assert [vm for vm, _ in host(normal, "xenka01").placed] == ["lws-xen01", "dasi-xen01", "tomcat-xen01"]


def test_wsl_lost_runs_all_six_vms_on_xenka01_at_dr_memory_in_3456_mb():
    result = scenarios(*reference_estate())["WSL lost"]
    assert [h.host for h in result.hosts] == ["xenka01"]
    ka = host(result, "xenka01")
    assert (ka.used_mb, ka.ram_mb, ka.dom0_mb, ka.fits, ka.shortfall_mb) == (3456, 4096, 128, True, 0)
    assert dict(ka.placed) == {v["name"]: v["dr_mb"] for v in ref.VMS}
    assert result.fits and not result.unrecoverable and not result.unplaced


def test_ka_lost_leaves_the_ka_vms_unrecoverable_and_keeps_the_wsl_vms_on_xenwsl01():
    result = scenarios(*reference_estate())["KA lost"]
    assert {u.vm for u in result.unrecoverable} == {"lws-xen01", "dasi-xen01", "tomcat-xen01"}
    assert all(u.reason.startswith("no replica at WSL") for u in result.unrecoverable)
    assert "no target array" in result.unrecoverable[0].reason
    wsl = host(result, "xenwsl01")
    assert [vm for vm, _ in wsl.placed] == ["dns-xen01", "proxy-xen01", "rsync-xen01"]
    assert wsl.used_mb == 128 + 256 + 512 + 512
    assert result.fits and not result.unplaced  # missing data is reported, not a memory failure


def test_results_are_json_serialisable():
    for result in what_ifs(*reference_estate()[:2], **reference_estate()[2]):
        data = json.loads(json.dumps(result.as_dict()))
        assert data["scenario"] == result.scenario
        assert data["hosts"][0]["placed"][0].keys() == {"vm", "memory_mb"}


# --- shortfall and shedding -------------------------------------------------------------------------


def test_a_small_host_in_normal_operation_reports_the_mb_short_and_sheds_the_lowest_tier():
    normal = scenarios(*reference_estate({"xenwsl01": 3000}))["normal operation"]
    wsl = host(normal, "xenwsl01")
    assert (wsl.used_mb, wsl.fits, wsl.shortfall_mb, wsl.free_mb) == (3584, False, 584, 0)
    assert not normal.fits and normal.shortfall_mb == 584
    assert normal.shed == ["rsync-xen01"]  # tier 3, the least important VM there, and enough alone


def test_a_small_dr_host_leaves_a_vm_unplaced_and_sheds_a_less_important_one_instead():
    hosts, vms, memory = reference_estate({"xenka01": 3000})
    result = scenarios(hosts, vms, memory)["WSL lost"]
    # dasi, lws, tomcat stay (2048) + dom0 128, then dns 256 and proxy 512 fit; rsync 512 finds 56 MB.
    assert result.unplaced == ["rsync-xen01"]
    assert "56 MB free" in result.unplaced_reasons["rsync-xen01"]
    assert host(result, "xenka01").fits and host(result, "xenka01").used_mb == 2944
    assert not result.fits and result.shortfall_mb == 456
    assert result.shed == ["dasi-xen01"]  # tier 4 beats shedding rsync-xen01 itself (tier 3)
    rest = [vm for vm in vms if vm.name not in result.shed]
    assert scenarios(hosts, rest, memory)["WSL lost"].fits


def one_host(vms: list[tuple[str, int, int]], ram: int) -> CapacityResult:
    hosts = [HostSpec("h1", "A", ram, 0)]
    specs = [VMSpec(n, "h1", mb, tier, frozenset({"A"})) for n, mb, tier in vms]
    return check_scenario(hosts, specs, Scenario("normal operation", None, {}, {}))


def test_shedding_never_touches_a_tier_more_important_than_needed_even_for_fewer_vms():
    result = one_host([("a", 50, 5), ("b", 60, 5), ("c", 2048, 4), ("d", 1000, 1)], ram=3058)
    assert result.shortfall_mb == 100
    assert result.shed == ["b", "a"]  # two tier-5 VMs rather than one tier-4 VM


def test_shedding_takes_the_largest_vms_above_the_cut_off_to_keep_the_count_minimal():
    vms = [("t5big", 1024, 5), ("t5small", 100, 5), ("t4big", 2048, 4), ("t4small", 200, 4), ("t1", 500, 1)]
    result = one_host(vms, ram=3872 - 1200)
    assert result.shortfall_mb == 1200
    assert result.shed == ["t4big"]  # tier 5 alone (1124 MB) is not enough; one tier-4 VM is


def test_nothing_can_be_shed_when_dom0_alone_exceeds_the_host():
    hosts = [HostSpec("h1", "A", 1024, 2048)]
    result = check_scenario(hosts, [VMSpec("a", "h1", 10, 5, frozenset({"A"}))], Scenario("n", None, {}, {}))
    assert not result.fits and result.shed == [] and result.shortfall_mb == 1034


def test_the_more_important_vm_gets_the_room_and_larger_vms_go_first_within_a_tier():
    hosts = [HostSpec("a1", "A", 1000, 0), HostSpec("b1", "B", 1000, 0), HostSpec("b2", "B", 500, 0)]
    ab = frozenset({"A", "B"})
    vms = [VMSpec("low", "a1", 900, 5, ab), VMSpec("high", "a1", 900, 1, ab), VMSpec("mid", "a1", 400, 3, ab)]
    vms += [VMSpec("mid-big", "a1", 500, 3, ab)]
    result = check_scenario(hosts, vms, lost("A", {}))
    assert host(result, "b1").placed == [("high", 900)]
    assert host(result, "b2").placed == [("mid-big", 500)]  # 500 before 400: first-fit *decreasing*
    assert result.unplaced == ["mid", "low"]
    # Two either way (low, and one tier-3 VM); the larger one goes first, then mid fits on b2.
    assert result.shed == ["low", "mid-big"]


# --- placement rules -------------------------------------------------------------------------------


def test_a_pinned_vm_goes_to_its_pin_even_when_an_earlier_host_has_room():
    hosts = [HostSpec("a1", "A", 4096, 0), HostSpec("b1", "B", 4096, 0), HostSpec("b2", "B", 4096, 0)]
    vms = [VMSpec("p", "a1", 512, 3, frozenset({"A", "B"}), pinned_host="b2")]
    result = check_scenario(hosts, vms, lost("A", {}))
    assert host(result, "b2").placed == [("p", 512)] and result.fits


def test_pinned_vms_are_placed_before_more_important_unpinned_ones():
    hosts = [HostSpec("a1", "A", 4096, 0), HostSpec("b1", "B", 1000, 0), HostSpec("b2", "B", 1000, 0)]
    ab = frozenset({"A", "B"})
    vms = [VMSpec("free", "a1", 800, 1, ab), VMSpec("pinned", "a1", 800, 5, ab, pinned_host="b1")]
    result = check_scenario(hosts, vms, lost("A", {}))
    assert host(result, "b1").placed == [("pinned", 800)] and host(result, "b2").placed == [("free", 800)]


def test_a_vm_pinned_to_a_lost_host_is_unplaced_with_a_reason_and_must_be_shed():
    hosts = [HostSpec("a1", "A", 4096, 0), HostSpec("b1", "B", 4096, 0)]
    vms = [VMSpec("p", "a1", 512, 1, frozenset({"A", "B"}), pinned_host="a1")]
    result = check_scenario(hosts, vms, lost("A", {}))
    assert result.unplaced == ["p"] and "pinned to a1" in result.unplaced_reasons["p"]
    assert not result.fits and result.shed == ["p"] and result.shortfall_mb == 0


def test_a_pinned_vm_without_room_on_its_pin_is_unplaced_and_counted_short():
    hosts = [HostSpec("a1", "A", 4096, 0), HostSpec("b1", "B", 4096, 0), HostSpec("b2", "B", 600, 100)]
    vms = [VMSpec("p", "a1", 512, 1, frozenset({"A", "B"}), pinned_host="b2")]
    result = check_scenario(hosts, vms, lost("A", {}))
    assert result.unplaced == ["p"] and "500 MB free" in result.unplaced_reasons["p"]
    assert result.shortfall_mb == 12 and result.shed == ["p"]


def test_anti_affinity_keeps_a_group_on_separate_hosts_or_leaves_one_unplaced():
    ab = frozenset({"A", "B"})
    vms = [VMSpec(f"n{i}", "a1", 256, 2, ab, anti_affinity="cluster") for i in range(3)]
    hosts = [HostSpec("a1", "A", 4096, 0), HostSpec("b1", "B", 4096, 0), HostSpec("b2", "B", 4096, 0)]
    result = check_scenario(hosts, vms, lost("A", {}))
    assert [len(h.placed) for h in result.hosts] == [1, 1]
    assert len(result.unplaced) == 1 and "anti-affinity group cluster" in next(
        iter(result.unplaced_reasons.values())
    )
    assert result.shortfall_mb == 0  # memory is not what is missing


def test_a_vm_only_goes_to_a_host_offering_every_bridge_it_needs():
    hosts = [HostSpec("a1", "A", 4096, 0), HostSpec("b1", "B", 4096, 0, BRIDGES)]
    hosts.append(HostSpec("b2", "B", 4096, 0, BRIDGES | {"dmz"}))
    vms = [VMSpec("web", "a1", 512, 1, frozenset({"A", "B"}), bridges=frozenset({"xenbr0", "dmz"}))]
    vms.append(VMSpec("odd", "a1", 512, 1, frozenset({"A", "B"}), bridges=frozenset({"xenbr9"})))
    result = check_scenario(hosts, vms, lost("A", {}))
    assert host(result, "b2").placed == [("web", 512)]
    assert result.unplaced == ["odd"] and "xenbr9" in result.unplaced_reasons["odd"]


def test_a_vm_only_goes_to_a_site_holding_a_replica_of_its_data():
    hosts = [HostSpec("a1", "A", 4096, 0), HostSpec("b1", "B", 4096, 0), HostSpec("c1", "C", 4096, 0)]
    vms = [VMSpec("x", "a1", 512, 1, frozenset({"A", "C"}))]
    result = check_scenario(hosts, vms, lost("A", {}))
    assert host(result, "c1").placed == [("x", 512)] and host(result, "b1").placed == []


def test_the_hypervisor_reserve_comes_off_every_host():
    hosts, vms, memory = reference_estate()
    assert scenarios(hosts, vms, memory, reserve_mb=640)["WSL lost"].fits  # 3456 of 4096 - 640
    tight = scenarios(hosts, vms, memory, reserve_mb=641)["WSL lost"]
    assert not tight.fits and tight.shortfall_mb == 1 and host(tight, "xenka01").reserve_mb == 641


def test_an_explicit_placement_is_checked_as_given():
    hosts, vms, memory = reference_estate()
    placement = {vm.name: "xenka01" for vm in vms}
    result = check_scenario(hosts, vms, Scenario("all on KA", None, memory["normal_memory"], {}, placement))
    assert host(result, "xenka01").used_mb == 256 + 6656 and host(result, "xenka01").shortfall_mb == 2816
    assert host(result, "xenwsl01").placed == [] and not result.fits


def test_large_estates_shed_per_overloaded_host_the_fewest_of_the_least_important_vms():
    hosts = [HostSpec(f"h{i}", "A", 6000, 0) for i in range(3)]
    vms = [
        VMSpec(f"h{i}-t{t}", f"h{i}", 1000 + 100 * t, t, frozenset({"A"}))
        for i in range(3)
        for t in range(1, 6)
    ]
    result = check_scenario(hosts, vms, Scenario("normal operation", None, {}, {}))  # 15 VMs in play
    assert [h.shortfall_mb for h in result.hosts] == [500, 500, 500]
    assert result.shed == ["h0-t5", "h1-t5", "h2-t5"]


def test_a_shrunken_synthetic_estate_sheds_sets_that_make_every_scenario_fit():
    hosts, vms, memory = synthetic_estate(600, 30, seed=3)
    small = [dataclasses.replace(h, ram_mb=h.ram_mb * 11 // 20) for h in hosts]
    for result in what_ifs(small, vms, **memory):
        assert_sound(small, vms, result)
        if not result.fits:
            assert result.shed and len(result.shed) < len(vms) // 3
            assert fits_without(small, vms, memory, 0, result.scenario, result.shed)


# --- properties ------------------------------------------------------------------------------------


def assert_sound(hosts: list[HostSpec], vms: list[VMSpec], result: CapacityResult) -> None:
    """Every VM accounted for exactly once; the algorithm never overloads a host or breaks a rule."""
    seen = Counter(vm for h in result.hosts for vm, _ in h.placed)
    seen.update(u.vm for u in result.unrecoverable)
    seen.update(result.unplaced)
    assert seen == Counter(vm.name for vm in vms)
    spec = {h.name: h for h in hosts}
    by_vm = {vm.name: vm for vm in vms}
    for h in result.hosts:
        assert h.used_mb == h.dom0_mb + sum(mb for _, mb in h.placed)
        moved = [by_vm[name] for name, _ in h.placed if by_vm[name].home_host != h.host]
        if moved:  # only VMs left where they were may overload a host
            assert h.fits
        for vm in moved:
            assert spec[h.host].site in vm.replica_sites and vm.bridges <= spec[h.host].bridges
            assert vm.pinned_host in (None, h.host)
            others = [by_vm[n].anti_affinity for n, _ in h.placed if n != vm.name]
            assert vm.anti_affinity is None or vm.anti_affinity not in others


def test_a_synthetic_estate_of_2000_vms_on_100_hosts_is_sound():
    hosts, vms, memory = synthetic_estate(2000, 100, seed=11)
    results = what_ifs(hosts, vms, **memory)
    assert len(results) == 3
    for result in results:
        assert_sound(hosts, vms, result)
        assert all(h.used_mb <= h.ram_mb for h in result.hosts)  # normal operation fits by construction
    assert results[0].fits and results[2].unrecoverable


def estates(max_vms: int) -> st.SearchStrategy:
    """Small random estates: up to 5 hosts on up to 3 sites, pins, anti-affinity, a dmz bridge."""
    return st.tuples(
        st.lists(
            st.tuples(st.sampled_from("ABC"), st.integers(2, 16), st.integers(0, 3), st.booleans()),
            min_size=1,
            max_size=5,
        ),
        st.lists(
            st.tuples(
                st.integers(0, 4),  # home host (modulo the host count)
                st.integers(1, 12),  # memory in 256 MB
                st.integers(1, 5),
                st.sets(st.sampled_from("ABC")),
                st.one_of(st.none(), st.integers(0, 4)),  # pin
                st.sampled_from([None, None, "g0", "g1"]),
                st.booleans(),  # needs the dmz bridge
            ),
            max_size=max_vms,
        ),
        st.integers(0, 2).map(lambda k: 128 * k),  # reserve
    )


def build(estate) -> tuple[list[HostSpec], list[VMSpec], dict, int]:
    raw_hosts, raw_vms, reserve = estate
    hosts = [
        HostSpec(f"h{i}", site, ram * 512, d0 * 64, frozenset({"xenbr0"} | ({"dmz"} if dmz else set())))
        for i, (site, ram, d0, dmz) in enumerate(raw_hosts)
    ]  # dom0 (<= 192 MB) + reserve (<= 256 MB) always fit the smallest host (1024 MB)
    vms = []
    for j, (home, mem, tier, extra, pin, group, dmz) in enumerate(raw_vms):
        h = hosts[home % len(hosts)]
        pinned = None if pin is None else hosts[pin % len(hosts)].name
        needs = frozenset({"xenbr0", "dmz"} if dmz else {"xenbr0"})
        vms.append(
            VMSpec(f"v{j}", h.name, mem * 256, tier, frozenset({h.site} | extra), pinned, group, needs)
        )
    memory = {
        "dr_memory": {vm.name: max(128, vm.memory_mb // 2) for vm in vms},
        "dom0_dr_memory": {},
        "normal_memory": {},
        "dom0_normal_memory": {},
    }
    return hosts, vms, memory, reserve


def fits_without(hosts, vms, memory, reserve, scenario: str, shed: Iterable[str]) -> bool:
    rest = [vm for vm in vms if vm.name not in set(shed)]
    return scenarios(hosts, rest, memory, reserve_mb=reserve)[scenario].fits


@settings(max_examples=150, deadline=None)
@given(estates(max_vms=20))  # above 12 VMs in play the shedding takes its large-estate path
def test_small_random_estates_never_overload_a_host_and_shedding_the_reported_set_makes_them_fit(estate):
    hosts, vms, memory, reserve = build(estate)
    for result in what_ifs(hosts, vms, **memory, reserve_mb=reserve):
        assert_sound(hosts, vms, result)
        if result.fits:
            assert result.shed == []
            continue
        assert result.shed, "dom0 and reserve always fit, so some shed set exists"
        assert fits_without(hosts, vms, memory, reserve, result.scenario, result.shed)
        for name in result.shed:  # irreducible: every shed VM is needed
            assert not fits_without(hosts, vms, memory, reserve, result.scenario, set(result.shed) - {name})


@settings(max_examples=60, deadline=None)
@given(estates(max_vms=7))
def test_small_estates_shed_the_least_important_then_fewest_vms_of_all_possible_sets(estate):
    hosts, vms, memory, reserve = build(estate)
    tier = {vm.name: vm.priority for vm in vms}
    for result in what_ifs(hosts, vms, **memory, reserve_mb=reserve):
        if result.fits:
            continue
        in_play = [vm.name for vm in vms if vm.name not in {u.vm for u in result.unrecoverable}]
        best = min(
            (-min(tier[n] for n in subset), len(subset))
            for k in range(1, len(in_play) + 1)
            for subset in combinations(in_play, k)
            if fits_without(hosts, vms, memory, reserve, result.scenario, subset)
        )
        assert (-min(tier[n] for n in result.shed), len(result.shed)) == best
