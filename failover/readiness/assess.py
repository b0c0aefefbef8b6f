"""The judgement of the readiness check: from inventory facts, the capacity what-ifs and
the live look to findings per site. Pure Python, no database, no network.

A site's verdict answers "could this site be lost today?". So a finding belongs to the
site whose loss it would hurt: a missing config file on xenka01 for a VM that would start
there when WSL is lost is WSL's problem; xenka01 being unreachable hurts every other
site's failover (critical there) and is only worth a warning for KA itself.

Longer than 400 lines on purpose: it is one table of rules, a few lines per finding, and a
verdict is only understood with all of them in view.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from hosts.capacity import CapacityResult
from hosts.drivers.storage import GroupStatus

from .choices import FindingCodes as C
from .choices import SeverityChoices
from .probe import HOST_KEY, TOOLSTACK, UNREACHABLE, ArrayLook, EstateLook, HostLook

CRITICAL = SeverityChoices.CRITICAL.value
WARNING = SeverityChoices.WARNING.value

# Replication states that make a failover use stale or unusable data.
BAD_REPLICATION = ("broken", "none", "suspended", "unknown")


@dataclass(frozen=True)
class Finding:
    site: str
    severity: str
    code: str
    subject: str
    message: str
    fix: str = ""


@dataclass(frozen=True)
class GroupFact:
    name: str
    source_site: str
    target_site: str | None
    target_array: str | None
    target_kind: str | None


@dataclass
class EstateFacts:
    """The inventory as the judgement needs it (built by ``services`` in a few queries)."""

    sites: list[str]
    host_site: dict[str, str]
    host_bridges: dict[str, list[str]]  # what the inventory says
    vm_home_site: dict[str, str]
    vm_config: dict[str, str]
    vm_bridges: dict[str, frozenset[str]]
    groups: list[GroupFact]
    capacity: list[CapacityResult]
    last_drill: dict[str, dt.datetime | None] = field(default_factory=dict)


def _names(items, limit: int = 8) -> str:
    items = list(items)
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def starts(facts: EstateFacts) -> dict[str, dict[str, list[str]]]:
    """{lost site: {surviving host: [VMs that would be started there]}}, from each site's
    what-if. VMs homed at a surviving site run there already; only the lost site's start."""
    out: dict[str, dict[str, list[str]]] = {}
    for result in facts.capacity:
        if result.lost_site is None:
            continue
        per_host: dict[str, list[str]] = defaultdict(list)
        for host in result.hosts:
            for vm, _mb in host.placed:
                if facts.vm_home_site.get(vm) == result.lost_site:
                    per_host[host.host].append(vm)
        out[result.lost_site] = dict(per_host)
    return out


def configs_to_check(facts: EstateFacts) -> dict[str, list[str]]:
    """{host: [config paths that must be there]}, over every site's what-if."""
    paths: dict[str, set[str]] = defaultdict(set)
    for per_host in starts(facts).values():
        for host, vms in per_host.items():
            paths[host].update(facts.vm_config[vm] for vm in vms if vm in facts.vm_config)
    return {host: sorted(p) for host, p in paths.items()}


def assess(
    facts: EstateFacts,
    look: EstateLook,
    *,
    now: dt.datetime,
    rpo_s: float,
    drill_max_age_days: int,
) -> dict[str, list[Finding]]:
    """Findings per site, critical ones first (a site with one is not ready)."""
    findings: list[Finding] = []
    findings += _capacity(facts)
    findings += _hosts(facts, look)
    findings += _configs_and_bridges(facts, look)
    findings += _groups(facts, look, rpo_s=rpo_s)
    findings += _drills(facts, now=now, max_age_days=drill_max_age_days)
    by_site: dict[str, list[Finding]] = {site: [] for site in facts.sites}
    for finding in findings:
        by_site.setdefault(finding.site, []).append(finding)
    rank = {CRITICAL: 0, WARNING: 1}
    return {site: sorted(items, key=lambda f: rank[f.severity]) for site, items in by_site.items()}


