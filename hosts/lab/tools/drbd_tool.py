"""The lab's simulated ``drbdadm`` (served on dom0s). Contract and state schema:
``hosts/lab/tools/base.py``; the rules it shares with ``sssu``: replication.py.

State keys beyond the documented schema (all optional): group["minor"] is the DRBD minor
for 8.4-style messages (else /dev/drbdN or 0); host["drbd_version"] "8.4" | "9" selects
the drbdadm output format (default "9").
"""

from __future__ import annotations

import re

from hosts.lab.tools.base import ToolContext, ToolResult
from hosts.lab.tools.core import command_not_found
from hosts.lab.tools.replication import domains_using, fence_unreachable, partners, resync, settle

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
    settle(group, ctx.now)
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
    for peer in partners(group, ctx.host):
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
    peers = partners(group, ctx.host)
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
    peers = partners(group, ctx.host)
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
    fence_unreachable(ctx, ctx.host, res, group)
    me["role"] = "primary"
    me["disk_state"] = "UpToDate"
    me["presented_to"] = [ctx.host]  # a DRBD device is usable only on the node holding it
    up = [p for p in peers if not ctx.host_is_down(p)]
    if group.get("replication") in ("consistent", "syncing"):
        if forced_stale and up:
            resync(ctx, group, up)  # connected: our data overwrites the peer's
    else:
        for peer in up:  # StandAlone: what we write now never reaches them
            group["sides"][peer]["disk_state"] = "Outdated"


def _drbd_secondary(ctx: ToolContext, res: str, group: dict) -> None:
    me = group["sides"][ctx.host]
    if me["role"] != "primary":
        return
    if domains_using(ctx, group, [ctx.host]):
        raise _state_change_failed(ctx, res, group, f"secondary {res}", -12, "Device is held open by someone")
    me["role"] = "secondary"
    me["presented_to"] = []


def _drbd_connect(ctx: ToolContext, res: str, group: dict, discard: bool) -> None:
    peers = partners(group, ctx.host)
    if not peers or group.get("replication") not in ("broken", "suspended"):
        return
    if any(ctx.host_is_down(p) for p in peers):
        return  # keeps trying in the background: Connecting / WFConnection
    sides = group["sides"]
    if discard and sides[ctx.host]["role"] == "secondary":
        resync(ctx, group, [ctx.host])  # this node becomes the sync target
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
        resync(ctx, group, targets)
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
            elif group.get("replication") in ("consistent", "syncing") and partners(group, ctx.host):
                group["replication"] = "broken"  # disconnect: StandAlone until connected again
    except _DrbdError as exc:
        return exc.status, "".join(out), exc.stderr
    return 0, "".join(out), ""


REGISTRY_ENTRIES = {"drbdadm": drbdadm}
