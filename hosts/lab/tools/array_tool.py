"""The lab's simulated storage tools: ``sssu`` (served on array hosts) and ``drbdadm``
(served on dom0s). Contract and state schema: ``hosts/lab/tools/base.py``.

Both enforce the lab invariant in its strong form: a group never has two sides stored
as primary. A side that is promoted while its partner is unreachable records the
partner as secondary with an Outdated disk (and ``diverged`` if the partner was primary
and may have written), so split brain is refused or resolved, never stored.

State keys used beyond the documented schema (all optional):
  group["replication"] may also be "suspended" (SSSU SUSPEND);
  group["resync_seconds"] > 0 makes resyncs take that long (``replication: syncing``
  until ``group["resync_done_at"]``), 0 or absent completes them at once;
  group["minor"] is the DRBD minor for 8.4-style messages (else /dev/drbdN or 0);
  side["diverged"] marks a copy demoted while unreachable as primary;
  host["drbd_version"] "8.4" | "9" selects the drbdadm output format (default "9").
Drill snapshots (sssu ADD/LS/SET/DELETE SNAPSHOT) live in state["snapshots"]; see
``hosts/lab/tools/base.py``. Taking, presenting or deleting one never changes its group.
The sssu syntax is the design in ``hosts/drivers/eva.py``; it is parsed here on purpose
independently, like a real tool would, so the driver's tests exercise its syntax.
"""

from __future__ import annotations

import re

from hosts.lab.tools.base import ToolContext, ToolResult
from hosts.lab.tools.core import command_not_found

# --- shared rules ------------------------------------------------------------------------


def _settle(group: dict, now: float) -> None:
    """Finish a timed resync whose time has come (handlers never sleep)."""
    done_at = group.get("resync_done_at")
    if group.get("replication") == "syncing" and done_at is not None and now >= done_at:
        for side in group["sides"].values():
            if side.get("disk_state") == "Inconsistent":
                side["disk_state"] = "UpToDate"
        group["replication"] = "consistent"
        group.pop("resync_done_at", None)
        group.pop("resync_started_at", None)


def _resync(ctx: ToolContext, group: dict, targets: list[str]) -> None:
    seconds = float(group.get("resync_seconds") or 0.0)
    for name in targets:
        side = group["sides"][name]
        side["disk_state"] = "Inconsistent" if seconds > 0 else "UpToDate"
        side.pop("diverged", None)
    group["replication"] = "syncing" if seconds > 0 else "consistent"
    group["lag_seconds"] = 0.0
    if seconds > 0:
        group["resync_started_at"] = ctx.now
        group["resync_done_at"] = ctx.now + seconds


def _others(group: dict, name: str) -> list[str]:
    return [other for other in group["sides"] if other != name]


def _domains_using(
    ctx: ToolContext, group: dict, hosts: list[str] | None = None
) -> list[tuple[str, str, str]]:
    """(dom0, domain, device) for every domain on a reachable dom0 holding a group device."""
    devices = set(group.get("devices", ()))
    found = []
    for host_name, host in ctx.state["hosts"].items():
        if host.get("kind") != "dom0" or ctx.host_is_down(host_name):
            continue
        if hosts is not None and host_name not in hosts:
            continue
        for domain in host.get("domains", ()):
            if domain.get("domid") == 0:
                continue
            for disk in domain.get("disks", ()):
                if disk.get("target") in devices:
                    found.append((host_name, domain["name"], disk["target"]))
    return found


def _fence_unreachable(ctx: ToolContext, name: str, group_name: str, group: dict) -> None:
    """Before ``name`` becomes primary: every unreachable partner is recorded as an
    outdated secondary, so its return can never make a second primary."""
    for other in _others(group, name):
        if not ctx.host_is_down(other):
            continue
        side = group["sides"][other]
        if side["role"] == "primary":
            side["diverged"] = True
        side["role"] = "secondary"
        side["disk_state"] = "Outdated"
        group["replication"] = "broken"
        group["lag_seconds"] = None
        ctx.notes.append(f"{group_name}: {other} unreachable, recorded as secondary/Outdated")


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
    _settle(group, ctx.now)
    return name, group


def _eva_detail(ctx: ToolContext, array: str, name: str, group: dict) -> str:
    rows = _eva_view(ctx, array, name, group)
    return f"\\Data Replication\\{name} information:\n" + "".join(
        f"  {key} {'.' * (30 - len(key))}: {value}\n" for key, value in rows
    )


def _eva_view(ctx: ToolContext, array: str, name: str, group: dict) -> list[tuple[str, str]]:
    side = group["sides"][array]
    others = _others(group, array)
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
    for other in _others(group, array):
        if group["sides"][other]["role"] == "primary" and not ctx.host_is_down(other):
            users = _domains_using(ctx, group)
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
    _fence_unreachable(ctx, array, name, group)
    # Only a consistent mirror hands over cleanly; otherwise (forced, or suspended: the
    # source kept writing unreplicated) the old source's copy has diverged.
    trusted = replication == "consistent" and side.get("disk_state") == "UpToDate"
    for other in _others(group, array):
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
    others = _others(group, array)
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
            users = _domains_using(ctx, group, [host])
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
            _resync(ctx, group, others)
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


