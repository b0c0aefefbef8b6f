"""``manage.py lab ...``: start the lab, look at it, break it on purpose.

Plain functions returning ``(exit_code, text)`` so the Django command (and tests) stay
thin: ``add_arguments(parser)`` declares the sub-commands on any argparse parser,
``dispatch(options)`` runs one. Exit codes: 0 ok, 1 failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hosts.lab import default_lab_dir, tools, vm_services
from hosts.lab.journal import read_journal
from hosts.lab.keys import fingerprints, rekey_host
from hosts.lab.seed import default_faults, reset, seed_synthetic
from hosts.lab.store import LabStore
from hosts.lab.tools import eva_model
from hosts.reference import LAB_PORT

Result = tuple[int, str]
FAULT_MODES = ("down", "crash", "up", "hang", "slow", "fail-next", "rekey")
VM_FAULT_MODES = ("service-down", "service-up", "rekey")
STATUS_JOURNAL_LINES = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lab-dir", dest="lab_dir", default=None, help="default: $DRPORTAL_LAB_DIR or var/lab"
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    up = sub.add_parser("up", help="serve the lab over SSH in the foreground (Ctrl-C stops)")
    up.add_argument("--port", type=int, default=LAB_PORT)
    up.add_argument(
        "--reset", dest="reset_first", action="store_true", help="reseed the reference estate first"
    )
    up.add_argument("--host", dest="hosts", action="append", help="serve only this host (repeatable)")

    status = sub.add_parser("status", help="hosts, domains, groups, faults and the last journal lines")
    status.add_argument("--json", dest="as_json", action="store_true")

    sub.add_parser("reset", help="back to the reference estate in normal operation (journal kept)")

    fault = sub.add_parser(
        "fault",
        help="HOST[,HOST...] down|up|hang|slow SECONDS|fail-next [MESSAGE]|rekey (several hosts: "
        "one change of the lab's state, e.g. a whole site lost at once); "
        "DOM0 crash (a power cut: down, and every guest domain is gone; 'up' brings the dom0 "
        "back empty, its DRBD resources secondary); "
        "VM service-down PORT|ssh|all, service-up [PORT|ssh|all], rekey",
    )
    fault.add_argument("host")
    fault.add_argument("mode", metavar="MODE")
    fault.add_argument("fault_args", nargs="*", metavar="ARG")

    latency = sub.add_parser("latency", help="delay before commands run (no options: show)")
    latency.add_argument("--default", dest="default_seconds", type=float, default=None, metavar="S")
    latency.add_argument(
        "--command",
        dest="per_command",
        nargs=2,
        action="append",
        metavar=("COMMAND", "S"),
        help='e.g. --command "xl create" 3 (key: first one or two words)',
    )
    latency.add_argument("--clear", action="store_true", help="remove every latency first")

    journal = sub.add_parser("journal", help="commands the lab received")
    journal.add_argument("--since", type=int, default=0, metavar="SEQ", help="only entries after this seq")
    journal.add_argument("--limit", type=int, default=100, help="at most the last N entries (0: all)")
    journal.add_argument("--json", dest="as_json", action="store_true")

    prints = sub.add_parser(
        "fingerprints", help="SHA256 host key fingerprints, as ssh-keygen -lf prints them"
    )
    prints.add_argument("--json", dest="as_json", action="store_true")
    prints.add_argument("--vms", action="store_true", help="the VMs' own SSH host keys instead")

    synthetic = sub.add_parser("synthetic", help="add synthetic dom0s and VMs (benchmarks)")
    synthetic.add_argument("--hosts", dest="synthetic_hosts", type=int, default=50)
    synthetic.add_argument("--vms", dest="synthetic_vms", type=int, default=500)


def dispatch(options: Mapping[str, Any], out: Callable[[str], object] | None = None) -> Result:
    lab_dir = Path(options.get("lab_dir") or default_lab_dir())
    action = options["action"]
    if action == "up":
        return lab_up(
            lab_dir, port=options["port"], reset_first=options["reset_first"], hosts=options["hosts"], out=out
        )
    if action == "status":
        return lab_status(lab_dir, as_json=options["as_json"])
    if action == "reset":
        return lab_reset(lab_dir)
    if action == "fault":
        hosts = [name for name in options["host"].split(",") if name]
        return lab_fault(lab_dir, hosts, options["mode"], options.get("fault_args") or [])
    if action == "latency":
        return lab_latency(
            lab_dir,
            default_seconds=options.get("default_seconds"),
            per_command=options.get("per_command") or [],
            clear=options.get("clear", False),
        )
    if action == "journal":
        return lab_journal(
            lab_dir, since=options["since"], limit=options["limit"], as_json=options["as_json"]
        )
    if action == "fingerprints":
        return lab_fingerprints(lab_dir, as_json=options["as_json"], vms=options.get("vms", False))
    if action == "synthetic":
        return lab_synthetic(lab_dir, hosts=options["synthetic_hosts"], vms=options["synthetic_vms"])
    return 2, f"unknown lab action {action!r}\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m hosts.lab.cli ...`` for when Django is not at hand."""
    import sys

    parser = argparse.ArgumentParser(prog="lab")
    add_arguments(parser)
    code, text = dispatch(vars(parser.parse_args(argv)), out=lambda line: print(line, flush=True))
    (sys.stdout if code == 0 else sys.stderr).write(text)
    return code


