"""The readiness page: each site's verdict with its reasons, the DR groups' replication,
and when verdicts changed. Read only; the check itself runs on Celery beat."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from hosts.permissions import permission_or_403

from . import selectors

VIEW_RUN = "failover.view_run"


@require_GET
@permission_or_403(VIEW_RUN)
def readiness(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "failover/readiness.html",
        {
            "sites": selectors.readiness_latest(),
            "changes": selectors.readiness_changes(limit=30),
            "groups": selectors.readiness_groups(),
            "interval_s": settings.DRPORTAL_READINESS_INTERVAL_S,
            "rpo_s": settings.DRPORTAL_READINESS_RPO_S,
        },
    )
