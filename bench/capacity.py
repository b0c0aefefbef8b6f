"""Benchmark of the capacity proof: all what-ifs for synthetic two-site estates.

Run: ``.venv/bin/python bench/capacity.py`` from the repository root (or anywhere). Prints JSON.
Targets (issue 16): all what-ifs of 10,000 VMs on 500 hosts under 1 s for the estates as
generated, which fit; ``overloaded`` (every host shrunk to 55 % of its RAM, so normal operation and
a site loss need a shed proposal: the placement re-run a few times plus a bounded pruning) under
1 s; and all what-ifs of 100,000 VMs on 5,000 hosts under 3 s. Times are the best of ROUNDS, in
wall seconds, with the CPU seconds of that round beside them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hosts.capacity import HostSpec, VMSpec, what_ifs

SIZES = ((100, 10), (1_000, 100), (10_000, 500))
TARGET_S = 1.0
OVERLOADED_TARGET_S = 1.0
LARGE = (100_000, 5_000)
LARGE_TARGET_S = 3.0
ROUNDS = 3


def synthetic_estate(n_vms: int, n_hosts: int, seed: int = 7) -> tuple[list[HostSpec], list[VMSpec], dict]:
    """A deterministic two-site estate shaped like the reference one (also used by the tests).

    Hosts alternate WSL/KA, a fifth also offer a ``dmz`` bridge. WSL-homed VMs replicate to KA, a
    third of KA-homed VMs to WSL; a fifth of the VMs form anti-affine pairs on different hosts; 1 %
    of the replicated ones (none needing dmz) are pinned to a host of the other site. Host RAM is
    sized so normal operation runs at about 60 %, which leaves room for a site loss at DR memory
    (half the normal memory).
    Returns (hosts, vms, the memory maps for ``what_ifs``)."""
    rnd = random.Random(seed)
    sites = ("WSL", "KA")
    names = [f"xen{sites[i % 2].lower()}{i:03d}" for i in range(n_hosts)]
    dmz_hosts = {n for n in names if rnd.random() < 0.2}
    load = dict.fromkeys(names, 0)
    vms, normal, dr, previous = [], {}, {}, 0
    for v in range(n_vms):
        h = rnd.randrange(n_hosts)
        if v % 10 == 1 and n_hosts > 1:  # second VM of an anti-affine pair: never its partner's host
            h = (previous + 1 + rnd.randrange(n_hosts - 1)) % n_hosts
        name, home, site, previous = f"vm{v:05d}", names[h], sites[h % 2], h
        normal[name] = rnd.choice((512, 1024, 1024, 2048, 4096, 8192))
        dr[name] = max(256, normal[name] // 2)
        load[home] += normal[name]
        other = sites[(h + 1) % 2]
        replicas = frozenset({site, other} if site == "WSL" or rnd.random() < 0.33 else {site})
        pin = names[(h + 1 + 2 * rnd.randrange(n_hosts // 2)) % n_hosts] if len(replicas) > 1 else None
        bridges = {"xenbr0", "xenbr1"} | ({"dmz"} if home in dmz_hosts and rnd.random() < 0.3 else set())
        vms.append(
            VMSpec(
                name=name,
                home_host=home,
                memory_mb=normal[name],
                priority=rnd.randint(1, 5),
                replica_sites=replicas,
                pinned_host=pin if rnd.random() < 0.01 and "dmz" not in bridges else None,
                anti_affinity=f"ha{v // 2}" if v % 10 < 2 else None,
                bridges=frozenset(bridges),
            )
        )
    hosts = []
    for i, n in enumerate(names):
        ram = max(4096, (int(load[n] / 0.6) // 1024 + 1) * 1024)
        bridges = frozenset({"xenbr0", "xenbr1"} | ({"dmz"} if n in dmz_hosts else set()))
        hosts.append(HostSpec(n, sites[i % 2], ram, 1024, bridges))
    memory = {
        "dr_memory": dr,
        "dom0_dr_memory": dict.fromkeys(names, 512),
        "normal_memory": normal,
        "dom0_normal_memory": dict.fromkeys(names, 1024),
    }
    return hosts, vms, memory


def measure(hosts: list[HostSpec], vms: list[VMSpec], memory: dict) -> dict:
    best, cpu, results = float("inf"), 0.0, []
    for _ in range(ROUNDS):
        start, start_cpu = time.perf_counter(), time.process_time()
        results = what_ifs(hosts, vms, **memory)
        if time.perf_counter() - start < best:
            best, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return {
        "vms": len(vms),
        "hosts": len(hosts),
        "scenarios": len(results),
        "seconds": round(best, 4),
        "cpu_seconds": round(cpu, 4),
        "fits": {r.scenario: r.fits for r in results},
        "unrecoverable": sum(len(r.unrecoverable) for r in results),
        "unplaced": sum(len(r.unplaced) for r in results),
        "shed": sum(len(r.shed) for r in results),
    }


def main() -> dict:
    sizes = []
    for n_vms, n_hosts in SIZES:
        hosts, vms, memory = synthetic_estate(n_vms, n_hosts)
        sizes.append(measure(hosts, vms, memory))
    hosts, vms, memory = synthetic_estate(*SIZES[-1])
    small = [dataclasses.replace(h, ram_mb=h.ram_mb * 11 // 20) for h in hosts]
    largest = sizes[-1]
    overloaded = measure(small, vms, memory)
    large = measure(*synthetic_estate(*LARGE))
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "rounds": ROUNDS,
        "sizes": sizes,
        "target_s": TARGET_S,
        "target_case": {"vms": largest["vms"], "hosts": largest["hosts"]},
        "meets_target": largest["seconds"] < TARGET_S,
        "overloaded": overloaded,
        "overloaded_target_s": OVERLOADED_TARGET_S,
        "overloaded_meets_target": overloaded["seconds"] < OVERLOADED_TARGET_S,
        "large": large,
        "large_target_s": LARGE_TARGET_S,
        "large_meets_target": large["seconds"] < LARGE_TARGET_S,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
