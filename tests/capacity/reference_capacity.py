"""The capacity search as it was at the start of issue 16 (hosts/capacity.py before it was made
faster), whole and on its own, kept only as the oracle the faster one must agree with
(tests/capacity/test_capacity_faster.py): the same placements, shed proposals, reasons and
shortfalls. Only the input and result types are imported; every step of the search is here.

Its run, free-index update and shedding round are the older, simpler ones the faster search
replaced first (they agreed on the same random estates)."""

# ruff: noqa
from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import combinations

from hosts.capacity import CapacityResult, HostResult, HostSpec, Scenario, Unrecoverable, VMSpec
from dataclasses import dataclass

_NEG = -(1 << 62)  # padding for unused tree leaves: below any real free value
# Re-checks spent making a shed set irreducible: each is a full placement, so big estates get fewer
# (32 for up to ~3,000 VMs, 10 for 10,000).
_PRUNE_BUDGET, _PRUNE_WORK = 32, 100_000
_EXACT_MAX = 12  # VMs in play up to which the shed set is searched exhaustively (<= 4,096 subsets)


class _FreeIndex:
    """Max segment tree of free MB over the hosts of one class, in host order.

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
            tree[i] = max(tree[2 * i], tree[2 * i + 1])
            i >>= 1


@dataclass
class _Run:
    load: list[int]  # VM memory per surviving host (dom0 excluded: it is in usable)
    placed: list[list[tuple[str, int]]]
    unplaced: dict[str, tuple[str, str]]  # vm -> (kind: memory | affinity | structural, reason)
    fits: bool
    deficit: int = 0


class _Context:
    """Everything about a scenario that does not depend on which VMs are shed."""

    def __init__(self, hosts: list[HostSpec], vms: list[VMSpec], scenario: Scenario, reserve_mb: int):
        self.scenario = scenario
        self.hosts = [h for h in hosts if h.site != scenario.lost_site]
        self.index = {h.name: i for i, h in enumerate(self.hosts)}
        self.dom0 = [scenario.dom0_memory.get(h.name, h.dom0_mb) for h in self.hosts]
        self.usable = [h.ram_mb - reserve_mb - d for h, d in zip(self.hosts, self.dom0, strict=True)]
        self.reserve_mb = reserve_mb
        self.surviving = surviving = {h.site for h in self.hosts}
        # Hosts alike in site and bridges form a class with its own free-capacity index.
        self.classes: dict[tuple[str, frozenset[str]], list[int]] = {}
        for i, h in enumerate(self.hosts):
            self.classes.setdefault((h.site, h.bridges), []).append(i)
        self.vms = {vm.name: vm for vm in vms}
        self.mem = {vm.name: scenario.vm_memory.get(vm.name, vm.memory_mb) for vm in vms}
        self.fixed: list[tuple[str, int]] = []  # (vm, host index) staying where they are
        self.unrecoverable: list[Unrecoverable] = []
        self.structural: dict[str, str] = {}  # unplaceable whatever the load: must be shed
        movers: list[VMSpec] = []
        eligible_cache: dict[tuple[frozenset[str], frozenset[str]], list[tuple[str, frozenset[str]]]] = {}
        self.eligible: dict[str, list[tuple[str, frozenset[str]]]] = {}
        for vm in vms:
            current = (scenario.placement or {}).get(vm.name, vm.home_host)
            if current in self.index:
                self.fixed.append((vm.name, self.index[current]))
                continue
            if not vm.replica_sites & surviving:
                only = "/".join(sorted(vm.replica_sites)) or "nowhere"
                why = " (its DR group has no target array)" if len(vm.replica_sites) <= 1 else ""
                self.unrecoverable.append(
                    Unrecoverable(
                        vm.name, f"no replica at {'/'.join(sorted(surviving))}: data only at {only}{why}"
                    )
                )
                continue
            movers.append(vm)
            key = (vm.replica_sites, vm.bridges)
            if key not in eligible_cache:
                eligible_cache[key] = [
                    c for c in self.classes if c[0] in vm.replica_sites and vm.bridges <= c[1]
                ]
            self.eligible[vm.name] = eligible_cache[key]
            reason = self._structural(vm)
            if reason:
                self.structural[vm.name] = reason
        movers.sort(key=lambda v: (v.pinned_host is None, v.priority, -self.mem[v.name], v.name))
        self.movers = movers
        # What run() needs of each mover that can be placed at all, looked up once here, not
        # on each of the placements a shedding search makes: (vm, name, MB, anti-affinity
        # group, pinned host index or -1, the classes it may use with their members).
        self._rows = [
            (
                vm,
                vm.name,
                self.mem[vm.name],
                vm.anti_affinity,
                self.index[vm.pinned_host] if vm.pinned_host is not None else -1,
                [(key, self.classes[key]) for key in self.eligible[vm.name]],
            )
            for vm in movers
            if vm.name not in self.structural
        ]
        self._hosts_for: dict[int, list[int]] = {}

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

    def run(self, shed: frozenset[str] = frozenset(), probe: bool = False) -> _Run:
        """Place everything but ``shed``. ``probe`` only answers fits, stopping at the first failure."""
        n = len(self.hosts)
        load, groups = [0] * n, [set() for _ in range(n)]
        placed: list[list[tuple[str, int]]] = [[] for _ in range(n)]
        for name, i in self.fixed:
            if name not in shed:
                load[i] += self.mem[name]
                placed[i].append((name, self.mem[name]))
                if self.vms[name].anti_affinity:
                    groups[i].add(self.vms[name].anti_affinity)
        unplaced = {n: ("structural", r) for n, r in self.structural.items() if n not in shed}
        if probe and (unplaced or any(ld > u for ld, u in zip(load, self.usable, strict=True))):
            return _Run(load, placed, unplaced, False)
        trees, where = {}, [(None, 0)] * n
        for key, members in self.classes.items():
            trees[key] = _FreeIndex([self.usable[i] - load[i] for i in members])
            for pos, i in enumerate(members):
                where[i] = (trees[key], pos)
        short: list[VMSpec] = []
        for vm in self.movers:
            name, need, group = vm.name, self.mem[vm.name], vm.anti_affinity
            if name in shed or name in self.structural:
                continue
            best, blocked = -1, False
            if vm.pinned_host is not None:
                i = self.index[vm.pinned_host]
                blocked = group in groups[i]
                best = i if not blocked and self.usable[i] - load[i] >= need else -1
            else:
                for key in self.eligible[name]:
                    tree, members, pos = trees[key], self.classes[key], 0
                    while (pos := tree.first(need, pos)) >= 0:
                        i = members[pos]
                        if group is None or group not in groups[i]:
                            best = i if best < 0 or i < best else best
                            break
                        blocked, pos = True, pos + 1
            if best < 0:
                if probe:
                    return _Run(load, placed, {name: ("memory", "")}, False)
                kind = "affinity" if blocked else "memory"
                unplaced[name] = (kind, self._reason(vm, need, kind, trees, load))
                if kind == "memory":
                    short.append(vm)
                continue
            load[best] += need
            placed[best].append((name, need))
            if group:
                groups[best].add(group)
            tree, pos = where[best]
            tree.set(pos, self.usable[best] - load[best])
        fits = not unplaced and all(ld <= u for ld, u in zip(load, self.usable, strict=True))
        run = _Run(load, placed, unplaced, fits)
        # Notional deficits: each short VM is charged to the eligible host with most room left.
        for vm in short:
            need = self.mem[vm.name]
            if vm.pinned_host is not None:
                i = self.index[vm.pinned_host]
                tree, pos = where[i]
            else:
                tree = max((trees[k] for k in self.eligible[vm.name]), key=lambda t: t.tree[1])
                pos = tree.first(tree.tree[1])
            free = tree.tree[pos + tree.size]
            run.deficit += need - max(free, 0)
            tree.set(pos, free - need)
        return run

    def _reason(self, vm: VMSpec, need: int, kind: str, trees: dict, load: list[int]) -> str:
        if vm.pinned_host is not None:
            i = self.index[vm.pinned_host]
            if kind == "affinity":
                return f"pinned to {vm.pinned_host}: anti-affinity group {vm.anti_affinity} already there"
            return f"pinned to {vm.pinned_host}: needs {need} MB, {max(self.usable[i] - load[i], 0)} MB free"
        most = max(trees[k].tree[1] for k in self.eligible[vm.name])
        where = f"hosts at {'/'.join(sorted(vm.replica_sites & self.surviving))}" + (
            f" offering {', '.join(sorted(vm.bridges))}" if vm.bridges else ""
        )
        if kind == "affinity":
            return f"every one of the {where} with {need} MB free runs anti-affinity group {vm.anti_affinity}"
        return f"needs {need} MB; of the {where}, the one with most room has {max(most, 0)} MB free"

    def result(self, run: _Run, shed: list[str]) -> CapacityResult:
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
    tier = {name: vm.priority for name, vm in ctx.vms.items()}
    least = max(tier.values())  # a single VM of this tier is the best any host can offer
    members = [[(vm, mb, tier[vm]) for vm, mb in row] for row in run.placed]
    free = [u - ld for u, ld in zip(ctx.usable, run.load, strict=True)]
    by_tier: list[dict[int, int]] = [{} for _ in members]  # MB per tier per host: cheap rejection
    for i, row in enumerate(members):
        for _, mb, t in row:
            by_tier[i][t] = by_tier[i].get(t, 0) + mb
    new: set[str] = set()

    def drop(i: int, names: list[str]) -> None:
        for _, mb, t in (m for m in members[i] if m[0] in names):
            free[i] += mb
            by_tier[i][t] -= mb
        members[i] = [m for m in members[i] if m[0] not in names]
        new.update(names)

    for i in range(len(members)):  # overloaded hosts are independent of each other
        if free[i] < 0:
            drop(i, _room(members[i], -free[i], [], float("-inf")) or [])
    for name in run.unplaced:  # in placement order: most important first
        vm, need, group = ctx.vms[name], ctx.mem[name], ctx.vms[name].anti_affinity
        best: tuple[tuple[int, int, int], int, list[str]] | None = None
        for i in ctx.hosts_for(name):
            if free[i] + sum(mb for t, mb in by_tier[i].items() if t > vm.priority) < need:
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

    Returns [] when nothing can make it fit (a dom0 alone exceeds its host).
    """
    forced = frozenset(ctx.structural)

    def fits(names: Iterable[str]) -> bool:
        return ctx.run(forced | frozenset(names), probe=True).fits

    def ordered(names: Iterable[str]) -> list[str]:
        return sorted(names, key=lambda n: (-ctx.vms[n].priority, -ctx.mem[n], n))

    if fits(()):
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
    shed, run = set(forced), ctx.run(forced)
    while not run.fits:
        more = _proposal(ctx, run) - shed
        if not more:
            return []
        shed |= more
        run = ctx.run(frozenset(shed))
    budget = min(_PRUNE_BUDGET, max(4, _PRUNE_WORK // len(ctx.vms)))
    for name in sorted(shed - forced, key=lambda n: (ctx.vms[n].priority, ctx.mem[n], n))[:budget]:
        if ctx.run(frozenset(shed - {name}), probe=True).fits:
            shed.discard(name)
    return ordered(shed)


def check_scenario(
    hosts: Iterable[HostSpec], vms: Iterable[VMSpec], scenario: Scenario, *, reserve_mb: int = 0
) -> CapacityResult:
    """Check one scenario (see the module docstring) and propose what to shed if it does not fit."""
    ctx = _Context(list(hosts), list(vms), scenario, reserve_mb)
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
    home = {vm.name: vm.home_host for vm in vms}
    normal = Scenario("normal operation", None, normal_memory, dom0_normal_memory, home)
    results = [check_scenario(hosts, vms, normal, reserve_mb=reserve_mb)]
    for site in dict.fromkeys(h.site for h in hosts):
        lost = Scenario(f"{site} lost", site, dr_memory, dom0_dr_memory)
        results.append(check_scenario(hosts, vms, lost, reserve_mb=reserve_mb))
    return results
