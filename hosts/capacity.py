"""The capacity proof: does every VM fit, without swap, in normal operation and with each site lost?

Pure Python on purpose (no Django): the readiness view, the tests and ``bench/capacity.py`` share
one algorithm, and it must stay fast (issue 16: all what-ifs of 100,000 VMs on 5,000 hosts under
3 s, the shedding search of an overloaded 10,000-VM estate under 1 s; ``bench/capacity.py``).

The customer's hard rule (seed digest): no VM and no dom0 may swap, so per host
``sum(VM memory) + dom0 memory <= RAM - reserve_mb``.

A scenario is checked in three steps:

1. VMs whose current host survives stay there (as given: normal operation, or VMs already in the
   alternate DC, thesis runbook step 1). They can overload their host; that is reported, not fixed.
2. The others are unrecoverable when no surviving site holds a replica of their data.
3. The rest are placed first-fit-decreasing: pinned VMs first (their only choice must not be taken
   by a VM that could go elsewhere), then by priority (tier 1 first), larger VMs first within a tier.
   A VM only goes to a host at a site with its replica, offering all its bridges, without a VM of
   its anti-affinity group, and with room. A VM that fits nowhere is *unplaced*; the algorithm
   never overcommits a host itself.

``fits`` means every host fits and nothing is unplaced; unrecoverable VMs are a separate finding
(memory cannot fix missing data). ``shortfall_mb`` is the sum of host overloads plus, for each VM
left unplaced for lack of memory, what it lacks on the eligible host with the most room left.
See ``_shed`` for the shedding rule.

Longer than 400 lines on purpose: one algorithm (placement, the free-memory index and
shedding) whose parts share their invariants.
"""

from __future__ import annotations

import gc
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import combinations

_NEG = -(1 << 62)  # padding for unused tree leaves: below any real free value
# Re-checks spent making a shed set irreducible: each is a full placement, so big estates get fewer
# (32 for up to ~3,000 VMs, 10 for 10,000).
_PRUNE_BUDGET, _PRUNE_WORK = 32, 100_000
_EXACT_MAX = 12  # VMs in play up to which the shed set is searched exhaustively (<= 4,096 subsets)


@dataclass(frozen=True)
class HostSpec:
    name: str
    site: str
    ram_mb: int
    dom0_mb: int
    bridges: frozenset[str] = frozenset()


@dataclass(frozen=True)
class VMSpec:
    name: str
    home_host: str
    memory_mb: int
    priority: int  # tier: 1 = most important ... 5
    replica_sites: frozenset[str]  # sites holding its data: home site, plus the target array's site
    pinned_host: str | None = None
    anti_affinity: str | None = None  # VMs with the same key never share a host
    bridges: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Scenario:
    name: str
    lost_site: str | None
    vm_memory: Mapping[str, int]  # missing VMs use VMSpec.memory_mb
    dom0_memory: Mapping[str, int]  # missing hosts use HostSpec.dom0_mb
    placement: Mapping[str, str] | None = None  # explicit host per VM; otherwise the home host


@dataclass
class Unrecoverable:
    vm: str
    reason: str

    def as_dict(self) -> dict:
        return {"vm": self.vm, "reason": self.reason}


@dataclass
class HostResult:
    host: str
    site: str
    ram_mb: int
    reserve_mb: int
    dom0_mb: int
    used_mb: int  # VMs + dom0
    free_mb: int  # RAM - reserve - used, never below 0 (see shortfall_mb)
    fits: bool
    placed: list[tuple[str, int]]
    shortfall_mb: int  # MB over RAM - reserve

    def as_dict(self) -> dict:
        data = {k: v for k, v in self.__dict__.items() if k != "placed"}
        data["placed"] = [{"vm": vm, "memory_mb": mb} for vm, mb in self.placed]
        return data


@dataclass
class CapacityResult:
    scenario: str
    hosts: list[HostResult]  # surviving hosts only, in input order
    unrecoverable: list[Unrecoverable]
    unplaced: list[str]
    fits: bool
    shortfall_mb: int
    shed: list[str]  # least important first; [] if it fits or nothing can make it fit
    lost_site: str | None = None
    unplaced_reasons: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "scenario": self.scenario,
            "lost_site": self.lost_site,
            "fits": self.fits,
            "shortfall_mb": self.shortfall_mb,
            "hosts": [h.as_dict() for h in self.hosts],
            "unrecoverable": [u.as_dict() for u in self.unrecoverable],
            "unplaced": list(self.unplaced),
            "unplaced_reasons": dict(self.unplaced_reasons),
            "shed": list(self.shed),
        }


