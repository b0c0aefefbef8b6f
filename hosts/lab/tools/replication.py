"""Rules the lab's simulated replication tools share (``sssu`` in sssu_tool.py, ``drbdadm``
in drbd_tool.py): timed resyncs, the partners of a copy, the domains that hold a group's
devices, and fencing an unreachable partner before a promotion.

The lab invariant, in its strong form: a group never has two sides stored as primary. A
side that is promoted while its partner is unreachable records the partner as secondary
with an Outdated disk (and ``diverged`` if the partner was primary and may have
written), so split brain is refused or resolved, never stored.
"""

from __future__ import annotations

from hosts.lab.tools.base import ToolContext


def settle(group: dict, now: float) -> None:
    """Finish a timed resync whose time has come (handlers never sleep)."""
    done_at = group.get("resync_done_at")
    if group.get("replication") == "syncing" and done_at is not None and now >= done_at:
        for side in group["sides"].values():
            if side.get("disk_state") == "Inconsistent":
                side["disk_state"] = "UpToDate"
        group["replication"] = "consistent"
        group.pop("resync_done_at", None)
        group.pop("resync_started_at", None)


def resync(ctx: ToolContext, group: dict, targets: list[str]) -> None:
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


def partners(group: dict, name: str) -> list[str]:
    return [other for other in group["sides"] if other != name]


def domains_using(
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


def fence_unreachable(ctx: ToolContext, name: str, group_name: str, group: dict) -> None:
    """Before ``name`` becomes primary: every unreachable partner is recorded as an
    outdated secondary, so its return can never make a second primary."""
    for other in partners(group, name):
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
