"""The lab's simulated ``drbdadm`` and ``drbdsetup`` (served on dom0s). Contract and
state schema: hosts/lab/tools/base.py; DRBD's extra state keys: drbd_view.py; the rules
shared with ``sssu``: replication.py.

``drbdadm`` is judged by the real one: every call is first given to Debian's
``drbdadm -d`` against a resource file rendered from the state (drbd_check.py), and
refused with drbdadm's own message and exit status if it refuses. Its dry run lists
the ``drbdsetup`` commands drbdadm would run; the lab runs those through its own
``drbdsetup`` and reports a failing one the way drbdadm does (user/shared/shared_main.c
lines 395-408: ``Command '<argv>' terminated with exit code N``; per resource it stops
at the first failure, the exit status is the worst of the resources:
user/v9/drbdadm_main.c call_cmd 647-700, main 3461-3466 and 3548-3551). ``drbdsetup``
checks its options against the real binary's option table and prints status as
drbd-utils does (drbd_print.py).
"""

from __future__ import annotations

import shlex
import subprocess

from hosts.lab.tools.base import ToolContext, ToolResult
from hosts.lab.tools.core import command_not_found
from hosts.lab.tools.drbd_check import CHECKER, DRY_RUN_TIMEOUT, DrbdUtilsMissing, is_84
from hosts.lab.tools.drbd_print import status_json, status_text
from hosts.lab.tools.drbd_view import (
    config_of,
    config_text,
    connection_state,
    drbd_groups,
    resource_view,
    version,
    volumes,
)
from hosts.lab.tools.replication import domains_using, fence_unreachable, partners, resync, settle

# drbdadm options that name files or programs of this machine: the lab cannot honour them.
_FOREIGN = ("-c", "--config-file", "-t", "--config-to-test", "-E", "--config-to-exclude", "-s", "--drbdsetup")
_FOREIGN += ("-m", "--drbdmeta", "-p", "--drbd-proxy-ctl")
_WITH_VALUE = ("-n", "--sh-varname", "-W", "--setup-option")
# drbdsetup's exit status for a failed state change (user/v9/drbdsetup.c:962-977).
_STATE_EXIT = {-2: 17, -16: 5, -4: 16}
_SHORT_STATUS = {"-v": "verbose", "-s": "statistics", "-j": "json"}  # status_cmd_options, v9:230-236


class _Refused(Exception):
    def __init__(self, status: int, stderr: str, stdout: str = "") -> None:
        super().__init__(stderr)
        self.result: ToolResult = (status, stdout, stderr)


def _failed(obj: str, code: int, text: str) -> _Refused:
    """drbdsetup's words for a refused state change (v9:962-977; drbd_strings.c:100-128)."""
    return _Refused(_STATE_EXIT.get(code, 11), f"{obj}: State change failed: ({code}) {text}\n")


def _failure(obj: str, code: int, text: str, info: str = "") -> _Refused:
    """drbdsetup's words for a refused configuration request (v9:952-955)."""
    extra = f"additional info from kernel:\n{info}\n" if info else ""
    return _Refused(10, f"{obj}: Failure: ({code}) {text}\n{extra}")


# --- drbdadm -------------------------------------------------------------------------------


def drbdadm(ctx: ToolContext, argv: list[str]) -> ToolResult:
    if ctx.host_state.get("kind") != "dom0":
        return command_not_found(argv[0])
    foreign = next((a for a in argv[1:] if a.split("=")[0] in _FOREIGN), None)
    if foreign:
        return 1, "", f"lab: drbdadm {foreign} is not simulated (the lab gives drbdadm its own config)\n"
    ver = version(ctx)
    config = config_text(ctx)
    try:
        whole = CHECKER.dry_run(argv[1:], config=config, host=ctx.host, version=ver)
        if not whole.ok:
            return whole.status, "", whole.stderr
        units = [whole.commands]
        names = _resource_words(argv[1:])
        if names == ["all"]:
            names = [name for name, _ in drbd_groups(ctx.state, ctx.host)]
        if len(names) > 1 or (names and names[0] not in argv[1:]):
            # one dry run per resource: drbdadm stops a resource at its first failure
            head = [a for a in argv[1:] if a not in names and a != "all"]
            units = [
                CHECKER.dry_run([*head, n], config=config, host=ctx.host, version=ver).commands for n in names
            ]
    except DrbdUtilsMissing as exc:
        return 1, "", f"lab: {exc}\n"
    status, out, err = 0, [], [whole.stderr] if whole.stderr else []
    for unit in units:
        for line in unit:
            words = shlex.split(line)
            if words[0].rsplit("/", 1)[-1] == "drbdmeta":
                continue  # dstate asks drbdmeta only for a device that is down; the lab's are up
            rc, o, e = drbdsetup(ctx, words)
            out.append(o)
            err.append(e)
            if rc:
                if rc >= 10:
                    err.append(f"Command '{' '.join(words)}' terminated with exit code {rc}\n")
                status = max(status, rc)
                break
    return status, "".join(out), "".join(err)


