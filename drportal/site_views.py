"""The two-site pages: /site/ (this portal's mode, lag, epoch, the runbook link)."""

from __future__ import annotations

from django.shortcuts import render

from .models import Epoch
from .twosite import site_status


def site_page(request):
    return render(
        request,
        "drportal/site.html",
        {"status": site_status(), "epochs": Epoch.objects.select_related("started_by")[:20]},
    )
