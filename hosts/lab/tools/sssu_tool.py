"""The lab's simulated ``sssu`` (served on array hosts). Contract and state schema:
``hosts/lab/tools/base.py``; the rules it shares with ``drbdadm``: replication.py.

State keys used beyond the documented schema (all optional):
  group["replication"] may also be "suspended" (SSSU SUSPEND);
  group["resync_seconds"] > 0 makes resyncs take that long (``replication: syncing``
  until ``group["resync_done_at"]``), 0 or absent completes them at once;
  side["diverged"] marks a copy demoted while unreachable as primary;
Drill snapshots (sssu ADD/LS/SET/DELETE SNAPSHOT) live in state["snapshots"]; see
``hosts/lab/tools/base.py``. Taking, presenting or deleting one never changes its group.
The sssu syntax is the design in ``hosts/drivers/eva.py``; it is parsed here on purpose
independently, like a real tool would, so the driver's tests exercise its syntax.
"""

from __future__ import annotations

import re

from hosts.lab.tools.base import ToolContext, ToolResult
from hosts.lab.tools.core import command_not_found
from hosts.lab.tools.replication import domains_using, fence_unreachable, partners, resync, settle

# --- sssu ----------------------------------------------------------------------------------

_BANNER = "SSSU for HP StorageWorks Command View EVA\nVersion: 9.4.0 (lab)\nBuild: drportal-lab\n"
_WORDS = re.compile(r'(?:[^\s"]+|"[^"]*")+')
_GROUP_PREFIX = "\\data replication\\"


class _SssuError(Exception):
    pass


def _words(command: str) -> list[str]:
    return [word.replace('"', "") for word in _WORDS.findall(command)]


def _array_host(ctx: ToolContext, system: str) -> str:
    for name, host in ctx.state["hosts"].items():
        if host.get("kind") == "array" and system.lower() in (
            name.lower(),
            str(host.get("system", "")).lower(),
        ):
            if ctx.host_is_down(name):
                raise _SssuError(f"System {system} is not responding")
            return name
    raise _SssuError(f"System {system} not found")


def _system_name(ctx: ToolContext, host: str) -> str:
    return str(ctx.state["hosts"].get(host, {}).get("system", host))


def _eva_group(ctx: ToolContext, array: str, path: str) -> tuple[str, dict]:
    name = path[len(_GROUP_PREFIX) :] if path.lower().startswith(_GROUP_PREFIX) else path
    group = ctx.state.get("groups", {}).get(name)
    if group is None or group.get("kind") != "eva-ca" or array not in group["sides"]:
        raise _SssuError(f"DR group \\Data Replication\\{name} does not exist on this system")
    settle(group, ctx.now)
    return name, group


def _eva_detail(ctx: ToolContext, array: str, name: str, group: dict) -> str:
    rows = _eva_view(ctx, array, name, group)
    return f"\\Data Replication\\{name} information:\n" + "".join(
        f"  {key} {'.' * (30 - len(key))}: {value}\n" for key, value in rows
    )


def _eva_view(ctx: ToolContext, array: str, name: str, group: dict) -> list[tuple[str, str]]:
    side = group["sides"][array]
    others = partners(group, array)
    source = side["role"] == "primary"
    replication = group.get("replication", "none")
    peer_down = any(ctx.host_is_down(o) for o in others)
    operational, log = "good", "normal"
    if not others or replication == "none":
        others = []
    elif replication == "syncing":
        operational, log = ("attention" if peer_down else "good"), "copying"
    elif replication == "suspended":
        log = "logging"
    elif replication == "broken":
        operational = "attention" if side.get("disk_state", "UpToDate") == "UpToDate" else "failed"
        log = "logging"
    elif peer_down:  # consistent, partner gone: the source logs, the destination keeps its copy
        operational, log = "attention", ("logging" if source else "normal")
    lag = group.get("lag_seconds")
    if peer_down or replication == "broken" or lag is None:
        lag_text = "unknown"
    else:
        lag_text = "0" if group.get("mode") == "sync" else f"{float(lag):g}"
    return [
        ("name", f"\\Data Replication\\{name}"),
        ("operationalstate", operational),
        ("sourcedestination", "source" if source else "destination"),
        ("logstate", log),
        ("suspended", "yes" if replication == "suspended" else "no"),
        ("writemode", "synchronous" if group.get("mode") == "sync" else "asynchronous"),
        ("remotesystemname", ", ".join(_system_name(ctx, o) for o in others) or "none"),
        ("replicationlag", lag_text),
        ("presentedto", ", ".join(side.get("presented_to", ())) or "none"),
    ]


