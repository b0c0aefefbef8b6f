"""The auditors' pages: a run's report (HTML and PDF) and the index of all runs and drills.

Every role that may see runs (``failover.view_run``, helpdesk included) may read them.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from hosts.permissions import permission_or_403

from . import build as report
from .pdf import report_filename, report_pdf

VIEW_RUN = "failover.view_run"


@require_GET
@permission_or_403(VIEW_RUN)
def run_report(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "failover/report.html", {"report": report.run_report(run_id=pk)})


@require_GET
@permission_or_403(VIEW_RUN)
def run_report_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    data = report.run_report(run_id=pk)
    response = HttpResponse(report_pdf(report=data), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{report_filename(data)}"'
    return response


@require_GET
@permission_or_403(VIEW_RUN)
def report_index(request: HttpRequest) -> HttpResponse:
    index = report.report_index(kind=request.GET.get("kind", ""), page=request.GET.get("page"))
    return render(request, "failover/report_index.html", {"index": index})
