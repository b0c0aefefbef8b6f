"""The readiness check: look at the estate, judge it, record a verdict per site, and
tell the MoD and DR admins when a verdict changes.

``readiness_check`` talks to every dom0 and target array over SSH *before* it opens a
transaction; the transaction that records the verdicts does no I/O and is short.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.db.models.functions import Coalesce
from django.utils import timezone

from drportal.twosite import site_status
from failover.choices import RunKindChoices, RunStateChoices
from failover.models import Run
from hosts.models import VM, DRGroup, Host, Site
from hosts.selectors import capacity_report

from .assess import CRITICAL, EstateFacts, Finding, GroupFact, assess, configs_to_check, portal_replication
from .choices import VerdictChoices
from .models import ReadinessCheck, ReadinessFinding, SiteVerdict
from .notify import readiness_notify
from .probe import EstateLook, look_at_estate

log = logging.getLogger(__name__)


@dataclass
class ReadinessResult:
    check_id: int
    verdicts: dict[str, str]  # site code -> ready / not-ready
    changed: list[str] = field(default_factory=list)  # sites whose verdict changed
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "check": self.check_id,
            "verdicts": dict(self.verdicts),
            "changed": list(self.changed),
            "seconds": round(self.seconds, 3),
        }


def readiness_check() -> ReadinessResult:
    """One pass over the whole estate (see the module docstring). Safe to run while a
    failover runs (it only reads the estate) and concurrently with itself (the recording
    is serialised; an older pass never overrides a newer one's verdict)."""
    started = timezone.now()
    facts, hosts, groups = _estate_facts()
    replicated = [g for g in groups if g.target_array_id is not None]
    look = look_at_estate(hosts=hosts, configs=configs_to_check(facts), groups=replicated)
    judged = assess(
        facts,
        look,
        now=started,
        rpo_s=settings.DRPORTAL_READINESS_RPO_S,
        drill_max_age_days=settings.DRPORTAL_READINESS_DRILL_MAX_AGE_DAYS,
    )
    portal = portal_replication(site_status(), max_lag_s=settings.DRPORTAL_STANDBY_MAX_LAG_S)
    for finding in portal:
        judged.setdefault(finding.site, []).insert(0, finding)
    result = _record(started=started, judged=judged, look=look, groups=replicated)
    log.info("readiness check %s: %s (%.1f s)", result.check_id, result.verdicts, result.seconds)
    return result


def _estate_facts() -> tuple[EstateFacts, list[Host], list[DRGroup]]:
    sites = list(Site.objects.order_by("code").values_list("code", flat=True))
    hosts = list(Host.objects.select_related("site").order_by("site__code", "name"))
    vms = list(VM.objects.select_related("home_host__site").prefetch_related("interfaces"))
    groups = list(DRGroup.objects.select_related("source_array__site", "target_array__site").order_by("name"))
    last_drill = dict(
        Run.objects.filter(kind=RunKindChoices.DRILL, state=RunStateChoices.SUCCEEDED)
        .values_list("lost_site__code")
        .annotate(last=Max(Coalesce("finished_at", "created_at")))
        .order_by()
    )
    facts = EstateFacts(
        sites=sites,
        host_site={h.name: h.site.code for h in hosts},
        host_bridges={h.name: list(h.bridges or ()) for h in hosts},
        vm_home_site={vm.name: vm.home_host.site.code for vm in vms},
        vm_config={vm.name: vm.config_path for vm in vms},
        vm_bridges={vm.name: frozenset(nic.bridge for nic in vm.interfaces.all()) for vm in vms},
        groups=[
            GroupFact(
                name=g.name,
                source_site=g.source_array.site.code,
                target_site=g.target_array.site.code if g.target_array else None,
                target_array=g.target_array.name if g.target_array else None,
                target_kind=g.target_array.kind if g.target_array else None,
            )
            for g in groups
        ],
        capacity=capacity_report(),
        last_drill=last_drill,
    )
    return facts, hosts, groups


def _record(
    *, started: dt.datetime, judged: dict[str, list[Finding]], look: EstateLook, groups: list[DRGroup]
) -> ReadinessResult:
    """Write the pass, its verdicts and findings, and the groups' replication state.

    Locks the Site rows (pk order) for the length of this short transaction, which holds
    no I/O: two passes finishing together then compare against each other's verdicts one
    after the other, so a change is recorded, and mailed, exactly once."""
    notify: list[int] = []
    result = ReadinessResult(check_id=0, verdicts={})
    with transaction.atomic():
        sites = list(Site.objects.select_for_update().order_by("pk"))
        now = timezone.now()
        check = ReadinessCheck.objects.create(started_at=started, finished_at=now)
        result.check_id, result.seconds = check.pk, (now - started).total_seconds()
        for site in sorted(sites, key=lambda s: s.code):
            findings = judged.get(site.code, [])
            verdict = (
                VerdictChoices.NOT_READY
                if any(f.severity == CRITICAL for f in findings)
                else VerdictChoices.READY
            )
            previous = (
                SiteVerdict.objects.filter(site=site)
                .order_by("-checked_at", "-pk")
                .only("verdict", "checked_at")
                .first()
            )
            if previous is not None and previous.checked_at > started:
                changed = False  # a newer pass has spoken already; this one is only history
            else:
                changed = previous is None or previous.verdict != verdict
            row = SiteVerdict.objects.create(
                readiness_check=check, site=site, verdict=verdict, checked_at=started, changed=changed
            )
            ReadinessFinding.objects.bulk_create(
                ReadinessFinding(
                    verdict=row,
                    severity=f.severity,
                    code=f.code,
                    subject=f.subject[:200],
                    message=f.message,
                    fix=f.fix,
                )
                for f in findings
            )
            result.verdicts[site.code] = verdict
            # A site that is ready from its first check on is no news; anything else is.
            if changed and not (previous is None and verdict == VerdictChoices.READY):
                notify.append(row.pk)
                result.changed.append(site.code)
        _groups_update(look=look, groups=groups, at=started)
        _prune(now=now)
        if notify:
            transaction.on_commit(lambda: readiness_notify(verdict_ids=notify))
    return result


def _groups_update(*, look: EstateLook, groups: list[DRGroup], at: dt.datetime) -> None:
    """The replication state and lag as the target arrays reported them. A group whose
    array did not answer keeps its last known state (and its older state_checked_at)."""
    seen = []
    for group in groups:
        array = look.arrays.get(group.target_array.name)
        status = array.groups.get(group.name) if array is not None and not array.problem else None
        if status is None:
            continue
        group.replication_state = status.replication
        group.replication_lag_s = status.lag_seconds
        group.state_checked_at = at
        seen.append(group)
    DRGroup.objects.bulk_update(
        seen, ["replication_state", "replication_lag_s", "state_checked_at"], batch_size=500
    )


def _prune(*, now: dt.datetime) -> None:
    """Passes in which nothing changed are history nobody reads after a while; the changes
    (when a site turned bad or recovered) are kept for the auditors."""
    cutoff = now - dt.timedelta(days=settings.DRPORTAL_READINESS_KEEP_DAYS)
    ReadinessCheck.objects.filter(started_at__lt=cutoff).exclude(verdicts__changed=True).delete()