class _FreeIndex:
    """Max segment tree of free MB over the hosts of one pool (see _Context.pools), in host order.

    First fit over 500 hosts for 10,000 VMs is millions of comparisons in Python; the tree finds
    the first host with enough room at or after a position in O(log n)."""

    __slots__ = ("size", "tree")

    def __init__(self, free: list[int]) -> None:
        size = 1
        while size < len(free):
            size *= 2
        tree = [_NEG] * (2 * size)
        tree[size : size + len(free)] = free
        for i in range(size - 1, 0, -1):
            tree[i] = max(tree[2 * i], tree[2 * i + 1])
        self.size, self.tree = size, tree

    def first(self, need: int, start: int = 0) -> int:
        """Position of the first leaf >= start with free >= need, or -1."""
        tree, size = self.tree, self.size
        if start >= size:
            return -1
        i = start + size
        while tree[i] < need:
            while i & 1:  # right child: climb until we can step right
                i >>= 1
            if i == 0:
                return -1
            i += 1
        while i < size:
            i *= 2
            if tree[i] < need:
                i += 1
        return i - size

    def set(self, pos: int, value: int) -> None:
        tree = self.tree
        i = pos + self.size
        tree[i] = value
        i >>= 1
        while i:
            left, right = tree[2 * i], tree[2 * i + 1]
            top = left if left >= right else right
            if tree[i] == top:
                break  # this node's maximum is unchanged, and so are its ancestors'
            tree[i] = top
            i >>= 1


_UNPLACED, _SHED = -1, -2  # a row's outcome in _Run.choice besides a host index
_REPLAY_MAX = 16  # changed VMs, and hosts placed differently, up to which _Context.rerun stays incremental


@dataclass
class _Run:
    load: list[int]  # VM memory per surviving host (dom0 excluded: it is in usable)
    placed: list[list[tuple[str, int]]] | None  # None for a probe's run
    unplaced: dict[str, tuple[str, str]]  # vm -> (kind: memory | affinity | structural, reason)
    fits: bool
    deficit: int = 0
    # Per row of _Context.rows: the host it went to, _UNPLACED or _SHED; None when the run stopped early.
    choice: list[int] | None = None
    shed: frozenset[str] = frozenset()
    fixed: tuple[list[int], list[set[str]]] | None = None  # load and groups of the VMs staying put


class _Shared:
    """What the scenarios of one estate share, built once per ``what_ifs``: the VMs by name, their
    tiers, their names and home hosts as columns, and per memory map each VM's MB as the
    (name, MB) pair a host lists it by. VM names are unique (hosts.models.VM)."""

    def __init__(self, vms: list[VMSpec]) -> None:
        self.vms = vms
        self.names = [vm.name for vm in vms]
        self.homes = [vm.home_host for vm in vms]
        self.groups = [vm.anti_affinity for vm in vms]
        self.by_name = dict(zip(self.names, vms, strict=True))
        self._memory: dict[int, tuple[Mapping[str, int], dict[str, int] | None, list[tuple[str, int]]]] = {}
        self._mbs: dict[int, tuple[Mapping[str, int], list[int]]] = {}
        self._tiers: dict[str, int] | None = None
        self.by_home: dict[str, list[int]] = {}  # home host -> positions of its VMs, in input order
        for k, home in enumerate(self.homes):
            self.by_home.setdefault(home, []).append(k)
        self.home_groups = {
            home: {g for k in ks if (g := self.groups[k])} for home, ks in self.by_home.items()
        }
        self._at_home: dict[
            int, tuple[Mapping[str, int], dict[str, list[tuple[str, int]]], dict[str, int]]
        ] = {}

    def at_home(
        self, overrides: Mapping[str, int]
    ) -> tuple[dict[str, list[tuple[str, int]]], dict[str, int]]:
        """Per home host, the (name, MB) pairs of its VMs in input order, and their MB in all."""
        known = self._at_home.get(id(overrides))
        if known is None or known[0] is not overrides:
            _, pairs = self.memory(overrides)
            lists = {home: [pairs[k] for k in ks] for home, ks in self.by_home.items()}
            known = (overrides, lists, {home: sum(mb for _, mb in row) for home, row in lists.items()})
            self._at_home[id(overrides)] = known
        return known[1], known[2]

    def mbs(self, overrides: Mapping[str, int]) -> list[int]:
        """Each VM's MB under ``overrides``, by position."""
        known = self._mbs.get(id(overrides))
        if known is None or known[0] is not overrides:
            known = self._mbs[id(overrides)] = (overrides, [mb for _, mb in self.memory(overrides)[1]])
        return known[1]

    def memory(
        self, overrides: Mapping[str, int], by_name: bool = False
    ) -> tuple[dict[str, int] | None, list[tuple[str, int]]]:
        """Each VM's (name, MB) pair under ``overrides`` by position, and with ``by_name`` its MB by name."""
        known = self._memory.get(id(overrides))
        if known is None or known[0] is not overrides:
            mb = map(overrides.get, self.names, [vm.memory_mb for vm in self.vms])
            known = self._memory[id(overrides)] = (overrides, None, list(zip(self.names, mb, strict=True)))
        if by_name and known[1] is None:
            known = self._memory[id(overrides)] = (overrides, dict(known[2]), known[2])
        return known[1], known[2]

    def tiers(self) -> dict[str, int]:
        if self._tiers is None:
            self._tiers = {vm.name: vm.priority for vm in self.vms}
        return self._tiers