def _capacity(facts: EstateFacts) -> list[Finding]:
    out = []
    for r in facts.capacity:
        if r.lost_site is None:
            for h in r.hosts:
                if not h.fits:
                    out.append(
                        Finding(
                            h.site,
                            WARNING,
                            C.NORMAL_CAPACITY,
                            h.host,
                            f"{h.host} does not fit in normal operation ({r.scenario}): "
                            f"{h.shortfall_mb} MB more than its RAM, so VMs or dom0 would swap",
                            f"Lower memory in the '{r.scenario}' profile or move a VM off {h.host}.",
                        )
                    )
            continue
        site = r.lost_site
        if not r.fits and (r.shortfall_mb or any(not h.fits for h in r.hosts)):
            short = _names(f"{h.host} {h.shortfall_mb} MB" for h in r.hosts if not h.fits)
            out.append(
                Finding(
                    site,
                    CRITICAL,
                    C.CAPACITY,
                    r.scenario,
                    f"Losing {site} does not fit in RAM without swapping ('{r.scenario}'): "
                    f"short {short or f'{r.shortfall_mb} MB'}",
                    f"Lower DR memory in the '{r.scenario}' profile"
                    + (f", or plan to shed {_names(r.shed)}" if r.shed else "")
                    + ".",
                )
            )
        for vm in r.unplaced:
            out.append(
                Finding(
                    site,
                    CRITICAL,
                    C.UNPLACED,
                    vm,
                    f"{vm} has no place if {site} is lost: {r.unplaced_reasons.get(vm, 'no host fits')}",
                    "Free memory or add the bridge it needs on a surviving host, or lower its DR memory.",
                )
            )
        for u in r.unrecoverable:
            out.append(
                Finding(
                    site,
                    CRITICAL,
                    C.UNRECOVERABLE,
                    u.vm,
                    f"{u.vm} cannot be recovered if {site} is lost: {u.reason}",
                    "Replicate its DR group to an array at another site, or record that the business "
                    "accepts losing it with the site.",
                )
            )
    return out


_HOST_WORDS = {
    UNREACHABLE: (
        C.UNREACHABLE,
        "{host} ({own}) is unreachable: {error}",
        "Bring {host} up or repair the network to it.",
    ),
    HOST_KEY: (
        C.HOST_KEY,
        "{host} ({own}) presented a host key other than the pinned one: {error}",
        "Compare the key on {host}'s console. If it was re-installed on purpose, enrol it again to pin "
        "the new key; drportal refuses to talk to it until then.",
    ),
    TOOLSTACK: (
        C.TOOLSTACK,
        "{host} ({own}) answers SSH but its Xen toolstack does not: {error}",
        "Repair the toolstack on {host} (xl info must answer).",
    ),
}


def _hosts(facts: EstateFacts, look: EstateLook) -> list[Finding]:
    """A dom0 that cannot be used is critical for every site whose what-if relies on it
    (every other site's), and a warning for its own."""
    out = []
    for name, hl in sorted(look.hosts.items()):
        if not hl.problem:
            continue
        own = facts.host_site[name]
        code, text, fix = _HOST_WORDS[hl.problem]
        message = text.format(host=name, own=own, error=hl.error)
        for site in facts.sites:
            if site == own:
                extra = (
                    f" If {own} is down, this may be the disaster: declare it."
                    if hl.problem == UNREACHABLE
                    else ""
                )
                out.append(Finding(site, WARNING, code, name, message, fix.format(host=name) + extra))
            else:
                out.append(
                    Finding(
                        site,
                        CRITICAL,
                        code,
                        name,
                        message,
                        fix.format(host=name) + f" A failover of {site} needs it.",
                    )
                )
    return out


