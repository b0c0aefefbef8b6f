"""The two-site pages: /site/ (this portal's mode, lag, epoch, the runbook link) and
/site/take-over/ (the Manager on Duty makes this standby the primary: drportal/takeover.py)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from hosts.permissions import PERM_DECLARE, permission_or_403

from .models import Epoch
from .takeover import TakeOverRefused, expected_confirmation, take_over
from .twosite import STANDBY, site_status


def site_page(request):
    return render(
        request,
        "drportal/site.html",
        {"status": site_status(), "epochs": Epoch.objects.select_related("started_by")[:20]},
    )


class TakeOverForm(forms.Form):
    confirmation = forms.CharField(
        label=gettext_lazy("Type the confirmation"),
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    override_reason = forms.CharField(
        label=gettext_lazy("Override reason (only if the other site's database still answers as a primary)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    then = forms.ChoiceField(
        choices=(("site", "site"), ("declare", "declare")), required=False, widget=forms.HiddenInput
    )


def take_over_context(request, form: TakeOverForm | None = None, *, then: str = "site") -> dict:
    """What the take-over form needs (also drawn on the declare page of a standby)."""
    status = site_status()
    peer = status.peer_site or "PEER"
    return {
        "status": status,
        "take_over_form": form or TakeOverForm(initial={"then": then}),
        "expected_confirmation": expected_confirmation(peer),
        "peer": peer,
        "may_take_over": status.mode == STANDBY,
    }


@require_http_methods(["GET", "POST"])
@permission_or_403(PERM_DECLARE)
def take_over_page(request) -> HttpResponse:
    if request.method == "GET":
        return render(
            request,
            "drportal/take_over.html",
            take_over_context(request, then=request.GET.get("then", "site")),
        )
    form = TakeOverForm(request.POST)
    form.is_valid()
    data = form.cleaned_data
    try:
        result = take_over(request.user, data.get("confirmation", ""), data.get("override_reason", ""))
    except TakeOverRefused as exc:
        form.add_error(exc.field or None, str(exc))
        return render(request, "drportal/take_over.html", take_over_context(request, form), status=422)
    messages.success(
        request,
        _(
            "Taken over: %(site)s's portal is the primary now (epoch %(epoch)s). Declare the disaster of %(peer)s next."
        )
        % {"site": result.epoch.site, "epoch": result.epoch.number, "peer": site_status().peer_site},
    )
    if data.get("then") == "declare":
        return redirect(f"{reverse('declare')}?lost_site={site_status().peer_site}")
    return redirect("site-status")
