"""Continuous Access as the lab's sssu plays it (HP CA EVA Administrator Guide
T3687-96043): what the arrays do on their own when a link returns, the DR group's detail
lines as one array sees them, FAILOVER and the other SET DR_GROUP options. The session,
the words and the output form are in sssu_tool.py and sssu_words.py."""

from __future__ import annotations

from hosts.lab.tools import eva_model as eva
from hosts.lab.tools.base import ToolContext
from hosts.lab.tools.replication import fence_unreachable, partners, resync, settle
from hosts.lab.tools.sssu_words import SssuError

# -- Continuous Access ---------------------------------------------------------------------


def restore(ctx: ToolContext, name: str, group: dict) -> None:
    """What the arrays do on their own: finish a timed copy, and once an array that was
    lost (fenced as an outdated destination) answers again, copy back to it: a full copy,
    since it may have diverged (suspended instead when the group asks for it, until a
    FORCEFULLCOPY). A group "broken" with every copy up to date while both arrays answer is
    a replication link that is down (the management side still reaches both arrays): it
    stays so until the link is back (the lab has no link fault; a test sets the state)."""
    settle(group, ctx.now)
    if group.get("replication") != "broken" or any(ctx.host_is_down(a) for a in group["sides"]):
        return
    lost = [
        array
        for array, side in group["sides"].items()
        if side["role"] != "primary" and (side.get("diverged") or side.get("disk_state") != "UpToDate")
    ]
    if not lost:
        return
    if group.get("fullcopy_autosuspend"):
        group["replication"] = "suspended"
        group["fullcopy_pending"] = True
        ctx.notes.append(
            f"{name}: {', '.join(lost)} back, full copy needed: suspended (FULLCOPY_AUTOSUSPEND)"
        )
        return
    resync(ctx, group, lost)
    group["copy"] = "fullcopy"
    ctx.notes.append(f"{name}: {', '.join(lost)} back, full copy to it started")


def group_view(ctx: ToolContext, array: str, group: dict) -> list[tuple[str, str]]:
    """The DR group's detail lines as ``array`` sees them (states from the CA guide:
    logging while the destination is unreachable or suspended, merging, full copy)."""
    side = group["sides"][array]
    source = side["role"] == "primary"
    others = partners(group, array)
    replication = group.get("replication", "none")
    peer_down = any(ctx.host_is_down(o) for o in others)
    operational, log = "good", "normal"
    if replication == "syncing":
        operational, log = ("attention" if peer_down else "good"), group.get("copy", "fullcopy")
    elif replication == "suspended":
        log = "overflow" if group.get("fullcopy_pending") else "logging"
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
    systems = ", ".join(str(ctx.state["hosts"].get(o, {}).get("system", o)) for o in others)
    return [
        ("operationalstate", operational),
        ("remotesystemname", systems),
        ("logstate", log),
        ("suspendstate", "suspended" if replication == "suspended" else "notsuspended"),
        ("writemode", "synchronous" if group.get("mode") == "sync" else "asynchronous"),
        ("failsafe", "disabled"),
        ("accessmode", group.get("accessmode", "disable")),
        ("drmlogsize", "0"),
        ("replicationlag", lag_text),
    ]


def domains_using(ctx: ToolContext, index: eva.ArrayIndex, vdisk: eva.Vdisk, host: str) -> list[str]:
    """Domains on a reachable ``host`` that hold a device of ``vdisk``."""
    if ctx.host_is_down(host):
        return []
    devices = index.devices(vdisk)
    return [
        domain["name"]
        for domain in ctx.state["hosts"][host].get("domains", ())
        if domain.get("domid") != 0 and any(d.get("target") in devices for d in domain.get("disks", ()))
    ]


def _source_in_use(ctx: ToolContext, name: str, group: dict, source: str) -> str | None:
    index = eva.ArrayIndex(ctx.state, source)
    for vdisk in index.vdisks.values():
        if vdisk.group != name or vdisk.snapshot is not None:
            continue
        for host, _ in index.presentations(vdisk.name):
            users = domains_using(ctx, index, vdisk, host)
            if users:
                return (
                    f"DR group {name} is in use at its source {index.state['hosts'][source].get('system', source)}: "
                    f"domain {users[0]} on host {host} uses {vdisk.path}; shut it down before a planned failover"
                )
    return None


def failover(ctx: ToolContext, array: str, name: str, group: dict, *, then_suspend: bool) -> None:
    side = group["sides"][array]
    if side["role"] == "primary":
        raise SssuError("Failover is permitted only on a destination DR group")
    replication = group.get("replication", "none")
    if replication == "syncing" or side.get("disk_state", "UpToDate") != "UpToDate":
        raise SssuError(
            f"DR group {name}: this destination is not consistent (replication {replication}, this copy "
            f"{side.get('disk_state', 'UpToDate')}); failover refused"
        )
    others = partners(group, array)
    reachable = [o for o in others if not ctx.host_is_down(o)]
    if then_suspend and not reachable:
        raise SssuError(f"DR group {name}: FAILOVER_SUSPEND needs the other system; use FAILOVER")
    for other in reachable:
        if group["sides"][other]["role"] == "primary":
            in_use = _source_in_use(ctx, name, group, other)
            if in_use:
                raise SssuError(in_use)
    fence_unreachable(ctx, array, name, group)
    # Only a consistent mirror hands over cleanly; a suspended one (the source kept writing
    # unreplicated) leaves the old source diverged: the array full-copies it back.
    trusted = replication == "consistent"
    for other in others:
        peer = group["sides"][other]
        if not trusted and other in reachable:
            peer["diverged"] = peer["role"] == "primary" or peer.get("diverged", False)
            peer["disk_state"] = "Outdated"
            group["replication"] = "broken"
            group["lag_seconds"] = None
        peer["role"] = "secondary"
    side["role"] = "primary"
    group.pop("fullcopy_pending", None)
    if then_suspend and group["replication"] == "consistent":
        group["replication"] = "suspended"
    ctx.notes.append(f"{name} failed over: {array} is now the source")


def set_group(ctx: ToolContext, array: str, name: str, group: dict, option: str, value: str) -> None:
    side = group["sides"][array]
    replication = group.get("replication", "none")
    if option in ("FAILOVER", "FAILOVER_SUSPEND"):
        failover(ctx, array, name, group, then_suspend=option == "FAILOVER_SUSPEND")
    elif option == "ACCESSMODE":
        group["accessmode"] = value.lower()
    elif option == "SUSPEND":
        if replication not in ("consistent", "suspended"):  # so a suspended mirror is whole
            raise SssuError(f"DR group {name} cannot be suspended while replication is {replication}")
        group["replication"] = "suspended"
    elif option == "NOSUSPEND":
        if group.get("fullcopy_pending"):
            raise SssuError(f"DR group {name} needs a full copy (its log overflowed): use FORCEFULLCOPY")
        if replication == "suspended":
            group["replication"] = "consistent"  # the merge of the log is not timed
    else:  # FORCEFULLCOPY
        if side["role"] != "primary":
            raise SssuError("FORCEFULLCOPY is permitted only on a source DR group")
        down = [o for o in partners(group, array) if ctx.host_is_down(o)]
        if down:
            raise SssuError(f"System {ctx.state['hosts'][down[0]].get('system', down[0])} is not responding")
        group.pop("fullcopy_pending", None)
        resync(ctx, group, partners(group, array))
        group["copy"] = "fullcopy"
