from __future__ import annotations

from django.conf import settings

from hosts.permissions import roles_of


def roles(request):
    user = getattr(request, "user", None)
    return {"roles": roles_of(user) if user is not None and user.is_authenticated else frozenset()}


def site(request):
    """``site``: this portal's two-site status (drportal.twosite), for the banner and for
    every write control (``site.read_only``, ``site.reason``); ``runbook_url``."""
    from django.urls import NoReverseMatch, reverse

    from .middleware import READ_ONLY_OPEN
    from .twosite import site_status

    status = site_status()
    if not status.two_site:
        return {"site": status}
    try:
        runbook = reverse("runbook")
    except NoReverseMatch:  # the runbook page comes with docs/two-sites.md
        runbook = "/runbook/"
    return {
        "site": status,
        "runbook_url": runbook,
        "peer_portal_url": settings.DRPORTAL_PEER_PORTAL_URL,
        "site_open_paths": " ".join(READ_ONLY_OPEN),
    }