class _Context:
    """Everything about a scenario that does not depend on which VMs are shed."""

    def __init__(
        self,
        hosts: list[HostSpec],
        vms: list[VMSpec],
        scenario: Scenario,
        reserve_mb: int,
        shared: _Shared | None = None,
    ):
        shared = shared or _Shared(vms)
        self.scenario = scenario
        self.hosts = [h for h in hosts if h.site != scenario.lost_site]
        self.index = index = {h.name: i for i, h in enumerate(self.hosts)}
        dom0 = scenario.dom0_memory.get
        self.dom0 = [dom0(h.name, h.dom0_mb) for h in self.hosts]
        self.usable = [h.ram_mb - reserve_mb - d for h, d in zip(self.hosts, self.dom0, strict=True)]
        self.reserve_mb = reserve_mb
        self.surviving = surviving = {h.site for h in self.hosts}
        # Hosts alike in site and bridges form a class (the unit of eligibility).
        self.classes: dict[tuple[str, frozenset[str]], list[int]] = {}
        for i, h in enumerate(self.hosts):
            self.classes.setdefault((h.site, h.bridges), []).append(i)
        self.vms, self._shared = shared.by_name, shared
        pairs = shared.memory(scenario.vm_memory)[1]
        n = len(self.hosts)
        # VMs staying where they are, per host in input order: (name, MB), their MB and groups.
        self.fixed_placed: list[list[tuple[str, int]]] = [[] for _ in range(n)]
        self.fixed_groups: list[set[str]] = [set() for _ in range(n)]
        self._fixed_host: dict[str, int] | None = None
        self.unrecoverable: list[Unrecoverable] = []
        self.structural: dict[str, str] = {}  # unplaceable whatever the load: must be shed
        movers: list[int] = []  # positions in vms of the VMs to place (not structural)
        pinned, pools = [-1] * len(vms), [-1] * len(vms)  # per position: pinned host index, pool
        self.pools: list[list[int]] = []
        eligible_cache: dict[tuple[frozenset[str], frozenset[str]], tuple[list, int]] = {}
        self.eligible: dict[str, list[tuple[str, frozenset[str]]]] = {}
        lost_why: dict[frozenset[str], str] = {}  # why a VM is unrecoverable, per replica sites
        placement = scenario.placement or None
        fixed_placed, fixed_groups = self.fixed_placed, self.fixed_groups
        if placement is None:  # every VM on its home host: whole home lists stay (never mutated)
            lists, totals = shared.at_home(scenario.vm_memory)
            self.fixed_load = [0] * n
            for home, i in index.items():
                if home in lists:
                    fixed_placed[i], self.fixed_load[i] = lists[home], totals[home]
                    fixed_groups[i] = shared.home_groups[home]
            moving = sorted(k for home, ks in shared.by_home.items() if home not in index for k in ks)
        else:
            current = map(placement.get, shared.names, shared.homes)
            moving = []
            for k, (pair, i, group) in enumerate(
                zip(pairs, map(index.get, current), shared.groups, strict=True)
            ):
                if i is None:
                    moving.append(k)
                    continue
                fixed_placed[i].append(pair)
                if group:
                    fixed_groups[i].add(group)
            self.fixed_load = [sum(mb for _, mb in row) for row in fixed_placed]
        for k in moving:
            vm = vms[k]
            name, sites = vm.name, vm.replica_sites
            if surviving.isdisjoint(sites):
                if sites not in lost_why:
                    only = "/".join(sorted(sites)) or "nowhere"
                    why = " (its DR group has no target array)" if len(sites) <= 1 else ""
                    lost_why[sites] = f"no replica at {'/'.join(sorted(surviving))}: data only at {only}{why}"
                self.unrecoverable.append(Unrecoverable(name, lost_why[sites]))
                continue
            key = (sites, vm.bridges)
            known = eligible_cache.get(key)
            if known is None:
                eligible = [c for c in self.classes if c[0] in sites and vm.bridges <= c[1]]
                known = eligible_cache[key] = (eligible, len(self.pools))
                # The hosts an unpinned mover may use form its pool (the union of its classes, in
                # host order): first fit in the pool is the first fit over its classes.
                self.pools.append(sorted(i for c in eligible for i in self.classes[c]))
            eligible, pool = known
            self.eligible[name] = eligible
            if vm.pinned_host is None and eligible:
                movers.append(k)
                pools[k] = pool
                continue
            reason = self._structural(vm)
            if reason:
                self.structural[name] = reason
            else:
                movers.append(k)
                assert vm.pinned_host is not None  # an unpinned VM with no pool is structural
                pinned[k] = index[vm.pinned_host]
        # Placement order: pinned first, then by tier, larger first, then by name. Two stable
        # sorts on plain keys (name, then one integer) are much cheaper than one on tuples.
        mbs = shared.mbs(scenario.vm_memory) if movers else []
        movers.sort(key=shared.names.__getitem__)
        if movers:
            tiers = [vms[k].priority for k in movers]
            low, span = min(tiers), max(tiers) - min(tiers) + 1
            top = max(mbs[k] for k in movers)
            width = top - min(mbs[k] for k in movers) + 1
            rank = {
                k: ((pinned[k] < 0) * span + tier - low) * width + top - mbs[k]
                for k, tier in zip(movers, tiers, strict=True)
            }
            movers.sort(key=rank.__getitem__)
        self.movers = list(map(vms.__getitem__, movers))
        # What run() needs of each mover, looked up once here, not on each of the placements a
        # shedding search makes: (name, MB, anti-affinity group, pinned host index or -1, pool
        # or -1); the VMSpec of each row is in row_vms.
        self.rows: list[tuple[str, int, str | None, int, int]] = list(
            zip(
                map(shared.names.__getitem__, movers),
                map(mbs.__getitem__, movers),
                map(shared.groups.__getitem__, movers),
                map(pinned.__getitem__, movers),
                map(pools.__getitem__, movers),
                strict=True,
            )
        )
        self.row_vms: list[VMSpec] = self.movers
        self.host_pools: list[list[tuple[int, int]]] = [[] for _ in range(n)]  # (pool, position)
        for pool, members in enumerate(self.pools):
            for pos, i in enumerate(members):
                self.host_pools[i].append((pool, pos))
        self._hosts_for: dict[int, list[int]] = {}
        self._row_of: dict[str, int] | None = None
        self._pool_sets: list[frozenset[int]] | None = None

    @property
    def mem(self) -> dict[str, int]:
        """Each VM's MB in this scenario, by name (the shedding search's view)."""
        by_name, _ = self._shared.memory(self.scenario.vm_memory, by_name=True)
        assert by_name is not None  # asked for by name
        return by_name

    @property
    def tier(self) -> dict[str, int]:
        return self._shared.tiers()

    def hosts_for(self, name: str) -> list[int]:
        """Indices of the hosts a moving VM may use (load ignored), in host order."""
        vm = self.vms[name]
        if vm.pinned_host is not None:
            return [self.index[vm.pinned_host]]
        key = id(self.eligible[name])  # shared per (replica sites, bridges)
        if key not in self._hosts_for:
            self._hosts_for[key] = sorted(i for c in self.eligible[name] for i in self.classes[c])
        return self._hosts_for[key]

    def _structural(self, vm: VMSpec) -> str | None:
        if vm.pinned_host is None:
            if self.eligible[vm.name]:
                return None
            needs = f" offering {', '.join(sorted(vm.bridges))}" if vm.bridges else ""
            return f"no surviving host at a replica site ({'/'.join(sorted(vm.replica_sites))}){needs}"
        pin = vm.pinned_host
        if pin not in self.index:
            return f"pinned to {pin}, which is lost or unknown"
        host = self.hosts[self.index[pin]]
        if host.site not in vm.replica_sites:
            return f"pinned to {pin}: no replica at {host.site}"
        if not vm.bridges <= host.bridges:
            return f"pinned to {pin}: lacks bridge(s) {', '.join(sorted(vm.bridges - host.bridges))}"
        return None

    def fixed_host(self) -> dict[str, int]:
        """The host index of each VM staying where it is."""
        if self._fixed_host is None:
            self._fixed_host = {name: i for i, row in enumerate(self.fixed_placed) for name, _ in row}
        return self._fixed_host

    def _fixed(self, shed: frozenset[str], with_placed: bool = True):
        """Load, placed lists (or None) and anti-affinity groups per host of the VMs staying put."""
        # groups shares fixed_groups' sets: a run copies a host's set before adding to it (_join)
        load, groups = self.fixed_load[:], list(self.fixed_groups)
        placed = [row[:] for row in self.fixed_placed] if with_placed else None
        fixed_host = self.fixed_host() if shed else {}
        for i in {fixed_host[name] for name in shed if name in fixed_host}:
            kept, load[i], groups[i] = self._staying(i, shed)
            if placed is not None:
                placed[i] = kept
        return load, placed, groups

    def _staying(self, i: int, shed: frozenset[str]) -> tuple[list[tuple[str, int]], int, set[str]]:
        """The (name, MB) pairs, MB and groups of the VMs staying on host i that are not shed."""
        kept = [pair for pair in self.fixed_placed[i] if pair[0] not in shed]
        return kept, sum(mb for _, mb in kept), {g for name, _ in kept if (g := self.vms[name].anti_affinity)}

    @staticmethod
    def _join(groups: list[set[str]], kept: list[set[str]], i: int, group: str) -> None:
        """Add ``group`` to host i's, copying the set first while it is still the one in ``kept``."""
        if groups[i] is kept[i]:
            groups[i] = set(groups[i])
        groups[i].add(group)

    def run(self, shed: frozenset[str] = frozenset(), probe: bool = False) -> _Run:
        """Place everything but ``shed``. ``probe`` only answers fits, stopping at the first failure."""
        usable = self.usable
        load, placed, groups = self._fixed(shed)
        fixed = (load[:], list(groups))
        unplaced = {n: ("structural", r) for n, r in self.structural.items() if n not in shed}
        if probe and (unplaced or any(ld > u for ld, u in zip(load, usable, strict=True))):
            return _Run(load, None, unplaced, False)
        pools, host_pools = self.pools, self.host_pools
        trees = [_FreeIndex([usable[i] - load[i] for i in members]) for members in pools]
        # Per pool and MB: the first position with that much free. Free memory only shrinks
        # while placing, so first fit resumes there instead of at the first host.
        starts: list[dict[int, int]] = [{} for _ in pools]
        choice = [_SHED] * len(self.rows)
        short: list[VMSpec] = []
        for k, (name, need, group, pinned, p) in enumerate(self.rows):
            if shed and name in shed:
                continue
            best, blocked = -1, False
            if pinned >= 0:
                blocked = group in groups[pinned]
                best = pinned if not blocked and usable[pinned] - load[pinned] >= need else -1
            else:
                tree, start = trees[p], starts[p]
                pos = start.get(need, 0)
                if pos >= 0 and tree.tree[pos + tree.size] < need:
                    pos = start[need] = tree.first(need, pos)
                members = pools[p]
                while pos >= 0:
                    i = members[pos]
                    if group is None or group not in groups[i]:
                        best = i
                        break
                    blocked, pos = True, tree.first(need, pos + 1)
            if best < 0:
                if probe:
                    return _Run(load, None, {name: ("memory", "")}, False)
                choice[k] = _UNPLACED
                vm = self.row_vms[k]
                kind = "affinity" if blocked else "memory"
                most = usable[pinned] - load[pinned] if pinned >= 0 else trees[p].tree[1]
                unplaced[name] = (kind, self._reason(vm, need, kind, most))
                if kind == "memory":
                    short.append(vm)
                continue
            choice[k] = best
            load[best] += need
            placed[best].append((name, need))
            if group:
                self._join(groups, fixed[1], best, group)
            free = usable[best] - load[best]
            for q, pos in host_pools[best]:
                trees[q].set(pos, free)
        fits = not unplaced and all(ld <= u for ld, u in zip(load, usable, strict=True))
        run = _Run(load, None if probe else placed, unplaced, fits, choice=choice, shed=shed, fixed=fixed)
        if short:
            run.deficit = self._deficit(short, load)
        return run

    def _deficit(self, short: list[VMSpec], load: list[int]) -> int:
        """Notional deficits: each short VM is charged to the eligible host with most room left."""
        trees, where = {}, [(None, 0)] * len(load)
        for key, members in self.classes.items():
            trees[key] = _FreeIndex([self.usable[i] - load[i] for i in members])
            for pos, i in enumerate(members):
                where[i] = (trees[key], pos)
        deficit = 0
        for vm in short:
            need = self.mem[vm.name]
            if vm.pinned_host is not None:
                i = self.index[vm.pinned_host]
                tree, pos = where[i]
            else:
                tree = max((trees[k] for k in self.eligible[vm.name]), key=lambda t: t.tree[1])
                pos = tree.first(tree.tree[1])
            free = tree.tree[pos + tree.size]
            deficit += need - max(free, 0)
            tree.set(pos, free - need)
        return deficit

    def rerun(self, base: _Run, shed: frozenset[str], probe: bool = False) -> _Run:
        """``run(shed, probe)``, placing again only what differs from ``base`` (a complete run with
        another shed set): the answer is the same, its unplaced VMs carry no reasons.

        Rows before the first VM whose shed state changed go where they went. After it, a host is
        *diverged* once its load or groups differ from base's at the same row. A VM that base put
        on host b still goes to b when b has not diverged, unless a diverged host before b now
        has room: every host before b that has not diverged lacked room then, as it does now. A
        VM base left unplaced can only go to a diverged host. Only a VM whose base host diverged
        and is now too full, or a VM no longer shed, is searched for over its whole pool."""
        diff = shed ^ base.shed
        if base.choice is None or base.fixed is None or len(diff) > _REPLAY_MAX:
            return self.run(shed, probe)
        if self._row_of is None:
            self._row_of = {row[0]: k for k, row in enumerate(self.rows)}
            self._pool_sets = [frozenset(members) for members in self.pools]
        row_of, pool_sets, fixed_host = self._row_of, self._pool_sets, self.fixed_host()
        assert pool_sets is not None  # set just above
        usable, rows, before = self.usable, self.rows, base.choice
        load, groups = base.fixed[0][:], list(base.fixed[1])  # the VMs staying: only diff changes them
        for i in {fixed_host[name] for name in diff if name in fixed_host}:
            _, load[i], groups[i] = self._staying(i, shed)
        fixed = (load[:], list(groups))
        unplaced = {n: ("structural", r) for n, r in self.structural.items() if n not in shed}
        if probe and (unplaced or any(ld > u for ld, u in zip(load, usable, strict=True))):
            return _Run(load, None, unplaced, False)
        diverged = {fixed_host[name] for name in diff if name in fixed_host}
        changed = {row_of[name]: name in shed for name in diff if name in row_of}
        first = 0 if diverged else min(changed, default=len(rows))
        for k in range(first):  # as in base, unplaced VMs included
            c = before[k]
            if c >= 0:
                load[c] += rows[k][1]
                group = rows[k][2]
                if group:
                    self._join(groups, fixed[1], c, group)
            elif c == _UNPLACED:
                if probe:
                    return _Run(load, None, {rows[k][0]: ("memory", "")}, False)
                unplaced[rows[k][0]] = ("memory", "")
        order = sorted(diverged)
        choice = before[:]
        for k in range(first, len(rows)):
            b, now_shed = before[k], changed.get(k)
            if b == _SHED and now_shed is None:
                continue
            name, need, group, pinned, p = rows[k]
            if now_shed:
                c = _SHED
            elif pinned >= 0:
                fits = usable[pinned] - load[pinned] >= need and (
                    group is None or group not in groups[pinned]
                )
                c = pinned if fits else _UNPLACED
            elif now_shed is False:  # no longer shed: base says nothing about it
                c = self._first_fit(p, need, group, load, groups, 0)
            else:
                c, pool = _UNPLACED, pool_sets[p]
                for i in order:
                    if 0 <= b <= i:
                        break
                    if (
                        i in pool
                        and usable[i] - load[i] >= need
                        and (group is None or group not in groups[i])
                    ):
                        c = i
                        break
                if c < 0 and b >= 0:
                    if b not in diverged or (
                        usable[b] - load[b] >= need and (group is None or group not in groups[b])
                    ):
                        c = b
                    else:
                        c = self._first_fit(p, need, group, load, groups, b + 1)
            if c != b:
                for i in (b, c):
                    if i >= 0 and i not in diverged:
                        diverged.add(i)
                        insort(order, i)
                if len(diverged) > _REPLAY_MAX:
                    return self.run(shed, probe)
            choice[k] = c
            if c >= 0:
                load[c] += need
                if group:
                    self._join(groups, fixed[1], c, group)
            elif c == _UNPLACED:
                if probe:
                    return _Run(load, None, {name: ("memory", "")}, False)
                unplaced[name] = ("memory", "")
        fits = not unplaced and all(ld <= u for ld, u in zip(load, usable, strict=True))
        placed = None
        if not probe:  # base's lists where nothing changed, the diverged hosts listed again
            rebuild = diverged if base.placed is not None else set(range(len(load)))
            placed = list(base.placed) if base.placed is not None else [[] for _ in load]
            for i in rebuild:
                placed[i] = [pair for pair in self.fixed_placed[i] if pair[0] not in shed]
            for k, c in enumerate(choice):
                if c in rebuild:
                    placed[c].append(rows[k][:2])
        return _Run(load, placed, unplaced, fits, choice=choice, shed=shed, fixed=fixed)

    def _first_fit(self, pool: int, need: int, group: str | None, load: list[int], groups, start: int) -> int:
        """The first host of ``pool`` from host index ``start`` on with room and without ``group``."""
        members, usable = self.pools[pool], self.usable
        for i in members[bisect_left(members, start) :]:
            if usable[i] - load[i] >= need and (group is None or group not in groups[i]):
                return i
        return _UNPLACED

    def _reason(self, vm: VMSpec, need: int, kind: str, most: int) -> str:
        """Why ``vm`` found no host; ``most`` is the most free MB on a host it may use."""
        if vm.pinned_host is not None:
            if kind == "affinity":
                return f"pinned to {vm.pinned_host}: anti-affinity group {vm.anti_affinity} already there"
            return f"pinned to {vm.pinned_host}: needs {need} MB, {max(most, 0)} MB free"
        where = f"hosts at {'/'.join(sorted(vm.replica_sites & self.surviving))}" + (
            f" offering {', '.join(sorted(vm.bridges))}" if vm.bridges else ""
        )
        if kind == "affinity":
            return f"every one of the {where} with {need} MB free runs anti-affinity group {vm.anti_affinity}"
        return f"needs {need} MB; of the {where}, the one with most room has {max(most, 0)} MB free"

    def result(self, run: _Run, shed: list[str]) -> CapacityResult:
        assert run.placed is not None  # a full run's, never a probe's
        hosts = []
        for i, h in enumerate(self.hosts):
            over = run.load[i] - self.usable[i]
            used, placed = run.load[i] + self.dom0[i], run.placed[i]
            hosts.append(
                HostResult(
                    h.name,
                    h.site,
                    h.ram_mb,
                    self.reserve_mb,
                    self.dom0[i],
                    used,
                    max(-over, 0),
                    over <= 0,
                    placed,
                    max(over, 0),
                )
            )
        return CapacityResult(
            scenario=self.scenario.name,
            hosts=hosts,
            unrecoverable=self.unrecoverable,
            unplaced=list(run.unplaced),
            fits=run.fits,
            shortfall_mb=sum(h.shortfall_mb for h in hosts) + run.deficit,
            shed=shed,
            lost_site=self.scenario.lost_site,
            unplaced_reasons={vm: reason for vm, (_, reason) in run.unplaced.items()},
        )


