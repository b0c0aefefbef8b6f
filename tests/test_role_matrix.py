"""Every URL against every role. A new URL must be added here or this test fails."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from failover.choices import ActionStateChoices
from failover.models import Action
from hosts.models import MemoryProfile, VMAllocation
from tests.board.runs import build_run

pytestmark = pytest.mark.django_db

ROLES = (None, "helpdesk", "mod", "dradmin")
LOGIN = "login"
FORBIDDEN = 403


def _urls(run):
    profile = MemoryProfile.objects.get(name="WSL lost")
    allocation = VMAllocation.objects.get(profile=profile, vm__name="dns-xen01")
    edit = reverse("allocation-edit", args=[allocation.pk])
    action = Action.objects.filter(run=run).order_by("pk").first()
    everyone = dict.fromkeys(ROLES[1:], 200)
    only_mod = {"helpdesk": FORBIDDEN, "mod": 200, "dradmin": FORBIDDEN}
    # A control without htmx answers 303 back to the board (refused ones too, with a message).
    operate = {"helpdesk": FORBIDDEN, "mod": 303, "dradmin": FORBIDDEN}
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
        # The status board (failover app).
        "overview": ("get", reverse("overview"), None, everyone),
        "declare": ("get", reverse("declare"), None, only_mod),
        "declare POST": ("post", reverse("declare"), {}, {**only_mod, "mod": 422}),
        "incidents": ("get", reverse("incidents"), None, everyone),
        "drills": ("get", reverse("drills"), None, everyone),
        "drills POST": ("post", reverse("drills"), {}, {**only_mod, "mod": 422}),
        # Refused (the run is no drill; the failback has blocking problems): back to the board.
        "run-end-drill": ("post", reverse("run-end-drill", args=[run.pk]), {}, operate),
        "run-failback": ("post", reverse("run-failback", args=[run.pk]), {}, operate),
        "run-board": ("get", reverse("run-board", args=[run.pk]), None, everyone),
        # The test client is no ASGI server: the stream view says 503 "needs the StreamGate"
        # once the permission checks pass (tests/board stream through the real gate).
        "run-events": ("get", reverse("run-events", args=[run.pk]), None, dict.fromkeys(ROLES[1:], 503)),
        "run-part": ("get", reverse("run-part", args=[run.pk, "steps"]), None, everyone),
        "action-retry": ("post", reverse("action-retry", args=[action.pk]), {}, operate),
        "action-skip": ("post", reverse("action-skip", args=[action.pk]), {"reason": "r"}, operate),
        "action-done": ("post", reverse("action-done", args=[action.pk]), {"reason": "r"}, operate),
        "run-pause": ("post", reverse("run-pause", args=[run.pk]), {}, operate),
        "run-resume": ("post", reverse("run-resume", args=[run.pk]), {}, operate),
        "run-abort": ("post", reverse("run-abort", args=[run.pk]), {"reason": "r"}, operate),
        # Two sites (issue 14): the site's status, for everyone.
        "site-status": ("get", reverse("site-status"), None, everyone),
        # The take-over, for the Manager on Duty; refused (422) here: this portal is no standby.
        "site-take-over": ("get", reverse("site-take-over"), None, only_mod),
        "site-take-over POST": ("post", reverse("site-take-over"), {}, {**only_mod, "mod": 422}),
        # The runbook (docs/*.md), for everyone logged in.
        "runbook": ("get", reverse("runbook"), None, everyone),
        "runbook-doc": ("get", reverse("runbook-doc", args=["two-sites"]), None, everyone),
        "healthz": ("get", reverse("healthz"), None, {None: 200, **dict.fromkeys(ROLES[1:], 200)}),
        "login": ("get", reverse("login"), None, {None: 200, **dict.fromkeys(ROLES[1:], 200)}),
        "logout": ("post", reverse("logout"), {}, {None: 302, **dict.fromkeys(ROLES[1:], 302)}),
        # The Django admin: staff, the DR admin (the inventory) and the MoD (runs' report marks,
        # the inventory read-only); not the helpdesk (hosts/admin.py).
        "admin": (
            "get",
            reverse("admin:index"),
            None,
            {None: 302, "helpdesk": 302, "mod": 200, "dradmin": 200},
        ),
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


@pytest.fixture
def run(reference_estate, make_user):
    return build_run(user=make_user("mod"), per_step=1, action_state=ActionStateChoices.FAILED)


def test_the_matrix_covers_every_named_url(run):
    covered = {name.split()[0] for name in _urls(run)}
    assert _our_url_names() <= covered, f"add to the role matrix: {sorted(_our_url_names() - covered)}"


@pytest.mark.parametrize("role", ROLES)
def test_every_url_answers_each_role_as_the_matrix_says(run, client_as, role):
    client = client_as(role)
    for name, (method, url, data, expected) in _urls(run).items():
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
