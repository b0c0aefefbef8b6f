"""Every URL against every role. A new URL must be added here or this test fails."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from hosts.models import MemoryProfile, VMAllocation

pytestmark = pytest.mark.django_db

ROLES = (None, "helpdesk", "mod", "dradmin")
LOGIN = "login"
FORBIDDEN = 403


def _urls():
    profile = MemoryProfile.objects.get(name="WSL lost")
    allocation = VMAllocation.objects.get(profile=profile, vm__name="dns-xen01")
    edit = reverse("allocation-edit", args=[allocation.pk])
    return {
        # name: (method, url, data, {role: expected})
        "dashboard": ("get", reverse("dashboard"), None, dict.fromkeys(ROLES[1:], 200)),
        "profile-list": ("get", reverse("profile-list"), None, dict.fromkeys(ROLES[1:], 200)),
        "profile-detail": (
            "get",
            reverse("profile-detail", args=[profile.pk]),
            None,
            dict.fromkeys(ROLES[1:], 200),
        ),
        "allocation-edit": ("get", edit, None, {"helpdesk": FORBIDDEN, "mod": FORBIDDEN, "dradmin": 200}),
        "allocation-edit POST": (
            "post",
            edit,
            {"memory_mb": "200"},
            {"helpdesk": FORBIDDEN, "mod": FORBIDDEN, "dradmin": 200},
        ),
        "healthz": ("get", reverse("healthz"), None, {None: 200, **dict.fromkeys(ROLES[1:], 200)}),
        "login": ("get", reverse("login"), None, {None: 200, **dict.fromkeys(ROLES[1:], 200)}),
        "logout": ("post", reverse("logout"), {}, {None: 302, **dict.fromkeys(ROLES[1:], 302)}),
        # Django admin is for staff only; none of the roles is staff.
        "admin": ("get", reverse("admin:index"), None, {None: 302, **dict.fromkeys(ROLES[1:], 302)}),
    }


def _our_url_names() -> set[str]:
    names = set()

    def walk(patterns, namespace=None):
        for p in patterns:
            if isinstance(p, URLResolver):
                if p.namespace in {"admin"}:
                    continue
                walk(p.url_patterns, p.namespace)
            elif isinstance(p, URLPattern) and p.name and namespace is None:
                names.add(p.name)

    walk(get_resolver().url_patterns)
    return names - {"set_language"}


def test_the_matrix_covers_every_named_url(reference_estate):
    covered = {name.split()[0] for name in _urls()}
    assert _our_url_names() <= covered, f"add to the role matrix: {sorted(_our_url_names() - covered)}"


@pytest.mark.parametrize("role", ROLES)
def test_every_url_answers_each_role_as_the_matrix_says(reference_estate, client_as, role):
    client = client_as(role)
    for name, (method, url, data, expected) in _urls().items():
        response = getattr(client, method)(url, data) if data is not None else getattr(client, method)(url)
        want = expected.get(role, 302 if role is None else None)
        assert response.status_code == want, f"{name} as {role}: {response.status_code} != {want}"
        if role is None and want == 302 and name not in {"logout", "admin"}:
            assert reverse(LOGIN) in response["Location"]
        if name == "logout":
            client = client_as(role)  # logged out now: log in again for the rest


def test_helpdesk_sees_no_edit_controls(reference_estate, client_as):
    profile = MemoryProfile.objects.get(name="WSL lost")
    page = client_as("helpdesk").get(reverse("profile-detail", args=[profile.pk])).content.decode()
    assert 'hx-get="/allocations/' not in page
    assert "Read only" in page


def test_dr_admin_sees_edit_controls(reference_estate, client_as):
    profile = MemoryProfile.objects.get(name="WSL lost")
    page = client_as("dradmin").get(reverse("profile-detail", args=[profile.pk])).content.decode()
    assert 'hx-get="/allocations/' in page


def test_an_htmx_request_without_login_is_told_to_reload_to_the_login_page(client):
    response = client.get(reverse("dashboard"), HTTP_HX_REQUEST="true")
    assert response.status_code == 401
    assert response["HX-Redirect"] == reverse(LOGIN)