def _room(
    members: list[tuple[str, int, int]], excess: int, must: list[str], above: float
) -> list[str] | None:
    """Fewest VMs of the least important tiers on one host that free ``excess`` MB, or None.

    ``members`` are (vm, MB, tier) on the host; ``must`` go anyway (anti-affinity) and count
    towards the MB; only VMs of a tier number above ``above`` may go. Cut-off first: the least
    important tier T such that shedding every VM of tier >= T is enough; then the largest of those
    first (ties: less important, then name). Given T this is the minimum count: the k largest VMs
    free the most memory any k VMs can."""
    gone = set(must)
    excess -= sum(mb for name, mb, _ in members if name in gone)
    pool = [m for m in members if m[2] > above and m[0] not in gone]
    chosen: list[tuple[str, int, int]] = []
    for tier in sorted({t for _, _, t in pool}, reverse=True):
        if excess <= 0:
            break
        chosen = [m for m in pool if m[2] >= tier]
        if sum(mb for _, mb, _ in chosen) >= excess:
            break
    else:
        if excess > 0:
            return None
    out = list(must)
    for name, mb, _ in sorted(chosen, key=lambda m: (-m[1], -m[2], m[0])):
        if excess <= 0:
            break
        out.append(name)
        excess -= mb
    return out


def _proposal(ctx: _Context, run: _Run) -> set[str]:
    """One round of shedding for a run that does not fit; see ``_shed``."""
    tier, placed = ctx.tier, run.placed
    assert placed is not None  # only a probe's run has none, and probes are never shed
    least = max(tier.values())  # a single VM of this tier is the best any host can offer
    free = [u - ld for u, ld in zip(ctx.usable, run.load, strict=True)]
    # Per host, (vm, MB, tier) of its VMs and its MB per tier (cheap rejection): built for the
    # hosts this round looks at, which are few once only a handful of VMs are unplaced.
    members: list[list[tuple[str, int, int]]] = [None] * len(free)  # type: ignore[list-item]
    by_tier: list[dict[int, int]] = [None] * len(free)  # type: ignore[list-item]

    def host(i: int) -> list[tuple[str, int, int]]:
        if members[i] is None:
            row = members[i] = [(vm, mb, tier[vm]) for vm, mb in placed[i]]
            sums = by_tier[i] = {}
            for _, mb, t in row:
                sums[t] = sums.get(t, 0) + mb
        return members[i]

    new: set[str] = set()

    def drop(i: int, names: list[str]) -> None:
        for _, mb, t in (m for m in host(i) if m[0] in names):
            free[i] += mb
            by_tier[i][t] -= mb
        members[i] = [m for m in members[i] if m[0] not in names]
        sheddable.pop(i, None)
        new.update(names)

    # MB of tiers less important than p on host i, per (i, p): asked for every unplaced VM
    # and eligible host, changed only where a VM was placed or shed.
    sheddable: dict[int, dict[int, int]] = {}

    for i in range(len(free)):  # overloaded hosts are independent of each other
        if free[i] < 0:
            drop(i, _room(host(i), -free[i], [], float("-inf")) or [])
    for name in run.unplaced:  # in placement order: most important first
        vm, need, group = ctx.vms[name], ctx.mem[name], ctx.vms[name].anti_affinity
        best: tuple[tuple[int, int, int], int, list[str]] | None = None
        priority = vm.priority
        for i in ctx.hosts_for(name):
            known = sheddable.get(i)
            if known is None:
                known = sheddable[i] = {}
            less = known.get(priority)
            if less is None:
                host(i)
                less = known[priority] = sum(mb for t, mb in by_tier[i].items() if t > priority)
            if free[i] + less < need:
                continue
            must = [m[0] for m in members[i] if group and ctx.vms[m[0]].anti_affinity == group]
            if any(tier[m] <= vm.priority for m in must):
                continue  # never shed a VM at least as important as the one it makes room for
            found = _room(members[i], need - free[i], must, vm.priority)
            if found is not None:
                key = (-min((tier[n] for n in found), default=1 << 30), len(found), i)
                best = min(best, (key, i, found)) if best else (key, i, found)
                if key[:2] <= (-least, 1):
                    break
        if best is None:  # no host can make room with less important VMs: shed this one
            new.add(name)
            continue
        _, i, found = best
        drop(i, found)
        members[i].append((name, need, vm.priority))
        by_tier[i][vm.priority] = by_tier[i].get(vm.priority, 0) + need
        sheddable.pop(i, None)
        free[i] -= need
    return new