def _resource_words(args: list[str]) -> list[str]:
    """The resource names of a drbdadm command line (the words after the command)."""
    words, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in _WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            words.append(arg)
    return words[1:]


# --- drbdsetup -----------------------------------------------------------------------------


def drbdsetup(ctx: ToolContext, argv: list[str]) -> ToolResult:
    if ctx.host_state.get("kind") != "dom0":
        return command_not_found(argv[0])
    try:
        return _drbdsetup(ctx, argv[1:], version(ctx))
    except DrbdUtilsMissing as exc:
        return 1, "", f"lab: {exc}\n"
    except _Refused as refused:
        return refused.result


def _drbdsetup(ctx: ToolContext, args: list[str], ver: str) -> ToolResult:
    if not args or args[0] in ("help", "xml-help", "--help", "-h") or args[1:2] in (["--help"], ["-h"]):
        # Help is the real binary's own (it answers that without a kernel module).
        proc = subprocess.run(  # a fixed binary, argv as given, no shell
            ["drbdsetup", *args],
            executable=CHECKER.drbdsetup_binary(ver),
            capture_output=True,
            text=True,
            timeout=DRY_RUN_TIMEOUT,
            check=False,
        )
        return proc.returncode, proc.stdout, proc.stderr
    command = args[0]
    known = CHECKER.drbdsetup_options(command, ver)
    if known is None:  # print_usage_and_exit("invalid command"), v9:4398-4400
        return 20, CHECKER.drbdsetup_usage(ver) + "\ninvalid command\n", ""
    words, options = [command], {}
    for arg in args[1:]:
        if not arg.startswith("-"):
            words.append(arg)
            continue
        name = _SHORT_STATUS.get(arg, "") if command == "status" and not arg.startswith("--") else arg[2:]
        name, _, value = name.partition("=")
        if name not in known:  # glibc getopt's complaint, then print_usage_and_exit(NULL)
            shown = (
                f"unrecognized option '{arg}'" if arg.startswith("--") else f"invalid option -- '{arg[1:]}'"
            )
            return 20, CHECKER.drbdsetup_usage(ver), f"{command}: {shown}\n"
        options[name] = options.get(name, 0) + 1 if name == "verbose" else (value or True)
    handler = _SETUP.get(command)
    if handler is None:
        return 1, "", f"lab: drbdsetup {command} is not simulated\n"
    return handler(ctx, words[1:], options, is_84(ver))


def _group(ctx: ToolContext, name: str) -> dict:
    group = dict(drbd_groups(ctx.state, ctx.host)).get(name)
    if group is None:
        raise _failure(name, 158, "Unknown resource")  # ERR_RES_NOT_KNOWN, v9:533
    _settle(ctx, name, group)
    return group


def _by_minor(ctx: ToolContext, minor: str) -> tuple[str, dict]:
    for name, group in drbd_groups(ctx.state, ctx.host):
        if any(str(v.minor) == minor for v in volumes(group)):
            _settle(ctx, name, group)
            return name, group
    raise _failure(minor, 127, "Device minor not allocated", "unknown minor")  # ERR_MINOR_INVALID


def _target(ctx: ToolContext, words: list[str], drbd84: bool) -> tuple[str, str, dict]:
    """(object name drbdsetup reports, resource, group) of a resource (9) or minor (8.4) word."""
    if not words:
        raise _Refused(20, "Missing argument 1 to command\n")
    if drbd84:
        return (words[0], *_by_minor(ctx, words[0]))
    return words[0], words[0], _group(ctx, words[0])


def _status(ctx: ToolContext, words: list[str], options: dict, drbd84: bool) -> ToolResult:
    wanted = words[0] if words else "all"
    configured = drbd_groups(ctx.state, ctx.host)
    for name, group in configured:
        _settle(ctx, name, group)
    views = [resource_view(ctx, n, g) for n, g in configured if wanted in ("all", n)]
    if options.get("json"):
        out = status_json(views)
    else:
        out = "" if configured or drbd84 else "# No currently configured DRBD found.\n"  # v9:3207-3208
        out += status_text(
            views, drbd84=drbd84, verbose=int(options.get("verbose", 0)), statistics="statistics" in options
        )
    if not views and wanted != "all":
        return 10, out, f"{wanted}: No such resource\n"  # v9:3271-3274
    return 0, out, ""


