"""Marking a run as an exercise or as bad data, so the reports' figures leave it out
(issue 17 item 6). The Manager on Duty or a DR admin marks it, on the run's report page
(failover.reports) or in the admin; the run's log says who did and what the mark was."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils.translation import gettext as _

from failover.choices import ReportExclusionChoices
from failover.engine.journal import record_event
from failover.models import Run
from hosts.permissions import PERM_DECLARE, PERM_EDIT_INVENTORY

EVENT_KIND = "report-exclusion"


def may_mark(user) -> bool:
    """The Manager on Duty and the DR admin; not the helpdesk."""
    return user.is_active and (user.has_perm(PERM_DECLARE) or user.has_perm(PERM_EDIT_INVENTORY))


def run_mark_for_reports(*, run_id: int, exclusion: str, user) -> Run:
    """Set the run's mark and log it (one transaction); the same mark again changes nothing."""
    if not may_mark(user):
        raise PermissionDenied("only the Manager on Duty or a DR admin marks runs for the reports")
    label = ReportExclusionChoices(exclusion).label
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.report_exclusion != exclusion:
            run.report_exclusion = exclusion
            run.save(update_fields=["report_exclusion"])
            message = (
                _("Counted in the reports' figures again")
                if exclusion == ReportExclusionChoices.COUNTED
                else _("Left out of the reports' figures: %(mark)s") % {"mark": label}
            )
            record_event(run_id=run.pk, kind=EVENT_KIND, message=message, user=user, data={"mark": exclusion})
    return run