# -- actions --------------------------------------------------------------------------------


def lab_up(
    lab_dir: Path,
    *,
    port: int = LAB_PORT,
    reset_first: bool = False,
    hosts: Iterable[str] | None = None,
    out: Callable[[str], object] | None = None,
) -> Result:
    from hosts.lab.server import LabError, LabServer  # paramiko only when serving

    store = LabStore(lab_dir)
    if reset_first:
        reset(store)
    try:
        LabServer(lab_dir, port, hosts).serve_forever(out=out or print)
    except LabError as exc:
        return 1, f"lab: {exc}\n"
    return 0, "lab stopped\n"


def lab_reset(lab_dir: Path) -> Result:
    state = reset(LabStore(lab_dir))
    return (
        0,
        f"lab reset to the reference estate: {len(state['hosts'])} hosts, {len(state['groups'])} groups\n",
    )


def _check_host(state: dict, host: str) -> str | None:
    if host in state["hosts"]:
        return None
    return f"unknown lab host '{host}'; known: {', '.join(sorted(state['hosts']))}\n"


def lab_fault(lab_dir: Path, host: str | Sequence[str], mode: str, args: list[str]) -> Result:
    """``up`` means healthy again: it also clears slow and fail-next (not the host key).

    ``crash`` (dom0s only) is a power cut: the host goes down like ``down`` and all its
    guest domains are gone (Domain-0 stays). ``up`` then brings it back as after a reboot:
    no guests, domids from 1, and its DRBD resources secondary (nothing promotes them).

    Several lab hosts (not VMs) take the same fault in one change of the lab's state: all
    of them or, when one is refused, none. (A site of 100 dom0s lost host by host re-read
    and re-wrote the whole state 100 times: minutes at 5,000 VMs.)"""
    hosts = [host] if isinstance(host, str) else list(host)
    store = LabStore(lab_dir)
    state = store.read()
    if len(hosts) == 1 and vm_services.is_vm(state, hosts[0]):
        return lab_vm_fault(store, hosts[0], mode, args)
    if not hosts:
        return 2, "fault needs a HOST\n"
    for name in hosts:
        if vm_services.is_vm(state, name):
            return 2, f"{name} is a VM: fault VMs one at a time, not in a list of hosts\n"
        if mode in {"service-down", "service-up"} and name in state["hosts"]:
            return 2, f"{name} is a lab host, not a VM; service faults are for VMs\n"
        error = _check_host(state, name)
        if error:
            return 2, error
    if mode not in FAULT_MODES:
        return (
            2,
            f"unknown fault '{mode}'; use one of: down, crash, up, hang, slow SECONDS, fail-next [MESSAGE], "
            "rekey\n",
        )
    if mode in {"down", "crash", "up", "hang", "rekey"} and args:
        return 2, f"fault {mode} takes no arguments (got: {' '.join(args)})\n"
    seconds = 0.0
    if mode == "slow":
        try:
            (seconds,) = (float(word) for word in args)
        except ValueError:
            return 2, f"fault slow needs one SECONDS value >= 0, e.g. 'fault {hosts[0]} slow 2.5'\n"
        if not seconds >= 0 or seconds == float("inf"):
            return 2, f"fault slow needs one SECONDS value >= 0, e.g. 'fault {hosts[0]} slow 2.5'\n"
    for name in hosts:
        if mode == "crash" and state["hosts"][name]["kind"] != "dom0":
            kind = state["hosts"][name]["kind"]
            return 2, f"{name} is an {kind}, not a dom0; crash is for dom0s (use down)\n"
    if mode == "rekey":
        return 0, "".join(f"{name}: new host key {rekey_host(store, name)}\n" for name in hosts)
    lines = []
    with store.transaction() as state:
        for name in hosts:
            faults = state.setdefault("faults", {}).setdefault(name, default_faults())
            if mode == "up":
                if faults.pop("crashed", False):
                    _reboot(state, name)
                faults.pop("lost_domains", None)
                faults.update(mode="up", slow_seconds=0.0, fail_next=None)
            elif mode == "crash":
                _power_cut(state, name, faults)
            elif mode in {"down", "hang"}:
                faults["mode"] = mode
            elif mode == "slow":
                faults["slow_seconds"] = seconds
            else:
                faults["fail_next"] = " ".join(args) or "lab: injected failure"
            lines.append(f"{name}: {_fault_text(faults)}\n")
    return 0, "".join(lines)