def _configs_and_bridges(facts: EstateFacts, look: EstateLook) -> list[Finding]:
    out = []
    needed_somewhere: dict[str, set[str]] = defaultdict(set)
    for site, per_host in sorted(starts(facts).items()):
        for host, vms in sorted(per_host.items()):
            hl: HostLook | None = look.hosts.get(host)
            if hl is None or not hl.reachable:
                continue  # already critical for this site (see _hosts)
            if hl.files_error:
                out.append(
                    Finding(
                        site,
                        CRITICAL,
                        C.CONFIG_UNREADABLE,
                        host,
                        f"Cannot check the config files on {host}: {hl.files_error}",
                        f"Look at {host}: `ls -d` of the config files must answer.",
                    )
                )
            else:
                missing = [
                    (vm, facts.vm_config[vm]) for vm in vms if facts.vm_config.get(vm) in hl.missing_files
                ]
                if missing:
                    out.append(
                        Finding(
                            site,
                            CRITICAL,
                            C.CONFIG_MISSING,
                            host,
                            f"{len(missing)} config file(s) missing on {host} for VMs that would start there "
                            f"if {site} is lost: " + _names(f"{vm} ({path})" for vm, path in missing),
                            f"Copy them to {host} (the same path as on their home dom0).",
                        )
                    )
            need_by_bridge: dict[str, list[str]] = defaultdict(list)
            for vm in vms:
                for bridge in facts.vm_bridges.get(vm, ()):
                    need_by_bridge[bridge].append(vm)
                    needed_somewhere[host].add(bridge)
            if hl.bridges is None:
                out.append(
                    Finding(
                        site,
                        CRITICAL,
                        C.BRIDGE_MISSING,
                        host,
                        f"Cannot read the bridges of {host} (brctl show): {hl.bridges_error}",
                        f"Look at {host}: `brctl show` must answer.",
                    )
                )
                continue
            lacking = sorted(set(need_by_bridge) - set(hl.bridges))
            if lacking:
                vms_hit = sorted({vm for b in lacking for vm in need_by_bridge[b]})
                out.append(
                    Finding(
                        site,
                        CRITICAL,
                        C.BRIDGE_MISSING,
                        host,
                        f"{host} lacks bridge(s) {', '.join(lacking)} that {_names(vms_hit)} would need "
                        f"if {site} is lost",
                        f"Create {', '.join(lacking)} on {host}: every dom0 uses the same bridge names.",
                    )
                )
    # Bridges the inventory promises but the host does not have, not already reported.
    for name, hl in sorted(look.hosts.items()):
        if not hl.reachable or hl.bridges is None:
            continue
        lacking = sorted(set(facts.host_bridges.get(name, ())) - set(hl.bridges) - needed_somewhere[name])
        if lacking:
            out.append(
                Finding(
                    facts.host_site[name],
                    WARNING,
                    C.BRIDGE_MISSING,
                    name,
                    f"{name} lacks bridge(s) {', '.join(lacking)} that the inventory lists",
                    f"Create them on {name}, or correct the inventory.",
                )
            )
    return out


def _groups(facts: EstateFacts, look: EstateLook, *, rpo_s: float) -> list[Finding]:
    out = []
    by_array: dict[tuple[str, str], list[GroupFact]] = defaultdict(list)
    for g in facts.groups:
        if g.target_array is not None:
            by_array[(g.source_site, g.target_array)].append(g)
    for (site, array), groups in sorted(by_array.items()):
        al: ArrayLook | None = look.arrays.get(array)
        names = [g.name for g in groups]
        if al is None or al.problem:
            host_key = al is not None and al.problem == HOST_KEY
            out.append(
                Finding(
                    site,
                    CRITICAL,
                    C.HOST_KEY if host_key else C.GROUPS_UNREADABLE,
                    array,
                    f"{array} did not answer, so the replication of {_names(names)} is unknown: "
                    f"{al.error if al else 'not asked'}",
                    (
                        f"Compare {array}'s key on its console and enrol it again if it changed on purpose."
                        if host_key
                        else f"Restore the management connection to {array}."
                    ),
                )
            )
            continue
        if groups[0].target_kind == "manual":
            out.append(
                Finding(
                    site,
                    WARNING,
                    C.GROUPS_MANUAL,
                    array,
                    f"{array} is worked by hand: drportal cannot see the replication of {_names(names)}",
                    "Ask the storage team to confirm the mirrors are consistent and within the RPO.",
                )
            )
            continue
        for g in groups:
            if g.name in al.group_errors:
                out.append(
                    Finding(
                        site,
                        CRITICAL,
                        C.REPLICATION,
                        g.name,
                        f"Cannot read DR group {g.name} on {array}: {al.group_errors[g.name]}",
                        f"Check that the DR group exists on {array} under this name.",
                    )
                )
                continue
            status = al.groups.get(g.name)
            if status is not None:
                out += _group_finding(site, array, status, rpo_s=rpo_s)
    return out