def _role(ctx: ToolContext, words: list[str], options: dict, drbd84: bool) -> ToolResult:
    _obj, name, group = _target(ctx, words, drbd84)
    me = group["sides"][ctx.host]
    if not drbd84:
        return 0, f"{me['role'].capitalize()}\n", ""  # role_cmd, v9:3279-3302
    view = resource_view(ctx, name, group)
    conn = view.connections[0] if view.connections else None
    if _unconfigured(view):
        return 0, "Unconfigured\n", ""
    peer = conn.role if conn else "Unknown"
    return 0, f"{view.role}/{peer}\n", ""  # role_scmd, v84:2165-2193


def _unconfigured(view) -> bool:  # v84:2186-2188: StandAlone and Diskless
    standalone = not view.connections or view.connections[0].state == "StandAlone"
    return standalone and all(d.disk == "Diskless" for d in view.devices)


def _cstate(ctx: ToolContext, words: list[str], options: dict, drbd84: bool) -> ToolResult:
    obj, name, group = _target(ctx, words, drbd84)
    view = resource_view(ctx, name, group)
    if drbd84:  # the device's connection state, v84:2195-2218
        if _unconfigured(view):
            return 0, "Unconfigured\n", ""
        minor = int(obj)
        vol = next(d.volume for d in view.devices if d.minor == minor)
        conn = view.connections[0] if view.connections else None
        pd = next((p for p in conn.peer_devices if p.volume == vol), None) if conn else None
        return 0, f"{pd.replication if pd else 'StandAlone'}\n", ""
    peer_id = words[1] if len(words) > 1 else ""
    conn = next((c for c in view.connections if str(c.peer_node_id) == peer_id), None)
    if conn is None:
        return 10, "", f"{name}: No such connection\n"  # cstate_cmd, v9:3304-3325
    return 0, f"{conn.state}\n", ""


def _dstate(ctx: ToolContext, words: list[str], options: dict, drbd84: bool) -> ToolResult:
    minor = words[0] if words else ""
    name, group = _by_minor(ctx, minor)
    view = resource_view(ctx, name, group)
    dev = next(d for d in view.devices if str(d.minor) == minor)
    if drbd84 and _unconfigured(view):
        return 0, "Unconfigured\n", ""
    peers = [p.peer_disk for c in view.connections for p in c.peer_devices if p.volume == dev.volume]
    return 0, "/".join([dev.disk, *peers]) + "\n", ""  # dstate_cmd, v9:3327-3362


# --- state changes -------------------------------------------------------------------------


def _settle(ctx: ToolContext, name: str, group: dict) -> None:
    """Finish a due resync, and let two nodes that both keep trying meet (DRBD reconnects
    by itself: the handshake happens as soon as both are up)."""
    settle(group, ctx.now)
    sides = group["sides"]
    if (
        group.get("replication") == "broken"
        and len(sides) > 1
        and all(s.get("standalone") is False for s in sides.values())
        and not any(ctx.host_is_down(n) for n in sides)
    ):
        _handshake(ctx, name, group)


def _handshake(ctx: ToolContext, name: str, group: dict) -> None:
    sides = group["sides"]
    discard = [n for n, s in sides.items() if s.get("discard_my_data") and s["role"] == "secondary"]
    if discard:
        _connected(group)
        resync(ctx, group, discard)  # the node that discards its data becomes the sync target
        return
    if any(s.get("diverged") for s in sides.values()):
        ctx.notes.append(f"{name}: Split-Brain detected, dropping connection!")
        for side in sides.values():
            side["standalone"] = True
            side.pop("discard_my_data", None)
        return
    good = [n for n, s in sides.items() if s.get("disk_state", "UpToDate") == "UpToDate"]
    source = next((n for n, s in sides.items() if s["role"] == "primary"), good[0] if good else None)
    if source is None:
        return  # nobody has good data: they stay apart
    _connected(group)
    targets = [n for n in sides if n != source and sides[n].get("disk_state", "UpToDate") != "UpToDate"]
    if targets:
        resync(ctx, group, targets)
    else:
        group["replication"] = "consistent"


def _connected(group: dict) -> None:
    for side in group["sides"].values():
        side.pop("standalone", None)
        side.pop("discard_my_data", None)