def _power_cut(state: dict, host: str, faults: dict) -> None:
    """The dom0 loses power: down, and every guest domain with it (Domain-0 stays)."""
    info = state["hosts"][host]
    lost = [d["name"] for d in info.get("domains", ()) if d.get("domid") != 0]
    info["domains"] = [d for d in info.get("domains", ()) if d.get("domid") == 0]
    faults["mode"] = "down"
    faults["crashed"] = True
    faults["lost_domains"] = sorted({*faults.get("lost_domains", ()), *lost})


def _reboot(state: dict, host: str) -> None:
    """Back from a power cut: no guests, domids from 1, DRBD resources secondary (a node
    that boots does not promote itself; the survivor may have taken over meanwhile)."""
    info = state["hosts"][host]
    info["domains"] = [d for d in info.get("domains", ()) if d.get("domid") == 0]
    info["next_domid"] = 1
    for group in state.get("groups", {}).values():
        side = group["sides"].get(host)
        if group.get("kind") == "drbd" and side is not None and side["role"] == "primary":
            side["role"] = "secondary"
            side["presented_to"] = []


def lab_vm_fault(store: LabStore, vm: str, mode: str, args: list[str]) -> Result:
    """A VM's services: ``service-down PORT|ssh|all`` (one or more), ``service-up`` (all, or
    the ones named), ``rekey`` (a new SSH host key for the VM)."""
    if mode not in VM_FAULT_MODES:
        return (
            2,
            f"unknown fault '{mode}' for VM {vm}; use one of: service-down PORT|ssh|all, service-up, rekey\n",
        )
    if mode == "rekey":
        if args:
            return 2, f"fault rekey takes no arguments (got: {' '.join(args)})\n"
        return 0, f"{vm}: new host key {vm_services.rekey_vm(store, vm)}\n"
    try:
        summary = vm_services.set_services(store, vm, args, down=mode == "service-down")
    except ValueError as exc:
        return 2, f"{exc}\n"
    return 0, summary + "\n"


def lab_latency(
    lab_dir: Path,
    *,
    default_seconds: float | None = None,
    per_command: Iterable[tuple[str, str] | list[str]] = (),
    clear: bool = False,
) -> Result:
    updates: dict[str, float] = {}
    for command, value in per_command:
        try:
            updates[" ".join(command.split())] = _seconds(value)
        except ValueError:
            return 2, f"latency for {command!r}: {value!r} is not a number of seconds >= 0\n"
    if default_seconds is not None and not 0 <= default_seconds < float("inf"):
        return 2, "latency --default needs a number of seconds >= 0\n"
    with LabStore(lab_dir).transaction() as state:
        latency = state.setdefault("latency", {"default_seconds": 0.0, "per_command": {}})
        if clear:
            latency.update(default_seconds=0.0, per_command={})
        if default_seconds is not None:
            latency["default_seconds"] = float(default_seconds)
        latency.setdefault("per_command", {}).update(updates)
        lines = [f"default: {latency['default_seconds']:g} s\n"]
        lines += [f"{cmd!r}: {secs:g} s\n" for cmd, secs in sorted(latency["per_command"].items())]
    return 0, "".join(lines)


def _seconds(value: str | float) -> float:
    seconds = float(value)
    if not 0 <= seconds < float("inf"):
        raise ValueError(value)
    return seconds


