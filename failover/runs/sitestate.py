"""Where each site stands in the life of a disaster, derived in one place from the runs
that moved its services (failovers and planned migrations of it, the failbacks that
reverse them), so the overview, the board, readiness, the declare preview and the drills
page say the same thing:

  in-service    nothing has moved its services away (or never did)
  lost          a failover of it is running, or stopped before it finished
  failed-over   its services run at the other site (the failover or migration succeeded)
  failing-back  a failback home is running
  home-again    the failback succeeded: in service again

Each state comes with the run that says so. Drills do not change a site's state.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _

from failover.choices import RunKindChoices as K
from failover.choices import RunStateChoices as R
from failover.models import Run
from hosts.models import Site

IN_SERVICE = "in-service"
LOST = "lost"
FAILED_OVER = "failed-over"
FAILING_BACK = "failing-back"
HOME_AGAIN = "home-again"

# The states in which a site's services are not (all) at home: no drill of it, no new
# declaration, its disaster is open, its readiness verdict is moot.
AWAY = (LOST, FAILED_OVER, FAILING_BACK)

MOVES = (K.FAILOVER, K.MIGRATION)  # the runs that move a site's services away


@dataclass
class SiteState:
    site: Site
    state: str  # one of the five above
    label: str
    run: Run | None = None  # the run that says so
    moved_by: Run | None = None  # the failover or migration that moved the services away
    detail: str = ""  # what else is true (an aborted failback and what to do)

    @property
    def away(self) -> bool:
        return self.state in AWAY


def _derive(site: Site, moves: list[Run], failbacks: dict[int, Run]) -> SiteState:
    move = next((r for r in moves if r.lost_site_id == site.pk), None)
    if move is None:
        return SiteState(site, IN_SERVICE, _("In service"))
    target = move.target_site.code
    ids = {"id": move.pk, "site": target}
    if move.state in R.active():
        label = _("Lost — failing over to %(site)s (run %(id)s, %(state)s)") % {
            **ids,
            "state": move.get_state_display().lower(),
        }
        return SiteState(site, LOST, label, move, move)
    if move.state != R.SUCCEEDED:
        label = _("Lost — failover to %(site)s stopped: run %(id)s %(state)s") % {
            **ids,
            "state": move.get_state_display().lower(),
        }
        return SiteState(site, LOST, label, move, move)
    back = failbacks.get(move.pk)
    if back is not None and back.state in R.active():
        label = _("Failing back from %(site)s (run %(id)s, %(state)s)") % {
            "site": target,
            "id": back.pk,
            "state": back.get_state_display().lower(),
        }
        return SiteState(site, FAILING_BACK, label, back, move)
    if back is not None and back.state == R.SUCCEEDED:
        label = _("In service — home again since failback run %(id)s") % {"id": back.pk}
        return SiteState(site, HOME_AGAIN, label, back, move)
    label = _("Failed over to %(site)s by run %(id)s — its services run there") % ids
    state = SiteState(site, FAILED_OVER, label, move, move)
    if back is not None:  # the newest failback was aborted or failed
        state.detail = _(
            "Failback run %(id)s %(state)s: fail back again from run %(move)s when the cause is fixed."
        ) % {"id": back.pk, "state": back.get_state_display().lower(), "move": move.pk}
    return state


def site_states(sites: list[Site] | None = None) -> list[SiteState]:
    """Every site (or ``sites``) with its state, in two queries whatever the history."""
    if sites is None:
        sites = list(Site.objects.order_by("code"))
    runs = list(
        Run.objects.filter(kind__in=(*MOVES, K.FAILBACK))
        .select_related("target_site")
        .only("pk", "kind", "state", "lost_site_id", "target_site__code", "parent_id", "disaster_id")
        .order_by("-created_at", "-pk")
    )
    moves = [r for r in runs if r.kind in MOVES]
    failbacks: dict[int, Run] = {}
    for r in runs:  # newest first: the newest failback of each move
        if r.kind == K.FAILBACK and r.parent_id is not None:
            failbacks.setdefault(r.parent_id, r)
    return [_derive(site, moves, failbacks) for site in sites]


def site_state(code: str) -> SiteState:
    """The state of the site ``code`` (Site.DoesNotExist if there is none)."""
    return site_state_of(Site.objects.get(code=code))


def site_state_of(site: Site) -> SiteState:
    return site_states([site])[0]
