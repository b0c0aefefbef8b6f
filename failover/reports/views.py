"""The auditors' pages: a run's report (HTML and PDF) and the index of all runs and drills.

Every role that may see runs (``failover.view_run``, helpdesk included) may read them.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from failover.models import Run
from failover.runs.exclusion import may_mark, run_mark_for_reports
from hosts.permissions import permission_or_403

from . import build as report
from .exclusion import ExclusionForm
from .pdf import report_filename, report_pdf

VIEW_RUN = "failover.view_run"


@require_GET
@permission_or_403(VIEW_RUN)
def run_report(request: HttpRequest, pk: int) -> HttpResponse:
    return _report_page(request, pk)


def _report_page(request: HttpRequest, pk: int, form: ExclusionForm | None = None, status: int = 200):
    data = report.run_report(run_id=pk)
    if form is None and may_mark(request.user):
        form = ExclusionForm(initial={"report_exclusion": data.run.report_exclusion})
    return render(request, "failover/report.html", {"report": data, "exclusion_form": form}, status=status)


@require_POST
@permission_or_403(VIEW_RUN)
def run_exclusion(request: HttpRequest, pk: int) -> HttpResponse:
    """Mark the run as counted, an exercise or bad data (the MoD or a DR admin)."""
    if not may_mark(request.user):
        raise PermissionDenied("only the Manager on Duty or a DR admin marks runs for the reports")
    get_object_or_404(Run, pk=pk)
    form = ExclusionForm(request.POST)
    if not form.is_valid():
        return _report_page(request, pk, form, status=422)
    run_mark_for_reports(run_id=pk, exclusion=form.cleaned_data["report_exclusion"], user=request.user)
    return redirect("reports:run", pk=pk)


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