def _primary(ctx: ToolContext, words: list[str], options: dict, drbd84: bool) -> ToolResult:
    obj, name, group = _target(ctx, words, drbd84)
    force = bool(options.get("force"))
    me = group["sides"][ctx.host]
    if me["role"] == "primary":
        return 0, "", ""
    peers = partners(group, ctx.host)
    for peer in peers:
        side = group["sides"][peer]
        if side["role"] == "primary" and not ctx.host_is_down(peer):
            # Never two reachable primaries, --force or not (real DRBD would only know when Connected).
            raise _failed(obj, -1, "Multiple primaries not allowed by config")
        if side["role"] == "primary" and not force:
            # As with ``fencing resource-only``: the unreachable peer may still be writing.
            raise _failed(obj, -7, "Refusing to be Primary while peer is not outdated")
    if me.get("quorum", True) is False and not drbd84:
        raise _failed(obj, -25, "No quorum")
    if me.get("client"):  # a diskless client needs a peer with good data, --force or not
        if not any(
            connection_state(ctx, group, ctx.host, p) == "Connected"
            and group["sides"][p].get("disk_state", "UpToDate") == "UpToDate"
            for p in peers
        ):
            raise _failed(obj, -2, "Need access to UpToDate data")
    elif me.get("disk_state", "UpToDate") != "UpToDate" and not force:
        raise _failed(obj, -2, "Need access to UpToDate data")
    forced_stale = not me.get("client") and me.get("disk_state", "UpToDate") != "UpToDate"
    down = [p for p in peers if ctx.host_is_down(p)]
    fence_unreachable(ctx, ctx.host, name, group)
    if down:  # both keep trying to reach each other: the handshake happens when it returns
        me.setdefault("standalone", False)
        for peer in down:
            group["sides"][peer]["standalone"] = False
    me["role"] = "primary"
    if not me.get("client"):
        me["disk_state"] = "UpToDate"
    me["presented_to"] = [ctx.host]  # a DRBD device is usable only on the node holding it
    up = [p for p in peers if not ctx.host_is_down(p)]
    if group.get("replication") in ("consistent", "syncing"):
        if forced_stale and up:
            resync(ctx, group, up)  # connected: our data overwrites the peer's
    else:
        for peer in up:  # StandAlone: what we write now never reaches them
            if not group["sides"][peer].get("client"):
                group["sides"][peer]["disk_state"] = "Outdated"
    return 0, "", ""


def _secondary(ctx: ToolContext, words: list[str], options: dict, drbd84: bool) -> ToolResult:
    obj, _name, group = _target(ctx, words, drbd84)
    me = group["sides"][ctx.host]
    if me["role"] != "primary":
        return 0, "", ""
    if domains_using(ctx, group, [ctx.host]):
        raise _failed(obj, -12, "Device is held open by someone")
    me["role"] = "secondary"
    me["presented_to"] = []
    return 0, "", ""


def _connect(ctx: ToolContext, words: list[str], options: dict, drbd84: bool) -> ToolResult:
    if not words:
        raise _Refused(20, "Missing argument 1 to command\n")
    name = words[0]
    group = _group(ctx, name)
    peers = partners(group, ctx.host)
    if not peers:
        return 0, "", ""
    if connection_state(ctx, group, ctx.host, peers[0]) != "StandAlone":
        if drbd84:  # 8.4's drbd_adm_connect: cstate > C_STANDALONE -> ERR_NET_CONFIGURED
            raise _failure(name, 125, "Device has a net-config (use disconnect first)")
        return 0, "", ""  # DRBD 9's answer here is not verified: the lab does nothing
    me = group["sides"][ctx.host]
    me["standalone"] = False
    if options.get("discard-my-data"):
        me["discard_my_data"] = True
    _settle(ctx, name, group)
    return 0, "", ""


def _disconnect(ctx: ToolContext, words: list[str], options: dict, drbd84: bool) -> ToolResult:
    name = _by_address(ctx, words) if drbd84 else (words[0] if words else "")
    group = _group(ctx, name)
    peers = partners(group, ctx.host)
    if not peers or connection_state(ctx, group, ctx.host, peers[0]) == "StandAlone":
        return 0, "", ""  # already StandAlone: nothing to do
    for peer in peers:
        if connection_state(ctx, group, peer, ctx.host) != "StandAlone":
            group["sides"][peer]["standalone"] = False  # it keeps trying: Connecting
    group["sides"][ctx.host]["standalone"] = True
    if group.get("replication") in ("consistent", "syncing"):
        group["replication"] = "broken"
    return 0, "", ""


def _by_address(ctx: ToolContext, words: list[str]) -> str:
    """8.4's ``disconnect <local-addr> <peer-addr>``: the resource with that local address."""
    for res in config_of(ctx.state, ctx.host):
        port = 7788 + min((v.minor for v in res.volumes), default=0)
        mine = dict(res.nodes).get(ctx.host)
        if words and words[0] == f"ipv4:{mine}:{port}":
            return res.name
    raise _failure(words[0] if words else "??", 158, "Unknown resource")


_SETUP = {
    "status": _status,
    "role": _role,
    "cstate": _cstate,
    "dstate": _dstate,
    "primary": _primary,
    "secondary": _secondary,
    "connect": _connect,
    "disconnect": _disconnect,
}

REGISTRY_ENTRIES = {"drbdadm": drbdadm, "drbdsetup": drbdsetup}
