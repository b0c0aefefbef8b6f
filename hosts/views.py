"""Estate pages: the dashboard and the memory-profile editor (HTMX inline edit)."""

from __future__ import annotations

import re

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.text import capfirst
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from drportal.http import HtmxHttpRequest

from . import selectors, services
from .models import MemoryProfile, VMAllocation
from .permissions import PERM_EDIT_INVENTORY, permission_or_403

VIEW_PERM = "hosts.view_host"
# ASCII digits only: int() also takes "5_12" and full-width digits, which nobody means.
ASCII_DIGITS_RE = re.compile(r"[0-9]+")


def _label(field: str) -> str:
    """A field's label as the form shows it ("Memory (MB)"), not its name in the code."""
    if field == "__all__":
        return ""
    model_field = VMAllocation._meta.get_field(field)
    return f"{capfirst(getattr(model_field, 'verbose_name', field))}: "


def _one_message(exc: ValidationError) -> str:
    """One message per field, led by the field's label."""
    details = exc.message_dict if hasattr(exc, "error_dict") else {"memory_mb": exc.messages}
    return "; ".join(f"{_label(field)}{msgs[0]}" for field, msgs in details.items())


@require_GET
@permission_or_403(VIEW_PERM)
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "hosts/dashboard.html", selectors.dashboard_data())


@require_GET
@permission_or_403(VIEW_PERM)
def profile_list(request: HtmxHttpRequest) -> HttpResponse:
    profiles = MemoryProfile.objects.select_related("lost_site").order_by("lost_site__code", "name")
    return render(request, "hosts/profile_list.html", {"profiles": profiles})


def _profile_context(profile: MemoryProfile) -> dict:
    report = {r.scenario: r for r in selectors.capacity_report()}
    return {
        "profile": profile,
        "rows": selectors.profile_rows(profile=profile),
        "result": report.get(profile.name),
    }


@require_GET
@vary_on_headers("HX-Request")
@permission_or_403(VIEW_PERM)
def profile_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    profile = get_object_or_404(MemoryProfile, pk=pk)
    return render(request, "hosts/profile_detail.html", _profile_context(profile))


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
@permission_or_403(PERM_EDIT_INVENTORY)
def allocation_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """GET: the row as a form. POST: save, or refuse with the reason (422, nothing saved).
    The response carries the row and, out of band, the profile's memory bars."""
    allocation = get_object_or_404(VMAllocation.objects.select_related("vm", "host", "profile"), pk=pk)
    if request.method == "GET":
        return render(request, "hosts/_allocation_row.html", {"row": allocation, "editing": True})

    error = None
    raw = request.POST.get("memory_mb", "").strip()
    if not ASCII_DIGITS_RE.fullmatch(raw):
        error = f"{_label('memory_mb')}{raw!r} is not a whole number of MB (digits 0-9 only)."
    else:
        try:
            allocation = services.profile_set_vm_memory(allocation_id=allocation.pk, memory_mb=int(raw))
        except ValidationError as exc:
            error = _one_message(exc)
            allocation.refresh_from_db()
    context = _profile_context(allocation.profile)
    context.update(
        {"row": allocation, "editing": error is not None, "error": error, "proposed": raw, "oob": True}
    )
    if not request.htmx:
        if error:
            messages.error(request, error)
        else:
            messages.success(request, f"{allocation.vm.name}: {allocation.memory_mb} MB saved.")
        response = render(request, "hosts/profile_detail.html", context)
    else:
        response = render(request, "hosts/_allocation_row.html", context)
    if error:
        response.status_code = 422
    return response