def lab_journal(lab_dir: Path, *, since: int = 0, limit: int = 100, as_json: bool = False) -> Result:
    entries = read_journal(lab_dir, since_seq=since)
    if limit > 0:
        entries = entries[-limit:]
    if as_json:
        return 0, json.dumps(entries, indent=1) + "\n"
    return 0, "".join(_journal_line(entry) for entry in entries)


def lab_fingerprints(lab_dir: Path, *, as_json: bool = False, vms: bool = False) -> Result:
    prints = vm_services.vm_fingerprints(lab_dir) if vms else fingerprints(lab_dir)
    if as_json:
        return 0, json.dumps(prints, indent=1) + "\n"
    state = LabStore(lab_dir).read()
    addresses = {name: info["address"] for name, info in state["hosts"].items()}
    if vms:
        addresses = {name: spec["address"] for name, spec in vm_services.specs(state).items()}
    return 0, "".join(f"{host:<12} {addresses[host]:<15} {fp}\n" for host, fp in prints.items())


def lab_synthetic(lab_dir: Path, *, hosts: int = 50, vms: int = 500) -> Result:
    try:
        names = seed_synthetic(LabStore(lab_dir), hosts=hosts, vms=vms)
    except ValueError as exc:
        return 2, f"{exc}\n"
    return 0, f"added {len(names)} synthetic dom0s ({names[0]}..{names[-1]}) with {vms} VMs\n"


# -- status -----------------------------------------------------------------------------------


def server_info(lab_dir: Path) -> dict:
    """The running server as server.json says, if its process is alive."""
    try:
        info = json.loads((lab_dir / "server.json").read_text(encoding="utf-8"))
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return {"running": False}
    return {"running": True, "pid": info["pid"], "port": info["port"]}


def status_data(lab_dir: Path) -> dict:
    state = LabStore(lab_dir).read()
    hosts = {}
    for name, info in state["hosts"].items():
        entry: dict[str, Any] = {
            "address": info["address"],
            "kind": info["kind"],
            "site": info.get("site"),
            "fault": {**default_faults(), **state.get("faults", {}).get(name, {})},
        }
        if info["kind"] == "dom0":
            domains = info.get("domains", [])
            entry["total_memory_mb"] = info["total_memory_mb"]
            # Simple accounting (total minus what domains hold); xl's own free_memory may differ.
            entry["free_memory_mb"] = info["total_memory_mb"] - sum(d["memory_mb"] for d in domains)
            entry["domains"] = [
                {key: d[key] for key in ("name", "domid", "memory_mb", "state")} for d in domains
            ]
        else:
            entry["system"] = info.get("system")
            entry["array_kind"] = info.get("array_kind")
        hosts[name] = entry
    groups = {
        name: {
            "kind": group["kind"],
            "mode": group.get("mode"),
            "replication": group["replication"],
            "lag_seconds": group.get("lag_seconds"),
            "devices": group["devices"],
            "sides": {
                side_host: {
                    "role": side["role"],
                    "presented_to": (
                        eva_model.presented_hosts(state, name, side_host)
                        if group["kind"] == "eva-ca"
                        else side.get("presented_to", [])
                    ),
                    "disk_state": side.get("disk_state"),
                }
                for side_host, side in group["sides"].items()
            },
        }
        for name, group in state.get("groups", {}).items()
    }
    return {
        "lab_dir": str(lab_dir),
        "revision": state.get("revision"),
        "server": server_info(lab_dir),
        "hosts": hosts,
        "groups": groups,
        "snapshots": {
            name: {
                "array": snap["array"],
                "group": snap["group"],
                "parent": snap["parent"],
                "device": eva_model.mapper_device(snap["wwid"]),
                "presented_to": sorted(_lun_hosts(state, name, snap)),
            }
            for name, snap in sorted(state.get("snapshots", {}).items())
        },
        "latency": state.get("latency", {}),
        "services": _services_data(state),
        "tool_load_errors": dict(tools.LOAD_ERRORS),
        "journal": read_journal(lab_dir)[-STATUS_JOURNAL_LINES:],
    }


def _lun_hosts(state: dict, name: str, snap: dict) -> set[str]:
    """The dom0s the snapshot vdisk ``name`` is presented to."""
    luns = state["hosts"][snap["array"]].get("luns", {})
    return {host for host, table in luns.items() if name in table.values()}


