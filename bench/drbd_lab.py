#!/usr/bin/env python
"""Benchmark what the lab's real-drbd-utils check costs a ``drbdadm`` call; prints JSON.

Every lab ``drbdadm`` call renders the dom0's resource file from the state, and gives the
call to the real ``drbdadm -d`` (a subprocess) unless the same call against the same file
was judged before in this process (hosts/lab/tools/drbd_check.py). Measured in-process,
through the same handler the lab's SSH server calls, on a state of ``--groups`` DRBD
resources between the two reference dom0s:

* ``cold``: a call whose (version, node, file, argv) is new: one real drbdadm process;
* ``warm``: the same call again at the same state revision: a dictionary lookup and the
  simulation (the file is rendered once per revision);
* ``render_and_hash_ms``: rendering and hashing the resource file alone, what a state
  without a revision pays on every call (``warm_without_revision``);
* ``drbdsetup_status``: what the driver reads, ``drbdsetup status <res> --json`` (8.4:
  ``--verbose --statistics``); options checked against the real binary's table, which
  is asked once per command.

Wall and CPU milliseconds per call (CPU: this process's user+system time; the drbdadm
children's CPU is reported apart as ``children_cpu_ms``). Usage:
python bench/drbd_lab.py [--groups 50] [--calls 200] [--version 9|8.4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hosts.lab.tools import drbd_tool
from hosts.lab.tools.base import ToolContext
from hosts.lab.tools.drbd_check import Checker, render
from hosts.lab.tools.drbd_view import config_of


def make_state(groups: int, version: str) -> dict:
    def dom0(site: str, address: str) -> dict:
        return {"kind": "dom0", "site": site, "address": address, "drbd_version": version, "domains": []}

    state = {
        "revision": 1,  # as the lab server's state has: the resource file is cached per revision
        "hosts": {"xenwsl01": dom0("WSL", "127.0.1.1"), "xenka01": dom0("KA", "127.0.2.1")},
        "groups": {},
        "faults": {"xenwsl01": {"mode": "up"}, "xenka01": {"mode": "up"}},
    }
    for i in range(groups):
        state["groups"][f"DRG-vm{i:03d}"] = {
            "kind": "drbd",
            "mode": "sync",
            "devices": [f"/dev/drbd{i}"],
            "sides": {
                "xenwsl01": {"role": "primary", "presented_to": ["xenwsl01"], "disk_state": "UpToDate"},
                "xenka01": {"role": "secondary", "presented_to": [], "disk_state": "UpToDate"},
            },
            "replication": "consistent",
        }
    return state


def measure(calls: list[list[str]], state: dict) -> dict:
    wall0, cpu0, kids0 = time.perf_counter(), time.process_time(), os.times()
    for argv in calls:
        ctx = ToolContext(host="xenka01", state=state, now=1000.0)
        handler = drbd_tool.drbdadm if argv[0] == "drbdadm" else drbd_tool.drbdsetup
        status, _, err = handler(ctx, argv)
        assert status in (0, 11), err
    kids1 = os.times()
    n = len(calls)
    return {
        "calls": n,
        "wall_ms_per_call": round((time.perf_counter() - wall0) * 1000 / n, 3),
        "cpu_ms_per_call": round((time.process_time() - cpu0) * 1000 / n, 3),
        "children_cpu_ms_per_call": round(
            ((kids1.children_user - kids0.children_user) + (kids1.children_system - kids0.children_system))
            * 1000
            / n,
            3,
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--version", default="9")
    args = parser.parse_args()
    state = make_state(args.groups, args.version)
    drbd_tool.CHECKER = checker = Checker()
    names = sorted(state["groups"])
    # cold: each group's first status and first refused primary: new argv, one drbdadm -d each
    cold_calls = [["drbdadm", "status", n] for n in names] + [["drbdadm", "primary", n] for n in names]
    cold = measure(cold_calls, state)
    warm = measure([cold_calls[i % len(cold_calls)] for i in range(args.calls)], state)
    form = ["--json"] if args.version == "9" else ["--verbose", "--statistics"]  # 8.4 has no --json
    status_read = measure(
        [["drbdsetup", "status", names[i % len(names)], *form] for i in range(args.calls)], state
    )
    t0 = time.perf_counter()
    for _ in range(args.calls):
        checker.config_file(render(config_of(state, "xenka01"), host="xenka01", version=args.version))
    render_ms = (time.perf_counter() - t0) * 1000 / args.calls
    state.pop("revision")  # an in-memory state (the tests'): rendered on every call
    uncached = measure([cold_calls[i % len(cold_calls)] for i in range(args.calls)], state)
    result = {
        "bench": "drbd_lab",
        "drbd_version": args.version,
        "groups": args.groups,
        "dry_runs_started": checker.dry_runs,
        "cold": cold,
        "warm": warm,
        "drbdsetup_status": {"argv": ["drbdsetup", "status", "<res>", *form], **status_read},
        "warm_without_revision": uncached,
        "render_and_hash_ms": round(render_ms, 3),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