def _shed(ctx: _Context, base: _Run) -> list[str]:
    """The smallest set of least important VMs whose shedding makes the scenario fit.

    The rule is importance before count: the most important VM shed must be as unimportant as
    possible (never shed a tier-2 VM if tier-3..5 VMs can do it), then shed as few VMs as possible,
    then prefer less important and larger VMs. Structurally unplaceable VMs (pinned to a lost host,
    no host with their bridges) are always shed: nothing else can make them run.

    Up to _EXACT_MAX VMs in play (the reference estate has six) the set is exactly optimal for
    that rule: per cut-off tier, subsets by size, each verified by a full placement.

    Larger estates go problem by problem (bin packing is NP-hard, and 10,000 VMs must stay fast):
    1. each overloaded host sheds its own VMs by ``_room`` (least important tiers needed, largest
       first: the fewest VMs for that host);
    2. each unplaced VM, most important first, gets room on the eligible host where that costs the
       least important VMs (all strictly less important than it, anti-affinity peers included), then
       the fewest, then the first host; if no host can, the VM itself is shed;
    3. the placement is re-run (first fit may cascade) and 1-2 repeat on what still fails;
    4. shed VMs are restored, most important first, wherever it still fits without them (a bounded
       number of re-checks, see _PRUNE_BUDGET).
    Re-runs and re-checks start from the previous placement (_Context.rerun): a small change of
    the shed set re-places only the VMs it moves, with the answer a full placement gives.

    Returns [] when nothing can make it fit (a dom0 alone exceeds its host).
    """
    forced = frozenset(ctx.structural)

    def fits(names: Iterable[str]) -> bool:
        return ctx.run(forced | frozenset(names), probe=True).fits

    def ordered(names: Iterable[str]) -> list[str]:
        return sorted(names, key=lambda n: (-ctx.vms[n].priority, -ctx.mem[n], n))

    # Shedding the structural VMs changes nothing but the unplaced list: run(forced) is base.
    unplaced = {n: v for n, v in base.unplaced.items() if n not in forced}
    fitting = not unplaced and all(ld <= u for ld, u in zip(base.load, ctx.usable, strict=True))
    if fitting:
        return ordered(forced)
    pool = ordered([n for row in base.placed for n, _ in row] + [n for n in base.unplaced if n not in forced])
    if len(pool) <= _EXACT_MAX:
        for tier in sorted({ctx.vms[n].priority for n in pool}, reverse=True):
            cut = [n for n in pool if ctx.vms[n].priority >= tier]
            if fits(cut):
                for k in range(1, len(cut) + 1):
                    found = next((c for c in combinations(cut, k) if fits(c)), None)
                    if found:
                        return ordered(forced | set(found))
        return []
    shed, run = (
        set(forced),
        _Run(base.load, base.placed, unplaced, False, choice=base.choice, shed=forced, fixed=base.fixed),
    )
    while not run.fits:
        more = _proposal(ctx, run) - shed
        if not more:
            return []
        shed |= more
        run = ctx.rerun(run, frozenset(shed))
    budget = min(_PRUNE_BUDGET, max(4, _PRUNE_WORK // len(ctx.vms)))
    for name in sorted(shed - forced, key=lambda n: (ctx.vms[n].priority, ctx.mem[n], n))[:budget]:
        trial = ctx.rerun(run, frozenset(shed - {name}), probe=True)
        if trial.fits:
            shed.discard(name)
            run = trial
    return ordered(shed)


def check_scenario(
    hosts: Iterable[HostSpec], vms: Iterable[VMSpec], scenario: Scenario, *, reserve_mb: int = 0
) -> CapacityResult:
    """Check one scenario (see the module docstring) and propose what to shed if it does not fit."""
    with no_cycle_collection():
        return _check(list(hosts), list(vms), scenario, reserve_mb, None)


def _check(
    hosts: list[HostSpec], vms: list[VMSpec], scenario: Scenario, reserve_mb: int, shared: _Shared | None
) -> CapacityResult:
    ctx = _Context(hosts, vms, scenario, reserve_mb, shared)
    base = ctx.run()
    return ctx.result(base, [] if base.fits else _shed(ctx, base))


def what_ifs(
    hosts: Iterable[HostSpec],
    vms: Iterable[VMSpec],
    *,
    dr_memory: Mapping[str, int],
    dom0_dr_memory: Mapping[str, int],
    normal_memory: Mapping[str, int],
    dom0_normal_memory: Mapping[str, int],
    reserve_mb: int = 0,
) -> list[CapacityResult]:
    """The "normal operation" check (every VM on its home host), then "<SITE> lost" per site in host order.

    With a site lost every VM runs at its DR memory, also those already at the surviving site
    (thesis runbook step 4 reduces their memory)."""
    hosts, vms = list(hosts), list(vms)
    with no_cycle_collection():
        shared = _Shared(vms)  # the VMs by name, and their MB per memory map, for every scenario
        # No explicit placement: every VM on its home host (VM names are unique).
        normal = Scenario("normal operation", None, normal_memory, dom0_normal_memory)
        results = [_check(hosts, vms, normal, reserve_mb, shared)]
        for site in dict.fromkeys(h.site for h in hosts):
            lost = Scenario(f"{site} lost", site, dr_memory, dom0_dr_memory)
            results.append(_check(hosts, vms, lost, reserve_mb, shared))
    return results


@contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for one capacity check (or another bounded piece
    of work that allocates much and keeps it: the failover survey's inventory read). The check
    allocates a few hundred thousand small lists and tuples for 100,000 VMs and builds no
    reference cycles; each time the allocations cross the collector's threshold it walks every
    object alive (the whole estate), which cost about as much CPU as the check itself. Reference
    counting still frees everything else; the collector is enabled again as it was found (and
    then collects any cycle left meanwhile)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