def _eva_failover(ctx: ToolContext, array: str, name: str, group: dict, force: bool) -> str:
    side = group["sides"][array]
    if side["role"] == "primary":
        raise _SssuError("Failover is permitted only on a destination DR group")
    for other in partners(group, array):
        if group["sides"][other]["role"] == "primary" and not ctx.host_is_down(other):
            users = domains_using(ctx, group)
            if users:
                host, domain, device = users[0]
                raise _SssuError(
                    f"DR group {name} is in use at its source {_system_name(ctx, other)}: domain {domain} "
                    f"on host {host} uses {device}; shut it down before a planned failover"
                )
    replication = group.get("replication", "none")
    if not force and (replication in ("broken", "none", "syncing") or side.get("disk_state") != "UpToDate"):
        raise _SssuError(
            f"DR group {name} is not consistent (replication {replication}, this copy "
            f"{side.get('disk_state', 'UpToDate')}); use FAILOVER FORCE to fail over anyway"
        )
    fence_unreachable(ctx, array, name, group)
    # Only a consistent mirror hands over cleanly; otherwise (forced, or suspended: the
    # source kept writing unreplicated) the old source's copy has diverged.
    trusted = replication == "consistent" and side.get("disk_state") == "UpToDate"
    for other in partners(group, array):
        peer = group["sides"][other]
        if not trusted and not ctx.host_is_down(other):
            peer["diverged"] = peer["role"] == "primary" or peer.get("diverged", False)
            peer["disk_state"] = "Outdated"
            group["replication"] = "broken"
            group["lag_seconds"] = None
        peer["role"] = "secondary"
    side["role"] = "primary"
    side["disk_state"] = "UpToDate"
    return f"DR group {name} failed over: {_system_name(ctx, array)} is now the source"


def _eva_set(ctx: ToolContext, array: str, name: str, group: dict, action: list[str]) -> str:
    verb = action[0].upper() if action else ""
    side = group["sides"][array]
    others = partners(group, array)
    replication = group.get("replication", "none")
    if verb == "FAILOVER" and [w.upper() for w in action[1:]] in ([], ["FORCE"]):
        return _eva_failover(ctx, array, name, group, force=len(action) == 2)
    if verb in ("PRESENT", "UNPRESENT"):
        host_word = next((w for w in action[1:] if w.upper().startswith("HOST=")), "")
        host = host_word[5:].rsplit("\\", 1)[-1]
        if ctx.state["hosts"].get(host, {}).get("kind") != "dom0":
            raise _SssuError(f"Host \\Hosts\\{host} does not exist")
        presented = side.setdefault("presented_to", [])
        if verb == "PRESENT":
            if side["role"] != "primary":
                raise _SssuError(
                    f"cannot present DR group {name} to {host}: this copy is a destination (read-only); "
                    "fail over first"
                )
            if host not in presented:
                presented.append(host)
        elif host in presented:
            users = domains_using(ctx, group, [host])
            if users:
                raise _SssuError(f"DR group {name} is in use by domain {users[0][1]} on host {host}")
            presented.remove(host)
        return ""
    if not others or replication == "none":
        raise _SssuError(f"DR group {name} has no destination")
    if verb == "SUSPEND":
        if replication not in ("consistent", "suspended"):  # so a suspended mirror is whole
            raise _SssuError(f"DR group {name} cannot be suspended while replication is {replication}")
        group["replication"] = "suspended"
        return ""
    if verb == "RESUME":
        if replication == "suspended":
            group["replication"] = "consistent"  # the merge of the log is not modelled
        return ""
    if verb == "REVERSE":
        if side["role"] != "primary":
            raise _SssuError("REVERSE is permitted only on a source DR group")
        down = [o for o in others if ctx.host_is_down(o)]
        if down:
            raise _SssuError(f"System {_system_name(ctx, down[0])} is not responding")
        if replication not in ("consistent", "syncing"):
            resync(ctx, group, others)
        return ""
    raise _SssuError(f"Unknown option {' '.join(action) or '(none)'} for SET DR_GROUP")


