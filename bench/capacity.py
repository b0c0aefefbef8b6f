"""Benchmark of the capacity proof: all what-ifs for synthetic two-site estates.

Run: ``.venv/bin/python bench/capacity.py`` from the repository root (or anywhere). Prints JSON.
The target (all what-ifs of 10,000 VMs on 500 hosts under 1 s) is for the estates as generated,
which fit. ``overloaded`` shrinks every host by a third so each site loss needs a shed proposal; that
path re-runs the placement O(tiers + log n + shed count) times and is reported, not targeted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hosts.capacity import HostSpec, synthetic_estate, what_ifs

SIZES = ((100, 10), (1_000, 100), (10_000, 500))
TARGET_S = 1.0
ROUNDS = 3


def measure(hosts: list[HostSpec], vms: list, memory: dict) -> dict:
    best, results = float("inf"), []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        results = what_ifs(hosts, vms, **memory)
        best = min(best, time.perf_counter() - start)
    return {
        "vms": len(vms),
        "hosts": len(hosts),
        "scenarios": len(results),
        "seconds": round(best, 4),
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
    small = [dataclasses.replace(h, ram_mb=h.ram_mb * 2 // 3) for h in hosts]
    largest = sizes[-1]
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "rounds": ROUNDS,
        "sizes": sizes,
        "target_s": TARGET_S,
        "target_case": {"vms": largest["vms"], "hosts": largest["hosts"]},
        "meets_target": largest["seconds"] < TARGET_S,
        "overloaded": measure(small, vms, memory),
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
