"""Reads of the readiness verdicts for the overview, the readiness page and the API.

Each selector runs a fixed number of queries whatever the number of sites, checks and
findings (tests bound them with django_assert_max_num_queries).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import OuterRef, Subquery
from django.utils.translation import gettext as _

from failover.choices import RunStateChoices as R
from failover.runs.sitestate import FAILING_BACK, LOST, SiteState, site_states
from hosts.models import DRGroup, Site

from .choices import SeverityChoices, VerdictChoices
from .models import ReadinessFinding, SiteVerdict


@dataclass
class SiteReadiness:
    """A site's newest verdict (None before the first check) and since when it holds."""

    site: Site
    verdict: SiteVerdict | None
    since: dt.datetime | None
    where: SiteState | None = None  # where the site stands in a disaster's life

    @property
    def away(self) -> bool:
        """The site's services are not (all) at home: "could it be lost today?" has no
        answer, so no verdict is shown for it, whatever the last check said."""
        return self.where is not None and self.where.away

    @property
    def checked(self) -> bool:
        return self.verdict is not None

    @property
    def ready(self) -> bool:
        return not self.away and self.verdict is not None and self.verdict.ready

    @property
    def state(self) -> str:
        if self.away:
            return "away"
        return self.verdict.verdict if self.verdict else "unchecked"

    @property
    def label(self) -> str:
        if self.where is not None and self.where.away:
            return away_label(self.where)
        return self.verdict.get_verdict_display() if self.verdict else _("Not checked yet")

    @property
    def tone(self) -> str:
        return "warn" if self.away else VerdictChoices.tone(self.state)

    @property
    def findings(self) -> list[ReadinessFinding]:
        return list(self.verdict.findings.all()) if self.verdict else []

    @property
    def critical(self) -> list[ReadinessFinding]:
        return [f for f in self.findings if f.severity == SeverityChoices.CRITICAL]

    @property
    def warnings(self) -> list[ReadinessFinding]:
        return [f for f in self.findings if f.severity == SeverityChoices.WARNING]

    def as_dict(self) -> dict:
        return {
            "site": self.site.code,
            "name": self.site.name,
            "verdict": self.verdict.verdict if self.verdict else None,
            "ready": self.ready,
            "site_state": self.where.state if self.where else None,
            "away_run": self.where.run.pk if self.where and self.where.away and self.where.run else None,
            "checked_at": self.verdict.checked_at.isoformat() if self.verdict else None,
            "since": self.since.isoformat() if self.since else None,
            "findings": [
                {
                    "severity": f.severity,
                    "code": f.code,
                    "subject": f.subject,
                    "message": f.message,
                    "fix": f.fix,
                }
                for f in self.findings
            ],
        }


def away_label(where: SiteState) -> str:
    """What is true of a site whose services are away, in readiness's words."""
    run, moved = where.run, where.moved_by
    words = {
        "site": where.site.code,
        "other": moved.target_site.code if moved else "",
        "id": run.pk if run else "",
        "state": run.get_state_display().lower() if run else "",
    }
    if where.state == LOST:
        if run is not None and run.state in R.active():
            return _("%(site)s is lost: failing over to %(other)s, run %(id)s (%(state)s)") % words
        return _("%(site)s is lost: its failover to %(other)s stopped, run %(id)s (%(state)s)") % words
    if where.state == FAILING_BACK:
        return _("%(site)s is failing back from %(other)s, run %(id)s (%(state)s)") % words
    return _("%(site)s is lost; its services run at %(other)s since run %(id)s") % words


def readiness_latest(states: list[SiteState] | None = None) -> list[SiteReadiness]:
    """Every site with its newest verdict and findings and where it stands, in site
    order (four queries; three when the caller has the site states already)."""
    newest = SiteVerdict.objects.filter(site=OuterRef("pk")).order_by("-checked_at", "-pk").values("pk")[:1]
    sites = list(Site.objects.order_by("code").annotate(verdict_id=Subquery(newest)))
    if states is None:
        states = site_states(list[Site](sites))
    where = {s.site.pk: s for s in states}
    since = (
        SiteVerdict.objects.filter(
            site=OuterRef("site"), changed=True, checked_at__lte=OuterRef("checked_at")
        )
        .order_by("-checked_at", "-pk")
        .values("checked_at")[:1]
    )
    verdicts = {
        v.pk: v
        for v in SiteVerdict.objects.filter(pk__in=[s.verdict_id for s in sites if s.verdict_id])
        .annotate(since=Subquery(since))
        .prefetch_related("findings")
    }
    out = []
    for site in sites:
        verdict = verdicts.get(site.verdict_id)
        out.append(
            SiteReadiness(
                site=site, verdict=verdict, since=verdict.since if verdict else None, where=where.get(site.pk)
            )
        )
    return out


def readiness_changes(*, limit: int = 50) -> list[SiteVerdict]:
    """When sites turned bad or recovered, newest first (with the findings of that check)."""
    return list(
        SiteVerdict.objects.filter(changed=True)
        .select_related("site")
        .prefetch_related("findings")
        .order_by("-checked_at", "-pk")[:limit]
    )


def readiness_groups() -> list[DRGroup]:
    """Every DR group with its last known replication state and lag."""
    return list(DRGroup.objects.select_related("source_array__site", "target_array__site").order_by("name"))