# --- drbdadm -------------------------------------------------------------------------------


class _DrbdError(Exception):
    def __init__(self, stderr: str, status: int) -> None:
        super().__init__(stderr)
        self.stderr = stderr
        self.status = status


def _drbd_group(ctx: ToolContext, res: str) -> dict:
    group = ctx.state.get("groups", {}).get(res)
    if group is None or group.get("kind") != "drbd" or ctx.host not in group["sides"]:
        raise _DrbdError(f"'{res}' not defined in your config (for this host).\n", 1)
    _settle(group, ctx.now)
    return group


def _is_84(ctx: ToolContext) -> bool:
    return str(ctx.host_state.get("drbd_version", "9")).startswith("8")


def _minor(group: dict) -> int:
    if "minor" in group:
        return int(group["minor"])
    m = re.search(r"/dev/drbd(\d+)$", next(iter(group.get("devices", ())), ""))
    return int(m.group(1)) if m else 0


def _state_change_failed(
    ctx: ToolContext, res: str, group: dict, words: str, code: int, text: str
) -> _DrbdError:
    """drbdsetup's message and exit code, wrapped by drbdadm (reference 3.1)."""
    status = 17 if code == -2 else 11
    if _is_84(ctx):
        obj, command = str(_minor(group)), f"drbdsetup-84 {words.replace(res, str(_minor(group)))}"
    else:
        obj, command = res, f"drbdsetup {words}"
    return _DrbdError(
        f"{obj}: State change failed: ({code}) {text}\nCommand '{command}' terminated with exit code {status}\n",
        status,
    )


def _connection(ctx: ToolContext, group: dict, peer: str) -> str:
    if ctx.host_is_down(peer):
        return "WFConnection" if _is_84(ctx) else "Connecting"
    if group.get("replication") in ("broken", "suspended", "none"):
        return "StandAlone"
    return "Connected"


def _sync_words(ctx: ToolContext, group: dict, me: dict) -> tuple[str, str]:
    """(replication state, done) of a Connected peer as seen from ``me``."""
    if group.get("replication") != "syncing":
        return "Established", ""
    state = "SyncTarget" if me.get("disk_state") == "Inconsistent" else "SyncSource"
    start, end = group.get("resync_started_at"), group.get("resync_done_at")
    done = (
        0.0 if not (start and end and end > start) else min(100.0, 100.0 * (ctx.now - start) / (end - start))
    )
    return state, f" done:{done:.2f}"


def _drbd_status(ctx: ToolContext, res: str, group: dict) -> str:
    me = group["sides"][ctx.host]
    lines = [f"{res} role:{me['role'].capitalize()}", f"  disk:{me.get('disk_state', 'UpToDate')}"]
    for peer in _others(group, ctx.host):
        side = group["sides"][peer]
        label = "peer" if _is_84(ctx) else peer  # 8.4 connections have no names
        connection = _connection(ctx, group, peer)
        if connection != "Connected":
            lines.append(f"  {label} connection:{connection}")
            continue
        lines.append(f"  {label} role:{side['role'].capitalize()}")
        replication, done = _sync_words(ctx, group, me)
        shown = f"replication:{replication} " if _is_84(ctx) or replication != "Established" else ""
        lines.append(f"    {shown}peer-disk:{side.get('disk_state', 'UpToDate')}{done}")
    return "\n".join(lines) + "\n\n"


def _drbd_query(ctx: ToolContext, verb: str, group: dict) -> str:
    me = group["sides"][ctx.host]
    peers = _others(group, ctx.host)
    connected = [p for p in peers if _connection(ctx, group, p) == "Connected"]
    if verb == "role":
        if not _is_84(ctx):
            return f"{me['role'].capitalize()}\n"
        peer_role = group["sides"][connected[0]]["role"].capitalize() if connected else "Unknown"
        return f"{me['role'].capitalize()}/{peer_role}\n"
    if verb == "dstate":
        peer_disks = [
            group["sides"][p].get("disk_state", "UpToDate") if p in connected else "DUnknown" for p in peers
        ]
        return "/".join([me.get("disk_state", "UpToDate"), *(peer_disks or ["DUnknown"])]) + "\n"
    states = []
    for peer in peers:
        state = _connection(ctx, group, peer)
        if _is_84(ctx) and state == "Connected":
            state = _sync_words(ctx, group, me)[0].replace("Established", "Connected")
        states.append(state)
    return "\n".join(states or ["StandAlone"]) + "\n"


