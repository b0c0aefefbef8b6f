"""Reads the API and the metrics need beyond the existing selectors: readiness with the
replication of the DR groups, and the figures Prometheus scrapes."""

from __future__ import annotations

from django.db.models import Count

from failover.choices import RunKindChoices, RunStateChoices
from failover.models import Run, RunEvent
from failover.readiness.choices import SeverityChoices
from failover.readiness.selectors import readiness_groups, readiness_latest
from hosts.choices import ReplicationStateChoices
from hosts.models import DRGroup


def readiness_overview() -> dict:
    """Each site's newest readiness verdict with its findings (the readiness check of
    issue 6 item 3, run by Celery beat) and every DR group's last known replication."""
    return {
        "sites": [site.as_dict() for site in readiness_latest()],
        "groups": [
            {
                "name": g.name,
                "source_site": g.source_array.site.code,
                "target_site": g.target_array.site.code if g.target_array else None,
                "mode": g.mode,
                "replication_state": g.replication_state,
                "replication_lag_s": g.replication_lag_s,
                "state_checked_at": g.state_checked_at,
            }
            for g in readiness_groups()
        ],
    }


def metrics_snapshot() -> dict:
    """The figures of the Prometheus endpoint, read at scrape time (the database is the
    truth; a web process keeps no counters of its own, so every worker answers alike).

    ``action_failures`` counts the ``action_failed`` RunEvents, one per failed attempt: rows
    that are never rewritten, so the count only grows, as a Prometheus counter must (the
    Actions' own state goes back to pending on a retry)."""
    readiness = {}
    for site in readiness_latest():
        if site.checked and site.verdict is not None:
            findings = dict.fromkeys(SeverityChoices.values, 0)
            for finding in site.findings:
                findings[finding.severity] += 1
            readiness[site.site.code] = {
                "ready": site.ready,
                "checked_at": site.verdict.checked_at.timestamp(),
                "findings": findings,
            }
    last_duration: dict[str, float] = {}
    for kind in RunKindChoices.values:
        seconds = (
            Run.objects.filter(kind=kind, finished_at__isnull=False, summary__has_key="run_seconds")
            .order_by("-finished_at", "-pk")
            .values_list("summary__run_seconds", flat=True)
            .first()
        )
        if seconds is not None:
            last_duration[kind] = float(seconds)
    failures = dict(
        RunEvent.objects.filter(kind="action_failed", action__isnull=False)
        .values_list("action__kind")
        .annotate(n=Count("pk"))
        .order_by()
    )
    active = dict.fromkeys(RunKindChoices.values, 0)
    active.update(
        Run.objects.filter(state__in=RunStateChoices.active())
        .values_list("kind")
        .annotate(n=Count("pk"))
        .order_by()
    )
    groups = dict.fromkeys(ReplicationStateChoices.values, 0)
    groups.update(DRGroup.objects.values_list("replication_state").annotate(n=Count("pk")).order_by())
    return {
        "readiness": readiness,
        "run_duration_seconds": last_duration,
        "action_failures": failures,
        "runs_active": active,
        "dr_groups": groups,
    }
