"""Reads of the overview (sites, active runs, the last drill, capacity bars, readiness) and
of the incident list; a fixed number of queries each, whatever the size of the estate."""

from __future__ import annotations

import datetime as dt

from django.core.paginator import Page, Paginator
from django.db.models import Count, Q
from django.utils import timezone

from failover.choices import RunKindChoices
from failover.choices import RunStateChoices as R
from failover.models import Disaster, Run
from failover.readiness.selectors import readiness_latest
from failover.runs.sitestate import site_states
from hosts import selectors as estate
from hosts.models import Site

from .selectors import FINISHED_OK


def _with_progress(runs):
    return runs.annotate(total=Count("actions"), finished=Count("actions", filter=FINISHED_OK))


def overview_data() -> dict:
    sites = list(Site.objects.prefetch_related("hosts").order_by("code"))
    states = site_states(sites)
    active_runs = list(
        _with_progress(Run.objects.filter(state__in=R.active()))
        .select_related("lost_site", "target_site", "disaster")
        .defer("plan", "summary", "disaster__notes")
        .order_by("-created_at")
    )
    # A disaster is open while its site's services are not home again (not only while a
    # run is active: "No open disaster" beside a lost site was a lie).
    away = {s.moved_by.disaster_id: s for s in states if s.away and s.moved_by is not None}
    open_disasters = list(
        Disaster.objects.filter(pk__in=[pk for pk in away if pk is not None])
        .select_related("lost_site", "declared_by")
        .order_by("-declared_at")
    )
    for disaster in open_disasters:  # each with where its site stands and the run that says so
        disaster.site_state = away.get(disaster.pk)  # type: ignore[attr-defined]
    # A site moved away by a planned migration has no disaster, and is not in service either.
    away_undeclared = [
        s for s in states if s.away and s.moved_by is not None and s.moved_by.disaster_id is None
    ]
    last_drill = (
        _with_progress(Run.objects.filter(kind=RunKindChoices.DRILL))
        .select_related("lost_site", "target_site")
        .defer("plan")
        .order_by("-created_at")
        .first()
    )
    lost = [s.site.code for s in states if s.away]
    results = estate.capacity_report()
    bars = next((r for r in results if lost and r.lost_site == lost[0]), None) or next(
        (r for r in results if r.lost_site is None), None
    )
    now = timezone.now()
    for run in active_runs:
        run.percent = round(100 * run.finished / run.total) if run.total else 0
        run.deadline_seconds = (run.disaster.deadline - now).total_seconds() if run.disaster else None
    return {
        "site_states": states,
        "bars": bars,
        "active_runs": active_runs,
        "open_disasters": open_disasters,
        "away_undeclared": away_undeclared,
        "last_drill": last_drill,
        "readiness": readiness_latest(states),
    }


# -- incidents --------------------------------------------------------------------------------


def incident_page(
    *,
    kind: str = "",
    state: str = "",
    site: str = "",
    since: dt.date | None = None,
    until: dt.date | None = None,
    page: int | str | None = 1,
    per_page: int = 50,
) -> Page:
    """Every disaster, run and drill, newest first, in the spirit of the lws statusboard."""
    runs = (
        _with_progress(Run.objects.all())
        .select_related("disaster__declared_by", "created_by", "lost_site", "target_site")
        .defer("plan", "disaster__notes")
        .order_by("-created_at", "-pk")
    )
    if kind:
        runs = runs.filter(kind=kind)
    if state == "active":
        runs = runs.filter(state__in=R.active())
    elif state:
        runs = runs.filter(state=state)
    if site:
        runs = runs.filter(Q(lost_site__code=site) | Q(target_site__code=site))
    if since:
        runs = runs.filter(created_at__date__gte=since)
    if until:
        runs = runs.filter(created_at__date__lte=until)
    result = Paginator(runs, per_page).get_page(page)
    now = timezone.now()
    for run in result.object_list:
        run.duration_seconds = ((run.finished_at or now) - run.created_at).total_seconds()
        run.who = run.disaster.declared_by if run.disaster else run.created_by
    return result


def declare_sites() -> list[Site]:
    return list(Site.objects.order_by("code"))