def _drbd_primary(ctx: ToolContext, res: str, group: dict, force: bool) -> None:
    me = group["sides"][ctx.host]
    if me["role"] == "primary":
        return
    words = f"primary {res}" + (" --force" if force else "")
    peers = _others(group, ctx.host)
    for peer in peers:
        side = group["sides"][peer]
        if side["role"] == "primary" and not ctx.host_is_down(peer):
            # Never two reachable primaries, --force or not (real DRBD would only know when Connected).
            raise _state_change_failed(ctx, res, group, words, -1, "Multiple primaries not allowed by config")
        if side["role"] == "primary" and not force:
            # As with ``fencing resource-only``: the unreachable peer may still be writing.
            raise _state_change_failed(
                ctx, res, group, words, -7, "Refusing to be Primary while peer is not outdated"
            )
    if me.get("disk_state", "UpToDate") != "UpToDate" and not force:
        raise _state_change_failed(ctx, res, group, words, -2, "Need access to UpToDate data")
    forced_stale = me.get("disk_state", "UpToDate") != "UpToDate"
    _fence_unreachable(ctx, ctx.host, res, group)
    me["role"] = "primary"
    me["disk_state"] = "UpToDate"
    me["presented_to"] = [ctx.host]  # a DRBD device is usable only on the node holding it
    up = [p for p in peers if not ctx.host_is_down(p)]
    if group.get("replication") in ("consistent", "syncing"):
        if forced_stale and up:
            _resync(ctx, group, up)  # connected: our data overwrites the peer's
    else:
        for peer in up:  # StandAlone: what we write now never reaches them
            group["sides"][peer]["disk_state"] = "Outdated"


def _drbd_secondary(ctx: ToolContext, res: str, group: dict) -> None:
    me = group["sides"][ctx.host]
    if me["role"] != "primary":
        return
    if _domains_using(ctx, group, [ctx.host]):
        raise _state_change_failed(ctx, res, group, f"secondary {res}", -12, "Device is held open by someone")
    me["role"] = "secondary"
    me["presented_to"] = []


def _drbd_connect(ctx: ToolContext, res: str, group: dict, discard: bool) -> None:
    peers = _others(group, ctx.host)
    if not peers or group.get("replication") not in ("broken", "suspended"):
        return
    if any(ctx.host_is_down(p) for p in peers):
        return  # keeps trying in the background: Connecting / WFConnection
    sides = group["sides"]
    if discard and sides[ctx.host]["role"] == "secondary":
        _resync(ctx, group, [ctx.host])  # this node becomes the sync target
        return
    if any(s.get("diverged") for s in sides.values()):
        ctx.notes.append(f"{res}: Split-Brain detected, dropping connection!")
        return
    good = [n for n, s in sides.items() if s.get("disk_state", "UpToDate") == "UpToDate"]
    source = next((n for n, s in sides.items() if s["role"] == "primary"), good[0] if good else None)
    if source is None:
        return  # nobody has good data: stays StandAlone
    targets = [n for n in sides if n != source and sides[n].get("disk_state", "UpToDate") != "UpToDate"]
    if targets:
        _resync(ctx, group, targets)
    else:
        group["replication"] = "consistent"


def drbdadm(ctx: ToolContext, argv: list[str]) -> ToolResult:
    if ctx.host_state.get("kind") != "dom0":
        return command_not_found(argv[0])
    options = {a for a in argv[1:] if a.startswith("-")}
    words = [a for a in argv[1:] if not a.startswith("-")]
    if not words:
        return 20, "", "USAGE: drbdadm COMMAND [OPTION...] {all|RESOURCE...}\n"
    verb, names = words[0], words[1:]
    if verb not in ("status", "role", "cstate", "dstate", "primary", "secondary", "connect", "disconnect"):
        return 20, "", f"drbdadm: Unknown command '{verb}'\n"
    if verb == "status" and not names:
        names = sorted(
            n
            for n, g in ctx.state.get("groups", {}).items()
            if g.get("kind") == "drbd" and ctx.host in g["sides"]
        )
        if not names:
            return 0, "# No currently configured DRBD found.\n", ""
    if not names:
        return 20, "", f"drbdadm {verb}: missing resource name\n"
    out = []
    try:
        for res in names:
            group = _drbd_group(ctx, res)
            if verb == "status":
                out.append(_drbd_status(ctx, res, group))
            elif verb in ("role", "cstate", "dstate"):
                out.append(_drbd_query(ctx, verb, group))
            elif verb == "primary":
                _drbd_primary(ctx, res, group, force=bool(options & {"--force", "--overwrite-data-of-peer"}))
            elif verb == "secondary":
                _drbd_secondary(ctx, res, group)
            elif verb == "connect":
                _drbd_connect(ctx, res, group, discard="--discard-my-data" in options)
            elif group.get("replication") in ("consistent", "syncing") and _others(group, ctx.host):
                group["replication"] = "broken"  # disconnect: StandAlone until connected again
    except _DrbdError as exc:
        return exc.status, "".join(out), exc.stderr
    return 0, "".join(out), ""


REGISTRY_ENTRIES = {"sssu": sssu, "drbdadm": drbdadm}
