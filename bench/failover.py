#!/usr/bin/env python
"""Benchmark the failover engine against the lab; prints JSON.

(a) The reference failover (WSL lost) with zero lab latency: seconds from the
    declaration to the run's end. Target: under 10 s (the thesis plans 125 minutes of
    manual work).
(b) A synthetic estate of 500 VMs on 50 surviving hosts with per-command lab latencies:
    the run's wall time divided by the critical-path lower bound of those latencies.
    Target: at most 1.10.

The lower bound of (b) is the critical path of a fixed command model of the plan
(COMMAND_MODEL: the commands each kind of action needs at least, at their configured
latencies), not of what the run sent: a redundant command makes the ratio worse, not
better. Within a step (and a tier) actions run in parallel, bounded by the per-host and
the per-array limits; steps are barriers. The old bound, from the commands each action
sent (kept in its output), is reported beside it, with the commands sent per action
against the model. Connection set-up, the database and Celery are the overhead measured.

The latencies are those of a real estate, rounded down: an SSSU call logs in to Command
View and takes half a second at best (seconds are common), ``xl create`` returns once the
domain is built (seconds), ``xl list``/``xl info`` ask xenstore about every domain, and
any command crosses to the other data centre over SSH. So the ratio says what the engine
adds to the time the estate itself needs. ``--latency-scale 0.1`` gives the short
latencies of earlier versions of this bench, where the 2 shared cores, not the commands,
decide (the simulated estate alone needs ~5 ms of CPU per command there); see the note in
README "Scaling workers".

Workers are sized as README "Scaling workers" says: hosts x DRPORTAL_MAX_ACTIONS_PER_HOST
threads for (b) (32 for (a)), split over two worker processes (one per core of this
machine), each sharing a pool of DB_POOL_MAX_SIZE (default 10, as compose sets it)
PostgreSQL connections among its threads.

Usage: python bench/failover.py [--rounds 3] [--vms 500] [--hosts 50] [--workers 2]
       [--concurrency N] [--latency-scale 1] [--skip-synthetic|--skip-reference]
Needs PostgreSQL and Redis as on the development machine; DATABASE_URL (a database it
may drop and create, default .../drportal_bench) and REDIS_URL (default db 13) override.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LATENCIES = {
    "default": 0.1,
    "xl list": 0.2,
    "xl info": 0.2,
    "xl create": 5.0,
    "xl mem-set": 2.0,
    "sssu": 0.5,
}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def recreate_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def profiled(name: str, body):
    """Run ``body()`` under yappi (CPU clock) when --profile is given; the profile goes to
    $BENCH_PROFILE_DIR/<name>.pstat when it returns."""
    profile_dir = os.environ.get("BENCH_PROFILE_DIR")
    if not profile_dir:
        return body()
    import yappi

    yappi.set_clock_type("cpu")
    yappi.start(builtins=False)
    try:
        return body()
    finally:
        yappi.stop()
        out = Path(profile_dir) / f"{name}.pstat"
        yappi.get_func_stats().save(str(out), type="pstat")
        log(f"profile: {out}")


def lab_main(argv: list[str]) -> int:
    from hosts.lab.server import main as serve

    return profiled("lab", lambda: serve(argv))


# The lab serves its hosts from this many processes (hosts/lab/sshd.py's Shard): one
# process runs one thread at a time, and 5,000 VMs' commands are more than one core's work.
LAB = {"shards": 2}


def start_lab(lab_dir: Path, log_dir: Path) -> tuple[subprocess.Popen, int]:
    out = log_dir / "lab.log"
    argv = ["--lab", "--lab-dir", str(lab_dir), "--port", "0", "--shards", str(LAB["shards"])]
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *argv],
        cwd=REPO,
        stdout=out.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"lab ready port=(\d+)", out.read_text())
        if match:
            return proc, int(match.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"lab did not start: {out.read_text()[-2000:]}")


def stop_lab(lab: subprocess.Popen) -> None:
    """SIGTERM (the lab stops its other shards too); killed if it takes over 30 s."""
    lab.terminate()
    try:
        lab.wait(30)
    except subprocess.TimeoutExpired:
        log(f"lab {lab.pid} still running 30 s after SIGTERM: killed")
        lab.kill()
        lab.wait(10)


# -- counting the workers' SQL statements --------------------------------------------------
# pg_stat_statements is not loaded on the development machine, and pg_stat_database counts
# transactions and rows, not statements: so a bench worker counts its own. It is a Celery
# worker started through this file (``--counted-worker FILE``), which wraps every
# database connection's execute (Django's execute_wrapper) with a counter and writes
# "ASKED COUNT" to FILE when the bench sends it SIGUSR2 (the product's code is the same as
# deployed). Asked, not polled: a thread writing the count four times a second cost each
# worker ~3.5 ms of CPU a second among its hundreds of threads, ~1 ms per action of a
# 500-VM run at real latencies, counted as the engine's.
COUNT_SIGNAL = signal.SIGUSR2  # celery's worker leaves it alone unless CELERY_RDBSIG is set


def counted_worker(count_file: Path, celery_argv: list[str]) -> int:
    import itertools

    from django.db.backends.signals import connection_created

    counter = itertools.count(1)  # next() on it is atomic under the GIL
    seen = [0]
    asked = itertools.count(1)

    def count(execute, sql, params, many, context):
        seen[0] = next(counter)
        return execute(sql, params, many, context)

    def wrap(sender, connection, **kwargs):
        if count not in connection.execute_wrappers:
            connection.execute_wrappers.append(count)

    connection_created.connect(wrap, weak=False)

    def write(*_args) -> None:
        partial = count_file.with_suffix(".part")
        partial.write_text(f"{next(asked)} {seen[0]}")
        partial.replace(count_file)  # a reader never sees half a number

    signal.signal(COUNT_SIGNAL, write)  # runs in the main thread, woken out of its poll
    write()
    from celery.__main__ import main as celery_main

    sys.argv = ["celery", *celery_argv]
    try:
        profiled(count_file.stem.replace("sql-count", "worker"), celery_main)
    except SystemExit as exc:  # celery's way to end
        return exc.code if isinstance(exc.code, int) else 0
    return 0


def _asked_count(path: Path) -> tuple[int, int]:
    try:
        asked, count = path.read_text().split()
    except (FileNotFoundError, ValueError):
        return 0, 0
    return int(asked), int(count)


def sql_statements(log_dir: Path, workers: list[subprocess.Popen], timeout: float = 10) -> int:
    """The statements every bench worker has sent so far: each is asked (COUNT_SIGNAL) and
    answers in its count file."""
    total = 0
    for number, proc in enumerate(workers, start=1):
        path = log_dir / f"sql-count-{number}.txt"
        before = _asked_count(path)[0]
        os.kill(proc.pid, COUNT_SIGNAL)
        deadline = time.monotonic() + timeout
        while (now := _asked_count(path))[0] <= before:
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {number} did not write its SQL count within {timeout} s")
            time.sleep(0.02)
        total += now[1]
    return total


def start_workers(log_dir: Path, concurrency: int, count: int) -> list[subprocess.Popen]:
    """``count`` worker processes of ``concurrency`` threads each; the first embeds the
    reaper's beat. Several processes spread the work over the CPUs (one Python process
    runs one thread at a time), and the engine assumes nothing about how many there are."""
    workers = []
    for path in log_dir.glob("sql-count-*.txt"):
        path.unlink()
    for number in range(1, count + 1):
        out = log_dir / f"worker-{number}.log"
        beat = ["-B", "--schedule", str(log_dir / "beat")] if number == 1 else []
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--counted-worker",
                    str(log_dir / f"sql-count-{number}.txt"),
                    "-A",
                    "drportal",
                    "worker",
                    *beat,
                    "--pool",
                    "threads",
                    "--concurrency",
                    str(concurrency),
                    "--loglevel",
                    "WARNING",
                    "--without-gossip",
                    "--without-mingle",
                    "--hostname",
                    f"bench{number}@%h",
                ],
                cwd=REPO,
                env=dict(
                    os.environ,
                    # As deployed: no per-query debug bookkeeping, and each worker thread
                    # keeps its database connection instead of opening one per task.
                    DEBUG="0",
                    SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_urlsafe(32),
                    DB_CONN_MAX_AGE=os.environ.get("DB_CONN_MAX_AGE", "300"),
                    # Hundreds of threads share a few connections (PostgreSQL allows 100).
                    DB_POOL_MAX_SIZE=os.environ.get("DB_POOL_MAX_SIZE", "10"),
                ),
                stdout=out.open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    time.sleep(4)  # WARNING level prints no "ready": give them the boot time they need
    for number, proc in enumerate(workers, start=1):
        if proc.poll() is not None:
            stop_workers(workers)
            raise RuntimeError(
                f"worker {number} died: {(log_dir / f'worker-{number}.log').read_text()[-2000:]}"
            )
    return workers


def stop_workers(workers: list[subprocess.Popen]) -> None:
    """A warm shutdown first; a worker still busy with a task after 20 s is killed: the
    run has been measured by then (its log says which worker)."""
    for proc in workers:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
    for proc in workers:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            log(f"worker {proc.pid} still busy 20 s after SIGTERM: killed")
            os.killpg(proc.pid, 9)
            proc.wait(10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process and its threads so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """``cpu_seconds`` of a process and its live children (the lab's other shards)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return cpu_seconds(pid) + sum(tree_cpu_seconds(int(child)) for child in children)


def wait_startup_checks(workers: int, timeout: float = 120) -> None:
    """Each worker checks readiness when it starts (failover.tasks.readiness_at_start): wait
    for those checks before the estate is loaded, as a deployment's workers are up long
    before a failover. A check that starts late probes the whole estate over SSH while the
    run runs, and its CPU (seconds) would be counted as the engine's."""
    from failover.readiness.models import ReadinessCheck

    deadline = time.monotonic() + timeout
    while ReadinessCheck.objects.count() < workers:
        if time.monotonic() > deadline:
            log(f"start-up readiness checks: {ReadinessCheck.objects.count()} of {workers} after {timeout} s")
            return
        time.sleep(0.2)


def wait_run(run_id: int, timeout: float = 900):
    from failover.models import Run

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if run.state in ("succeeded", "failed", "aborted", "waiting"):
            return run
        time.sleep(0.1)  # the run's own timestamps are measured, not this loop
    raise RuntimeError(f"run {run_id} did not finish in {timeout} s")


def declare(lost_site: str):
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from failover.runs.failover import build_plan, disaster_declare

    started = time.perf_counter()
    plan = build_plan(lost_site=lost_site)
    planned = time.perf_counter() - started
    if plan.blocking:
        raise RuntimeError(f"plan blocked: {[p.message for p in plan.blocking]}")
    declaration = disaster_declare(
        user=get_user_model().objects.get(username="mod"),
        lost_site=lost_site,
        disaster_class=2,
        category="power",
        detected_at=timezone.now(),
        plan=plan,
        confirm_isolated=True,
    )
    return declaration.run, planned


# -- (a) the reference failover -----------------------------------------------------------


def bench_reference(lab_dir: Path, port: int, rounds: int) -> dict:
    from django.core.management import call_command

    from hosts.lab import cli
    from hosts.lab.seed import seed_reference
    from hosts.lab.store import LabStore

    call_command("load_reference_estate", "--port", str(port), stdout=io.StringIO())
    call_command("create_demo_users", stdout=io.StringIO())
    results = []
    for number in range(rounds):
        seed_reference(LabStore(lab_dir))
        cli.lab_fault(lab_dir, "xenwsl01", "down", [])
        cli.lab_fault(lab_dir, "eva-wsl", "down", [])
        run, planned = declare("WSL")
        run = wait_run(run.pk)
        if run.state != "succeeded":
            stuck = [(a.target, a.state, a.error) for a in run.actions.exclude(state="succeeded")[:5]]
            raise RuntimeError(f"reference run {run.pk} ended {run.state}: {stuck}")
        seconds = (run.finished_at - run.created_at).total_seconds()
        results.append(
            {"round": number + 1, "declaration_to_done_s": round(seconds, 3), "plan_s": round(planned, 3)}
        )
        log(f"reference round {number + 1}: {seconds:.2f} s (plan preview {planned:.2f} s)")
    best = min(r["declaration_to_done_s"] for r in results)
    return {
        "rounds": results,
        "best_s": best,
        "median_s": statistics.median(r["declaration_to_done_s"] for r in results),
        "target_s": 10.0,
        "meets_target": best < 10.0,
    }


# -- (b) the synthetic estate -------------------------------------------------------------


def seed_synthetic_two_sites(lab_dir: Path, *, hosts: int, vms: int, vm_mb: int = 256) -> dict:
    """Lab state: site SRC (lost) runs the VMs; site DST has ``hosts`` dom0s holding their
    config files; each VM's LUN is a DR group SRC -> DST."""
    from hosts import reference
    from hosts.lab.keys import ensure_keys
    from hosts.lab.seed import (
        _cfg_text,
        _dom0_domain,
        _domu,
        add_eva_group,
        default_faults,
        eva_array_host,
        synthetic_address,
    )
    from hosts.lab.store import LabStore

    src = [f"src{i + 1:03d}" for i in range(hosts)]
    dst = [f"dst{i + 1:03d}" for i in range(hosts)]
    per_host = -(-vms // hosts)
    total = 256 + per_host * vm_mb + 1024
    state = {
        "version": 1,
        "hosts": {},
        "groups": {},
        "faults": {},
        "latency": {"default_seconds": 0.0, "per_command": {}},
    }
    layout = {"src": src, "dst": dst, "vms": []}
    for index, name in enumerate(src + dst):
        state["hosts"][name] = {
            "kind": "dom0",
            "site": "SRC" if name in src else "DST",
            "address": synthetic_address(index),
            "toolstack": "xl",
            "total_memory_mb": total,
            "nr_cpus": 8,
            "xen_version": "4.17.3",
            "bridges": list(reference.BRIDGES),
            "files": {},
            "domains": [_dom0_domain(256, total, 8, 100.0)],
            "next_domid": 1,
        }
        state["faults"][name] = default_faults()
    for offset, (array, site) in enumerate((("src-eva", "SRC"), ("dst-eva", "DST"))):
        state["hosts"][array] = eva_array_host(
            site=site, address=synthetic_address(2 * hosts + offset), system=array.upper()
        )
        state["faults"][array] = default_faults()
    for number in range(vms):
        name = f"vm{number + 1:04d}"
        home, target = src[number % hosts], dst[number % hosts]
        vm = {
            "name": name,
            "memory_mb": vm_mb,
            "max_memory_mb": vm_mb,
            "vcpus": 1,
            "nics": [
                {"mac": f"00:16:3e:{number >> 8 & 0xFF:02x}:{number & 0xFF:02x}:{slot + 1:02x}", "bridge": br}
                for slot, br in enumerate(reference.BRIDGES)
            ],
            "disks": [{"target": f"/dev/vg_{name}/lvol1", "vdev": "xvda1", "mode": "w"}],
        }
        for host in (home, target):
            state["hosts"][host]["files"][reference.vm_config_path(name)] = _cfg_text(vm)
        host_state = state["hosts"][home]
        host_state["domains"].append(_domu(name, host_state["next_domid"], vm_mb, 1, vm["nics"], vm["disks"]))
        host_state["next_domid"] += 1
        add_eva_group(
            state,
            f"DRG-{name}",
            devices=[vm["disks"][0]["target"]],
            sides={"src-eva": "primary", "dst-eva": "secondary"},
            presented_to=[home],
        )
        layout["vms"].append({"name": name, "home": home, "target": target, "vm": vm, "tier": 1 + number % 3})
    store = LabStore(lab_dir)
    store.replace(state)
    ensure_keys(lab_dir)
    return layout


def load_synthetic_inventory(layout: dict, lab_dir: Path, port: int, vm_mb: int = 256) -> None:
    from django.db import transaction

    from hosts.lab.keys import client_key_path, fingerprints
    from hosts.lab.store import LabStore
    from hosts.models import (
        VM,
        DRGroup,
        Host,
        HostAllocation,
        MemoryProfile,
        Site,
        StorageArray,
        VMAllocation,
        VMDisk,
        VMInterface,
    )
    from hosts.reference import sssu_login_file

    state = LabStore(lab_dir).read()
    fps = fingerprints(lab_dir)
    key = str(client_key_path(lab_dir))
    with transaction.atomic():
        MemoryProfile.objects.all().delete()
        src_site = Site.objects.create(code="SRC", name="Source", role="primary")
        dst_site = Site.objects.create(code="DST", name="Destination", role="alternate")
        arrays = {
            name: StorageArray.objects.create(
                site=site,
                name=name,
                kind="eva-ca",
                system_name=name.upper(),
                management_address=state["hosts"][name]["address"],
                management_port=port,
                host_key_fingerprint=fps[name],
                sssu_login_file=sssu_login_file(name.upper()),
            )
            for name, site in (("src-eva", src_site), ("dst-eva", dst_site))
        }
        hosts = {}
        for name in layout["src"] + layout["dst"]:
            hosts[name] = Host.objects.create(
                site=src_site if name in layout["src"] else dst_site,
                name=name,
                address=state["hosts"][name]["address"],
                ssh_port=port,
                ssh_key_path=key,
                host_key_fingerprint=fps[name],
                ram_mb=state["hosts"][name]["total_memory_mb"],
                cpus=8,
                bridges=["xenbr0", "xenbr1"],
            )
        groups = DRGroup.objects.bulk_create(
            [
                DRGroup(
                    name=f"DRG-{v['name']}",
                    source_array=arrays["src-eva"],
                    target_array=arrays["dst-eva"],
                    mode="async",
                    replication_state="consistent",
                )
                for v in layout["vms"]
            ]
        )
        vms = VM.objects.bulk_create(
            [
                VM(
                    name=v["name"],
                    home_host=hosts[v["home"]],
                    dr_group=g,
                    vcpus=1,
                    storage_gb=10,
                    config_path=f"/etc/xen/vm/{v['name']}",
                    tier=v["tier"],
                )
                for v, g in zip(layout["vms"], groups, strict=True)
            ]
        )
        VMInterface.objects.bulk_create(
            [
                VMInterface(
                    vm=vm,
                    index=i,
                    mac=nic["mac"],
                    bridge=nic["bridge"],
                    lan_role="user" if i == 0 else "backup",
                )
                for vm, v in zip(vms, layout["vms"], strict=True)
                for i, nic in enumerate(v["vm"]["nics"])
            ]
        )
        VMDisk.objects.bulk_create(
            [
                VMDisk(vm=vm, target=v["vm"]["disks"][0]["target"], vdev="xvda1")
                for vm, v in zip(vms, layout["vms"], strict=True)
            ]
        )
        normal = MemoryProfile.objects.create(name="normal operation")
        lost = MemoryProfile.objects.create(name="SRC lost", lost_site=src_site)
        VMAllocation.objects.bulk_create(
            [
                VMAllocation(profile=normal, vm=vm, host=hosts[v["home"]], memory_mb=vm_mb)
                for vm, v in zip(vms, layout["vms"], strict=True)
            ]
            + [
                VMAllocation(profile=lost, vm=vm, host=hosts[v["target"]], memory_mb=vm_mb)
                for vm, v in zip(vms, layout["vms"], strict=True)
            ]
        )
        HostAllocation.objects.bulk_create(
            [HostAllocation(profile=normal, host=h, dom0_memory_mb=256) for h in hosts.values()]
            + [HostAllocation(profile=lost, host=hosts[n], dom0_memory_mb=256) for n in layout["dst"]]
        )


COMMAND_LINE = re.compile(r"^\[(?P<host>[^\]]+)\] \$ (?P<command>.*?)  -> exit")


def latency_of(command: str) -> float:
    import shlex

    argv = shlex.split(command)
    name = os.path.basename(argv[0])
    if len(argv) > 1 and f"{name} {argv[1]}" in LATENCIES:
        return LATENCIES[f"{name} {argv[1]}"]
    return LATENCIES.get(name, LATENCIES["default"])


# The fixed command model: the commands each kind of action needs at least, whatever the
# engine or the drivers send. A status read before every change (exactly once needs it),
# the change, and a reading that confirms it; one SSSU session per status read and one per
# failover (presenting the group is one more command of that session).
COMMAND_MODEL: dict[str, tuple[str, ...]] = {
    "check_host": ("xl info",),
    "check_group": ("sssu",),  # the replica's status
    "inventory_host": ("xl list",),
    "failover_group": ("sssu", "sssu"),  # status, then failover (and present)
    "integrity_check": ("sssu", "default"),  # the array's check, the dom0 sees the devices
    "start_vm": ("xl list", "xl create", "xl list"),  # not running yet, create, runs
    "check_no_swap": ("xl info", "xl list"),
    "functional_check": ("default",),
}
# set_memory reads the domain (done if it has its memory already); a change adds the
# mem-set and the reading that confirms it.
SET_MEMORY_READ, SET_MEMORY_CHANGE = ("xl list",), ("xl mem-set", "xl list")


def model_commands(action, changes: set[tuple[str, str]]) -> tuple[str, ...]:
    """The commands the model gives ``action``; ``changes``: the (domain, host) pairs whose
    memory the plan changes."""
    if action.kind == "set_memory":
        change = (action.params.get("vm"), action.host) in changes
        return SET_MEMORY_READ + (SET_MEMORY_CHANGE if change else ())
    return COMMAND_MODEL.get(action.kind, ("default",))


def sent_commands(action) -> list[str]:
    """The command lines the action sent, from its output."""
    return [m["command"] for line in action.output.splitlines() if (m := COMMAND_LINE.match(line))]


def plan_changes(run) -> set[tuple[str, str]]:
    return {(c["vm"], c["host"]) for c in (run.plan or {}).get("memory_changes", [])}


def critical_path(run, cost, *, host_limit: int, array_limit: int) -> dict:
    """Steps (and tiers within a step) are barriers; within one, actions run in parallel, at
    most ``host_limit`` per host and ``array_limit`` per storage array (an action holds its
    array's slot while it runs, as the engine does): no schedule beats max(longest action,
    busiest host / host_limit, busiest array / array_limit). ``cost(action)``: its seconds."""
    phases: dict[tuple[int, int], list[tuple[str, str, float]]] = defaultdict(list)
    spans: dict[tuple[int, int], list] = defaultdict(list)
    for action in run.actions.select_related("step"):
        phases[(action.step.number, action.tier)].append((action.host, action.array, cost(action)))
        spans[(action.step.number, action.tier)] += [action.started_at, action.finished_at]
    total, parts = 0.0, []
    for key in sorted(phases):
        per_host: defaultdict[str, float] = defaultdict(float)
        per_array: defaultdict[str, float] = defaultdict(float)
        for host, array, seconds in phases[key]:
            per_host[host] += seconds
            if array:
                per_array[array] += seconds
        bound = max(
            max(seconds for _h, _a, seconds in phases[key]),
            max(per_host.values()) / host_limit,
            max(per_array.values(), default=0.0) / array_limit,
        )
        total += bound
        ended = None not in spans[key]  # asked before the run too (how long to wait for it)
        actual = (max(spans[key]) - min(spans[key])).total_seconds() if ended else None
        parts.append(
            {
                "step": key[0],
                "tier": key[1],
                "actions": len(phases[key]),
                "bound_s": round(bound, 3),
                "actual_s": round(actual, 3) if actual is not None else None,
            }
        )
    return {"lower_bound_s": total, "phases": parts}


def commands_per_action(run) -> dict:
    """Per action kind: how many actions, the mean number of commands each sent (all, and
    SSSU calls among them) from the command lines kept in its output, and what the model
    gives it."""
    changes = plan_changes(run)
    per_kind: dict[str, list[tuple[int, int, int, int]]] = defaultdict(list)
    for action in run.actions.all():
        sent, model = sent_commands(action), model_commands(action, changes)
        per_kind[action.kind].append(
            (
                len(sent),
                sum(c.startswith("sssu ") for c in sent),
                len(model),
                sum(c == "sssu" for c in model),
            )
        )
    return {
        kind: {
            "actions": len(counts),
            "commands": round(statistics.mean(c[0] for c in counts), 2),
            "model_commands": round(statistics.mean(c[2] for c in counts), 2),
            "sssu": round(statistics.mean(c[1] for c in counts), 2),
            "model_sssu": round(statistics.mean(c[3] for c in counts), 2),
        }
        for kind, counts in sorted(per_kind.items())
    }


def lose_source_site(layout: dict, lab_dir: Path, port: int) -> None:
    """The synthetic estate in the inventory, its site SRC lost, the lab's latencies set."""
    from hosts.lab import cli

    load_synthetic_inventory(layout, lab_dir, port)
    code, text = cli.lab_fault(lab_dir, [*layout["src"], "src-eva"], "down", [])
    if code:
        raise RuntimeError(f"lab fault: {text}")
    cli.lab_latency(
        lab_dir,
        default_seconds=LATENCIES["default"],
        per_command=[(k, str(v)) for k, v in LATENCIES.items() if k != "default"],
    )


def bench_synthetic(
    lab_dir: Path, log_dir: Path, workers: list[subprocess.Popen], *, hosts: int, vms: int
) -> dict:
    from django.conf import settings

    layout = seed_synthetic_two_sites(lab_dir, hosts=hosts, vms=vms)
    lab, port = start_lab(lab_dir, log_dir)
    try:
        lose_source_site(layout, lab_dir, port)
        run, planned = declare("SRC")
        log(f"synthetic: plan preview {planned:.1f} s, run {run.pk} started")

        # Where the machine's time went while the run ran (the other tenants of a shared
        # machine show up in the wall time, not here).
        def cpu_now() -> dict:
            return {"workers": sum(cpu_seconds(p.pid) for p in workers), "lab": tree_cpu_seconds(lab.pid)}

        cpu_before, sql_before = cpu_now(), sql_statements(log_dir, workers)
        limits = {
            "host_limit": settings.DRPORTAL_MAX_ACTIONS_PER_HOST,
            "array_limit": settings.DRPORTAL_MAX_ACTIONS_PER_ARRAY,
        }
        changes = plan_changes(run)

        def model_bound() -> dict:
            return critical_path(
                run, lambda a: sum(latency_of(c) for c in model_commands(a, changes)), **limits
            )

        # 5,000 VMs at real latencies need ~45 minutes of the estate's own time: wait for a
        # run three times its bound (15 minutes at least), not a fixed 15 minutes.
        patience = max(900.0, 3 * model_bound()["lower_bound_s"])
        log(f"synthetic: waiting up to {patience:.0f} s for run {run.pk}")
        run = wait_run(run.pk, timeout=patience)
        cpu = {name: round(seconds - cpu_before[name], 2) for name, seconds in cpu_now().items()}
        statements = sql_statements(log_dir, workers) - sql_before
        if run.state != "succeeded":
            stuck = [(a.target, a.state, a.error) for a in run.actions.exclude(state="succeeded")[:5]]
            raise RuntimeError(f"synthetic run {run.pk} ended {run.state}: {stuck}")
        wall = (run.finished_at - run.created_at).total_seconds()
        bound = model_bound()
        sent_bound = critical_path(run, lambda a: sum(latency_of(c) for c in sent_commands(a)), **limits)
        ratio = wall / bound["lower_bound_s"]
        actions = run.actions.count()
        sent = sum(len(sent_commands(a)) for a in run.actions.only("output"))
        log(
            f"synthetic: {wall:.1f} s wall, model bound {bound['lower_bound_s']:.1f} s, ratio {ratio:.3f}"
            f" (sent-commands bound {sent_bound['lower_bound_s']:.1f} s)"
        )
        return {
            "vms": vms,
            "hosts": hosts,
            "actions": actions,
            "latencies_s": LATENCIES,
            "lab_shards": LAB["shards"],
            "max_actions_per_host": settings.DRPORTAL_MAX_ACTIONS_PER_HOST,
            "max_actions_per_array": settings.DRPORTAL_MAX_ACTIONS_PER_ARRAY,
            "plan_preview_s": round(planned, 2),
            "wall_s": round(wall, 2),
            "cpu_s": cpu,
            # Per action: the workers' CPU (claim, commands, record, the passes), the lab's
            # CPU (the simulated estate answering its commands) and the SQL statements the
            # workers sent (counted in the workers, see counted_worker); the lab per command.
            "commands_sent": sent,
            "worker_cpu_ms_per_action": round(1000 * cpu["workers"] / actions, 2),
            "lab_cpu_ms_per_action": round(1000 * cpu["lab"] / actions, 2),
            "lab_cpu_ms_per_command": round(1000 * cpu["lab"] / max(sent, 1), 2),
            "sql_statements": statements,
            "sql_statements_per_action": round(statements / actions, 2),
            "target_worker_cpu_ms_per_action": 3.0,
            # The bound of the fixed command model (COMMAND_MODEL), and the old one from
            # what the run sent (a redundant command raises it, so flatters the ratio).
            "lower_bound_s": round(bound["lower_bound_s"], 2),
            "ratio": round(ratio, 3),
            "sent_commands_bound_s": round(sent_bound["lower_bound_s"], 2),
            "ratio_to_sent_commands": round(wall / sent_bound["lower_bound_s"], 3),
            "target_ratio": 1.10,
            "meets_target": ratio <= 1.10,
            "commands_per_action": commands_per_action(run),
            "phases": [
                {**model, "sent_bound_s": sent["bound_s"]}
                for model, sent in zip(bound["phases"], sent_bound["phases"], strict=True)
            ],
        }
    finally:
        stop_lab(lab)


def bench_preview(lab_dir: Path, log_dir: Path, *, hosts: int, vms: int, rounds: int) -> dict:
    """(c) The plan preview of the synthetic estate (the declare page's wait): build_plan
    over SSH against the lab, at the lab's latencies; then the run's creation from it (the
    declaration's database part: run_create), timed apart. Target: the preview <= 3 s at
    5,000 VMs. Each round also gives the lab's CPU meanwhile: this process and the
    simulated estate share the machine's cores."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.template.loader import render_to_string

    from failover.board.forms import DeclareForm
    from failover.models import Run
    from failover.runs import failover as failover_plan
    from failover.runs.create import run_create
    from failover.runs.preview import Preview, plan_digest
    from hosts.models import DRGroup, Site

    def timed(body, *args, **kwargs):
        started, cpu = time.perf_counter(), time.process_time()
        value = body(*args, **kwargs)
        return value, (time.perf_counter() - started, time.process_time() - cpu)

    # The preview's phases: the survey (the inventory and the live look over SSH) is timed
    # inside build_plan by wrapping it; the rest of build_plan is the plan's building.
    surveys: list[tuple[float, float]] = []
    survey = failover_plan.survey

    def timed_survey(**kwargs):
        value, took = timed(survey, **kwargs)
        surveys.append(took)
        return value

    layout = seed_synthetic_two_sites(lab_dir, hosts=hosts, vms=vms)
    lab, port = start_lab(lab_dir, log_dir)
    failover_plan.survey = timed_survey
    try:
        lose_source_site(layout, lab_dir, port)
        previews, phases = [], []
        for number in range(rounds):
            lab_cpu = tree_cpu_seconds(lab.pid)
            plan, took = timed(failover_plan.build_plan, lost_site="SRC")
            lab_cpu = tree_cpu_seconds(lab.pid) - lab_cpu
            digest, digested = timed(plan_digest, plan)
            form = DeclareForm(
                initial={"lost_site": "SRC"}, sites=Site.objects.all(), four_eyes=settings.DRPORTAL_FOUR_EYES
            )
            context = {
                "form": form,
                "preview": Preview("SRC", plan=plan, digest=digest),
                "four_eyes": form.four_eyes,
            }
            html, rendered = timed(render_to_string, "failover/_plan.html", context)
            previews.append(took)
            phases.append(
                {
                    "survey": surveys[-1],
                    "plan_build": (took[0] - surveys[-1][0], took[1] - surveys[-1][1]),
                    "digest": digested,
                    "render": rendered,
                    "html_bytes": len(html),
                    # The simulated estate's CPU during build_plan: it shares the 2 cores.
                    "lab_cpu_s": lab_cpu,
                }
            )
            log(
                f"preview round {number + 1}: {took[0]:.2f} s ({took[1]:.2f} s CPU here, {lab_cpu:.2f} s in the lab),"
                f" survey {surveys[-1][0]:.2f} s, render {rendered[0]:.2f} s"
            )
        if plan.blocking:
            raise RuntimeError(f"plan blocked: {[p.message for p in plan.blocking][:5]}")
        groups = list(DRGroup.objects.filter(name__in=plan.groups))
        started, cpu = time.perf_counter(), time.process_time()
        with transaction.atomic():
            run = run_create(
                plan=plan,
                disaster=None,
                user=get_user_model().objects.get(username="mod"),
                kind="failover",
                override_reason="",
                groups=groups,
            )
            created = (time.perf_counter() - started, time.process_time() - cpu)
            actions = run.actions.count()
            transaction.set_rollback(True)  # measured, not run: nothing is sent
        assert not Run.objects.filter(pk=run.pk).exists()
        best = min(p[0] for p in previews)
        return {
            "vms": vms,
            "hosts": hosts,
            "actions": actions,
            "latencies_s": LATENCIES,
            "preview_s": [round(p[0], 2) for p in previews],
            "preview_cpu_s": [round(p[1], 2) for p in previews],
            "best_preview_s": round(best, 2),
            "target_preview_s": 3.0,
            "meets_target": best <= 3.0,
            "run_create_s": round(created[0], 2),
            "run_create_cpu_s": round(created[1], 2),
            # Wall and CPU seconds (this process) of each phase, per round.
            "phases": [
                {
                    name: value
                    if name == "html_bytes"
                    else round(value, 2)
                    if name == "lab_cpu_s"
                    else {"s": round(value[0], 3), "cpu_s": round(value[1], 3)}
                    for name, value in round_phases.items()
                }
                for round_phases in phases
            ],
        }
    finally:
        failover_plan.survey = survey
        stop_lab(lab)


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--counted-worker":
        return counted_worker(Path(sys.argv[2]), sys.argv[3:])
    if len(sys.argv) > 1 and sys.argv[1] == "--lab":  # the lab's server, profiled with --profile
        return lab_main(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--vms", type=int, default=500)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="threads per worker process (default: 32 for (a); for (b) hosts x DRPORTAL_MAX_ACTIONS_PER_HOST"
        " over all worker processes)",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (one per core here)")
    parser.add_argument(
        "--lab-shards",
        type=int,
        default=LAB["shards"],
        help="lab server processes (the instrument; one per core)",
    )
    parser.add_argument("--latency-scale", type=float, default=1.0, help="multiply every latency of (b)")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="profile the workers with yappi (pip install yappi; not a project dependency) into DIR/*.pstat",
    )
    parser.add_argument(
        "--preview-only",
        action="store_true",
        help="only (c): time the plan preview of the synthetic estate and its run's creation (no workers)",
    )
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()
    if args.latency_scale <= 0:
        parser.error("--latency-scale: must be above 0")
    if args.lab_shards < 1:
        parser.error("--lab-shards: must be 1 or more")
    LAB["shards"] = args.lab_shards
    for command in LATENCIES:
        LATENCIES[command] = round(LATENCIES[command] * args.latency_scale, 6)

    if args.profile:
        os.environ["BENCH_PROFILE_DIR"] = str(Path(args.profile).resolve())
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="drportal-bench-"))
    lab_dir = work / "lab"
    os.environ.update(
        DATABASE_URL=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/drportal_bench"),
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13"),
        DRPORTAL_VAR_DIR=str(work),
        DRPORTAL_LAB_DIR=str(lab_dir),
        DRPORTAL_SSH_KEY=str(lab_dir / "keys" / "id_drportal"),
        DJANGO_SETTINGS_MODULE="drportal.settings",
        LOG_LEVEL="WARNING",
    )
    recreate_database(os.environ["DATABASE_URL"])
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, check=True)
    import django

    django.setup()
    import redis

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()

    from hosts.lab.keys import ensure_keys
    from hosts.lab.seed import seed_reference
    from hosts.lab.store import LabStore

    seed_reference(LabStore(lab_dir))
    ensure_keys(lab_dir)
    from django.conf import settings

    synthetic_threads = args.concurrency or -(
        -args.hosts * settings.DRPORTAL_MAX_ACTIONS_PER_HOST // args.workers
    )
    if args.preview_only:
        from django.core.management import call_command

        call_command("create_demo_users", stdout=io.StringIO())
        synthetic_lab = work / "synthetic-lab"
        os.environ["DRPORTAL_SSH_KEY"] = str(synthetic_lab / "keys" / "id_drportal")
        settings.DRPORTAL_SSH_KEY = Path(os.environ["DRPORTAL_SSH_KEY"])
        preview = profiled(
            "preview",
            lambda: bench_preview(synthetic_lab, work, hosts=args.hosts, vms=args.vms, rounds=args.rounds),
        )
        print(
            json.dumps(
                {"loadavg": Path("/proc/loadavg").read_text().split()[:3], "preview": preview}, indent=2
            )
        )
        return 0
    workers = start_workers(work, args.concurrency or 32, args.workers)
    result: dict = {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "worker_processes": args.workers,
        "worker_threads": {"reference": args.concurrency or 32, "synthetic": synthetic_threads},
        "db_pool_per_process": int(os.environ.get("DB_POOL_MAX_SIZE", "10")),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }
    try:
        if not args.skip_reference:
            lab, port = start_lab(lab_dir, work)
            try:
                result["reference"] = bench_reference(lab_dir, port, args.rounds)
            finally:
                stop_lab(lab)
        if not args.skip_synthetic:
            # A fresh database and workers: the synthetic estate is the only estate.
            stop_workers(workers)
            from django.db import connections

            connections.close_all()
            recreate_database(os.environ["DATABASE_URL"])
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, check=True)
            from django.core.management import call_command

            call_command("create_demo_users", stdout=io.StringIO())
            synthetic_lab = work / "synthetic-lab"
            os.environ["DRPORTAL_SSH_KEY"] = str(synthetic_lab / "keys" / "id_drportal")
            workers = start_workers(work, synthetic_threads, args.workers)
            wait_startup_checks(args.workers)
            settings.DRPORTAL_SSH_KEY = Path(os.environ["DRPORTAL_SSH_KEY"])
            result["synthetic"] = bench_synthetic(
                synthetic_lab, work, workers, hosts=args.hosts, vms=args.vms
            )
    finally:
        stop_workers(workers)
    result["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