def snapshot_device(name: str, device: str) -> str:
    """Where the lab puts the snapshot ``name`` of ``device``: device-mapper style,
    /dev/vg_proxy01/lvol1 -> /dev/mapper/<name>-vg_proxy01-lvol1."""
    parts = [part for part in device.removeprefix("/dev/").split("/") if part]
    return "/dev/mapper/" + "-".join([name, *parts])


def _host_word(ctx: ToolContext, action: list[str], verb: str) -> str:
    host_word = next((w for w in action if w.upper().startswith("HOST=")), "")
    host = host_word[5:].rsplit("\\", 1)[-1]
    if not host:
        raise _SssuError(f'{verb} needs HOST="\\Hosts\\<host>"')
    if ctx.state["hosts"].get(host, {}).get("kind") != "dom0":
        raise _SssuError(f"Host \\Hosts\\{host} does not exist")
    return host


def snapshot_users(ctx: ToolContext, snapshot: dict, host: str) -> list[tuple[str, str]]:
    """(domain, device) for every domain on ``host`` holding one of the snapshot's devices."""
    if ctx.host_is_down(host):
        return []
    devices = set(snapshot.get("devices", {}).values())
    return [
        (domain["name"], disk["target"])
        for domain in ctx.state["hosts"].get(host, {}).get("domains", ())
        if domain.get("domid") != 0
        for disk in domain.get("disks", ())
        if disk.get("target") in devices
    ]


def _snapshot_of(ctx: ToolContext, array: str, name: str) -> dict:
    snapshot = ctx.state.get("snapshots", {}).get(name)
    if snapshot is None or snapshot.get("array") != array:
        raise _SssuError(f"Snapshot {name} does not exist on this system")
    return snapshot


def _add_snapshot(ctx: ToolContext, array: str, name: str, options: list[str]) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", name):
        raise _SssuError(f"Invalid snapshot name {name!r}")
    path = next((w[len("DR_GROUP=") :] for w in options if w.upper().startswith("DR_GROUP=")), "")
    if not path:
        raise _SssuError(f'ADD SNAPSHOT {name} needs DR_GROUP="\\Data Replication\\<group>"')
    group_name, group = _eva_group(ctx, array, path)
    snapshots = ctx.state.setdefault("snapshots", {})
    if name in snapshots:
        other = snapshots[name]
        where = "" if other.get("array") == array else f" on {_system_name(ctx, other['array'])}"
        raise _SssuError(f"Snapshot {name} already exists{where} (of DR group {other['group']})")
    side = group["sides"][array]
    disk = side.get("disk_state", "UpToDate")
    replication = group.get("replication", "none")
    if disk != "UpToDate" or (side["role"] != "primary" and replication not in ("consistent", "suspended")):
        raise _SssuError(
            f"DR group {group_name} on this system is not consistent (this copy {disk}, replication "
            f"{replication}): a snapshot of it would not be usable"
        )
    snapshots[name] = {
        "array": array,
        "group": group_name,
        "devices": {device: snapshot_device(name, device) for device in group.get("devices", ())},
        "presented_to": [],
        "created_at": ctx.now,
    }
    ctx.notes.append(f"snapshot {name} of {group_name} on {array}")
    return f"Snapshot {name} of DR group {group_name} created\n"