def _group_finding(site: str, array: str, status: GroupStatus, *, rpo_s: float) -> list[Finding]:
    name = status.group
    if status.role == "primary":
        return [
            Finding(
                site,
                WARNING,
                C.FAILED_OVER,
                name,
                f"DR group {name} is failed over already: its copy on {array} is the source "
                f"({status.detail})",
                "Fail back, or reverse the replication, before relying on this copy as a replica again.",
            )
        ]
    if status.replication in BAD_REPLICATION:
        return [
            Finding(
                site,
                CRITICAL,
                C.REPLICATION,
                name,
                f"DR group {name}: replication {status.replication} on {array} ({status.detail}); "
                f"a failover of {site} would use stale or unusable data",
                "Ask the storage team to repair or resume the replication, then let it resynchronise.",
            )
        ]
    if status.replication == "syncing":
        return [
            Finding(
                site,
                WARNING,
                C.REPLICATION,
                name,
                f"DR group {name} is still synchronising on {array} ({status.detail}); "
                "a failover now would use an incomplete copy",
                "Wait for the copy to finish; the next check looks again.",
            )
        ]
    if status.lag_seconds is not None and status.lag_seconds > rpo_s:
        return [
            Finding(
                site,
                CRITICAL,
                C.RPO,
                name,
                f"DR group {name} lags {status.lag_seconds:.0f} s behind on {array}, more than the "
                f"recovery point objective of {rpo_s:.0f} s",
                "Check the replication link's bandwidth and the write load of the group's VMs.",
            )
        ]
    return []


def _drills(facts: EstateFacts, *, now: dt.datetime, max_age_days: int) -> list[Finding]:
    out = []
    for site in facts.sites:
        last = facts.last_drill.get(site)
        fix = f"Run a drill: python manage.py drill --site {site}"
        if last is None:
            out.append(
                Finding(
                    site,
                    WARNING,
                    C.NEVER_DRILLED,
                    site,
                    f"{site} has never been drilled: its failover is untested",
                    fix,
                )
            )
        elif (now - last).days > max_age_days:
            out.append(
                Finding(
                    site,
                    WARNING,
                    C.DRILL_AGE,
                    site,
                    f"The last successful drill of {site} was {(now - last).days} days ago "
                    f"({last:%Y-%m-%d}), more than {max_age_days} days",
                    fix,
                )
            )
    return out


def portal_replication(status, *, max_lag_s: float) -> list[Finding]:
    """The portal's own replication (issue 14): on a two-site primary, every fault of the
    stream to the standby portal is critical for this site (losing it now would lose the
    portal's data, or leave the other site no portal at all). ``status`` is a
    drportal.twosite.SiteStatus; a standby or standalone portal has nothing to add here."""
    if status.mode != "primary":
        return []
    peer = status.peer_site or "the other site"
    rejoin = (
        f"on {peer}'s database host: scripts/rejoin-as-standby --pgdata <PGDATA> "
        f'--source "host=<{status.site}\'s database host> port=<port> user=postgres" --slot drportal_standby'
    )
    fixes: list[tuple[str, str]] = [
        (
            "no standby connected",
            f"start {peer}'s PostgreSQL; if it does not stream, rejoin it as the standby ({rejoin})",
        ),
        (
            "is missing",
            "on this site's PostgreSQL: SELECT pg_create_physical_replication_slot('drportal_standby', true); then restart the standby",
        ),
        ("lost its WAL", f"rebuild the standby from a new base backup ({rejoin} --discard-old)"),
        (
            "also answers as a primary",
            f"stop {peer}'s portal processes and rejoin its database as this site's standby ({rejoin})",
        ),
    ]
    problems = list(status.problems)
    replicas = list(status.replicas)
    if replicas and not any(r["state"] == "streaming" for r in replicas):
        states = ", ".join(f"{r['name'] or r['addr']}: {r['state']}" for r in replicas)
        problems.append(f"the standby is connected but not streaming ({states})")
        fixes.append(
            (
                "not streaming",
                f"look at {peer}'s PostgreSQL log; if it cannot catch up, rejoin it ({rejoin})",
            ),
        )
    lagging = [r for r in replicas if (r["lag_s"] or 0.0) > max_lag_s]
    for r in lagging:
        problems.append(
            f"the standby {r['name'] or r['addr']} replays {r['lag_s']:.0f} s behind (more than "
            f"DRPORTAL_STANDBY_MAX_LAG_S, {max_lag_s:.0f} s): losing {status.site} now loses that much of the portal's data"
        )
    fixes.append(
        (
            "replays",
            f"look at the link to {peer} and at the standby's disk and CPU; the lag falls when it catches up",
        ),
    )
    findings = []
    for problem in problems:
        fix = next(
            (f for key, f in fixes if key in problem),
            "see the site status page (/site/) and docs/two-sites.md",
        )
        findings.append(
            Finding(
                status.site,
                CRITICAL,
                C.PORTAL_REPLICATION,
                "portal database",
                f"portal replication: {problem}",
                fix,
            )
        )
    return findings