def _services_data(state: dict) -> dict:
    alive = vm_services.alive_vms(state)
    return {
        vm: {
            "address": spec["address"],
            "running_on": alive.get(vm),
            "drill_address": spec.get("drill_address"),
            "drill_running_on": alive.get(vm_services.DRILL_PREFIX + vm)
            if spec.get("drill_address")
            else None,
            "ports": {str(entry["port"]): entry["kind"] for entry in spec.get("ports", ())},
            "down": spec.get("down") or [],
            "summary": vm_services.describe(vm, spec),
        }
        for vm, spec in vm_services.specs(state).items()
    }


def lab_status(lab_dir: Path, *, as_json: bool = False) -> Result:
    data = status_data(lab_dir)
    if as_json:
        return 0, json.dumps(data, indent=1) + "\n"
    server = data["server"]
    running = (
        f"server running, pid {server['pid']}, port {server['port']}"
        if server["running"]
        else "server not running"
    )
    lines = [f"lab {data['lab_dir']} (revision {data['revision']}): {running}\n", "hosts:\n"]
    for name, host in data["hosts"].items():
        head = f"  {name:<12} {host['address']:<15} {host['kind']:<5} {host['site'] or '':<4} {_fault_text(host['fault'])}"
        if host["kind"] == "dom0":
            lines.append(f"{head}  free {host['free_memory_mb']}/{host['total_memory_mb']} MB\n")
            lines += [
                f"      {d['name']:<16} {d['domid']:>3} {d['memory_mb']:>6} MB  {d['state']}\n"
                for d in host["domains"]
            ]
        else:
            lines.append(f"{head}  {host['system']} ({host['array_kind']})\n")
    lines.append("groups:\n")
    for name, group in data["groups"].items():
        lag = f"lag {group['lag_seconds']:g} s" if group["lag_seconds"] is not None else "no replica"
        sides = "; ".join(
            f"{side_host}: {side['role']}"
            + (f" -> {', '.join(side['presented_to'])}" if side["presented_to"] else "")
            for side_host, side in group["sides"].items()
        )
        lines.append(f"  {name:<20} {group['replication']:<10} {lag:<11} {sides}\n")
    if data["snapshots"]:
        lines.append("snapshots (drills):\n")
        for name, snap in data["snapshots"].items():
            shown = f" -> {', '.join(snap['presented_to'])}" if snap["presented_to"] else " (not presented)"
            lines.append(f"  {name:<20} of {snap['parent']} ({snap['group']}) on {snap['array']}{shown}\n")
    if data["services"]:
        lines.append("VM services (served while the VM runs):\n")
        for info in data["services"].values():
            where = f"running on {info['running_on']}" if info["running_on"] else "not running"
            if info["drill_running_on"]:
                where += f"; drill clone on {info['drill_running_on']} at {info['drill_address']}"
            lines.append(f"  {info['summary']}  [{where}]\n")
    latency = data["latency"]
    if latency.get("default_seconds") or latency.get("per_command"):
        per = ", ".join(f"{cmd!r} {secs:g} s" for cmd, secs in latency.get("per_command", {}).items())
        lines.append(f"latency: default {latency.get('default_seconds', 0):g} s{'; ' + per if per else ''}\n")
    for module, error in data["tool_load_errors"].items():
        lines.append(f"tool module {module} not loaded: {error}\n")
    lines.append(f"journal (last {STATUS_JOURNAL_LINES}):\n")
    lines += ["  " + _journal_line(entry) for entry in data["journal"]]
    return 0, "".join(lines)


def _fault_text(faults: Mapping[str, Any]) -> str:
    words = [str(faults.get("mode", "up"))]
    if faults.get("crashed"):
        lost = ", ".join(faults.get("lost_domains") or ()) or "no guests"
        words[0] += f" (crashed: power cut, guests lost: {lost}; 'up' reboots it empty)"
    if faults.get("slow_seconds"):
        words.append(f"slow {faults['slow_seconds']:g}s")
    if faults.get("fail_next"):
        words.append(f"fail-next {faults['fail_next']!r}")
    if faults.get("key_generation"):
        words.append(f"key #{faults['key_generation']}")
    return ", ".join(words)


def _journal_line(entry: Mapping[str, Any]) -> str:
    status = "-" if entry.get("exit_status") is None else str(entry["exit_status"])
    notes = f"  # {'; '.join(n.strip() for n in entry['notes'])}" if entry.get("notes") else ""
    return (
        f"{entry['seq']:>6} {entry['time']} {entry['host']:<12} exit {status:>3} "
        f"{entry['seconds']:8.3f}s  {entry['command']}{notes}\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
