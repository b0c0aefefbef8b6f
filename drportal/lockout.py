"""The page a locked-out login gets (django-axes calls it; settings.AXES_LOCKOUT_CALLABLE)."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import ngettext


def lockout_response(request, original_response=None, credentials=None):
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    context = {
        "username": username,
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cooloff_minutes": round(settings.AXES_COOLOFF_TIME.total_seconds() / 60),
    }
    if request.path.startswith("/api/"):
        # API clients read JSON, like every other API error ({"detail": ...}).
        detail = ngettext(
            "%(limit)s failed login for %(user)s from your address: locked out.",
            "%(limit)s failed logins for %(user)s from your address: locked out.",
            context["failure_limit"],
        ) % {"limit": context["failure_limit"], "user": username}
        detail += " " + ngettext(
            "Logins as %(user)s from here are refused for %(minutes)s minute; every further try starts the wait again.",
            "Logins as %(user)s from here are refused for %(minutes)s minutes; every further try starts the wait again.",
            context["cooloff_minutes"],
        ) % {"minutes": context["cooloff_minutes"], "user": username}
        return JsonResponse({"detail": detail}, status=settings.AXES_HTTP_RESPONSE_CODE)
    return render(request, "registration/locked_out.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)
