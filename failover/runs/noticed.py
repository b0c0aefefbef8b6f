"""The one rule for a declaration's "noticed at" (``detected_at``): the deadline and the
reports count from it, so an implausible time is refused before anything is written.

  - not in the future, beyond a small clock skew (CLOCK_SKEW);
  - not before the site's last known-good state: the end of the newest succeeded run that
    ran services at the site (a failover or migration to it, a failback home to it) or
    rehearsed its loss while it stayed in service (a drill of it). Readiness checks are not
    used: runs may not import readiness (the import contract), and a run's end is a fact
    the portal wrote, a readiness verdict only an opinion of the moment;
  - not more than DRPORTAL_DETECTED_MAX_AGE_H hours ago, unless the Manager on Duty
    confirms the time ("I confirm this time").

``runs.failover.check_declaration`` applies it, so the board's form, the API and the
``failover`` command share it.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Max, Q
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from failover.choices import RunKindChoices as K
from failover.choices import RunStateChoices as R
from failover.models import Run
from hosts.models import Site

# How far a browser's or a client's clock may run ahead of the portal's (and how much a
# time typed to the minute may fall before the last known-good instant).
CLOCK_SKEW = dt.timedelta(minutes=5)


def last_known_good(site: Site) -> dt.datetime | None:
    """The end of the newest succeeded run that had the site in service (see the module)."""
    ran_there = Q(target_site=site) | Q(kind=K.DRILL, lost_site=site)
    return Run.objects.filter(ran_there, state=R.SUCCEEDED, finished_at__isnull=False).aggregate(
        at=Max("finished_at")
    )["at"]


def _when(moment: dt.datetime) -> str:
    return formats.date_format(timezone.localtime(moment), "DATETIME_FORMAT")


def detected_at_problem(*, site: Site | None, detected_at: dt.datetime, confirmed: bool) -> str | None:
    """Why ``detected_at`` cannot be the time the loss of ``site`` was noticed, or None.
    The message starts with the field's label."""
    label = _("Noticed at")
    now = timezone.now()
    if detected_at > now + CLOCK_SKEW:
        return _("%(label)s: %(when)s is in the future; give the time the event was noticed.") % {
            "label": label,
            "when": _when(detected_at),
        }
    good = last_known_good(site) if site is not None else None
    if site is not None and good is not None and detected_at < good - CLOCK_SKEW:
        return _(
            "%(label)s: %(when)s is before %(site)s was last known good (run ended %(good)s); "
            "the loss cannot have been noticed before that."
        ) % {"label": label, "when": _when(detected_at), "site": site.code, "good": _when(good)}
    hours = settings.DRPORTAL_DETECTED_MAX_AGE_H
    if detected_at < now - dt.timedelta(hours=hours) and not confirmed:
        return _(
            "%(label)s: %(when)s is more than %(hours)s h ago; check it, and if it is right "
            "tick “I confirm this time”."
        ) % {"label": label, "when": _when(detected_at), "hours": f"{hours:g}"}
    return None