def _eva_snapshot(ctx: ToolContext, array: str, verb: str, args: list[str]) -> str:
    """ADD / LS / SET / DELETE SNAPSHOT (syntax in hosts/drivers/eva.py)."""
    snapshots = ctx.state.get("snapshots", {})
    if verb == "LS" and not args:
        names = sorted(n for n, snap in snapshots.items() if snap.get("array") == array)
        return "Snapshot list:\n" + "".join(f"  \\Snapshots\\{n}\n" for n in names)
    if not args:
        raise _SssuError(f"Missing snapshot name in {verb} SNAPSHOT")
    name = args[0].rsplit("\\", 1)[-1]
    if verb == "ADD":
        return _add_snapshot(ctx, array, name, args[1:])
    snapshot = _snapshot_of(ctx, array, name)
    if verb == "LS":
        rows = [
            ("name", f"\\Snapshots\\{name}"),
            ("drgroup", f"\\Data Replication\\{snapshot['group']}"),
            ("devices", ", ".join(f"{src}={snap}" for src, snap in snapshot["devices"].items()) or "none"),
            ("presentedto", ", ".join(snapshot.get("presented_to", ())) or "none"),
        ]
        return f"\\Snapshots\\{name} information:\n" + "".join(
            f"  {key} {'.' * (30 - len(key))}: {value}\n" for key, value in rows
        )
    presented = snapshot.setdefault("presented_to", [])
    if verb == "DELETE":
        if presented:
            raise _SssuError(f"Snapshot {name} is presented to {', '.join(presented)}; unpresent it first")
        del snapshots[name]
        ctx.notes.append(f"snapshot {name} deleted")
        return ""
    action = [w.upper() for w in args[1:2]]
    if action == ["PRESENT"]:
        host = _host_word(ctx, args[2:], "PRESENT")
        if host not in presented:
            presented.append(host)
        return ""
    if action == ["UNPRESENT"]:
        host = _host_word(ctx, args[2:], "UNPRESENT")
        users = snapshot_users(ctx, snapshot, host)
        if users:
            domain, device = users[0]
            raise _SssuError(f"Snapshot {name} is in use by domain {domain} on host {host} ({device})")
        if host in presented:
            presented.remove(host)
        return ""
    raise _SssuError(f"Unknown option {' '.join(args[1:]) or '(none)'} for SET SNAPSHOT")


def sssu(ctx: ToolContext, argv: list[str]) -> ToolResult:
    if ctx.host_state.get("kind") != "array":  # the array host doubles as management host
        return command_not_found(argv[0])
    out = [_BANNER]
    manager = False
    array: str | None = None
    for command in argv[1:]:
        out.append(f"\n{_system_name(ctx, array) if array else 'NoSystemSelected'}> {command}\n")
        words = _words(command)
        upper = [w.upper() for w in words]
        try:
            if upper[:2] == ["SELECT", "MANAGER"] and len(words) >= 3:
                manager = True  # sessions are pre-authorised on the management host
            elif upper[:2] == ["SELECT", "SYSTEM"] and len(words) >= 3:
                if not manager:
                    raise _SssuError("No manager selected")
                array = _array_host(ctx, " ".join(words[2:]))
            elif upper[1:2] == ["SNAPSHOT"] and upper[0] in ("ADD", "LS", "SET", "DELETE"):
                if array is None:
                    raise _SssuError("No system selected")
                out.append(_eva_snapshot(ctx, array, upper[0], words[2:]))
            elif upper[:2] in (["LS", "DR_GROUP"], ["SET", "DR_GROUP"]):
                if array is None:
                    raise _SssuError("No system selected")
                if upper[0] == "LS" and (len(words) == 2 or upper[2:] == ["FULL"]):
                    names = [
                        n
                        for n, g in sorted(ctx.state.get("groups", {}).items())
                        if g.get("kind") == "eva-ca" and array in g["sides"]
                    ]
                    if len(words) == 2:
                        out.append(
                            "DR_GROUP list:\n" + "".join(f"  \\Data Replication\\{n}\n" for n in names)
                        )
                    else:  # LS DR_GROUP FULL: every group's detail, as LS of each would print it
                        out.extend(_eva_detail(ctx, array, n, ctx.state["groups"][n]) for n in names)
                elif len(words) >= 3:
                    name, group = _eva_group(ctx, array, words[2])
                    if upper[0] == "LS":
                        out.append(_eva_detail(ctx, array, name, group))
                    else:
                        message = _eva_set(ctx, array, name, group, words[3:])
                        out.append(f"{message}\n" if message else "")
                else:
                    raise _SssuError(f"Missing DR group name in {command!r}")
            else:
                raise _SssuError(f"Unknown command {command!r}")
        except _SssuError as exc:
            out.append(f"Error: {exc}\n")
            return 1, "".join(out), ""
    return 0, "".join(out), ""


REGISTRY_ENTRIES = {"sssu": sssu}
