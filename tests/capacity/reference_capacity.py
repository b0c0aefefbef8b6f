"""The capacity search as it was before it was made faster (hosts/capacity.py at the
start of issue 16), kept only as the reference the faster one must agree with
(tests/capacity/test_capacity_faster.py). Three functions: the free index's update, one
placement, one round of shedding proposals."""

# ruff: noqa
from __future__ import annotations

from hosts.capacity import VMSpec, _Context, _FreeIndex, _room, _Run


def old_set(self, pos: int, value: int) -> None:
    tree = self.tree
    i = pos + self.size
    tree[i] = value
    i >>= 1
    while i:
        tree[i] = max(tree[2 * i], tree[2 * i + 1])
        i >>= 1


def old_run(self, shed: frozenset[str] = frozenset(), probe: bool = False) -> _Run:
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


def old_proposal(ctx: _Context, run: _Run) -> set[str]:
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
