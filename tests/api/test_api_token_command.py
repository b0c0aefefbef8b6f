"""manage.py api_token USERNAME: prints the user's token, the same one each time unless
rotated, and the token works."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def _token(*args) -> str:
    out = io.StringIO()
    call_command("api_token", *args, stdout=out)
    return out.getvalue().strip()


def test_it_prints_a_token_that_authenticates_as_the_user(users):
    key = _token("helpdesk")
    assert len(key) == 40
    assert _token("helpdesk") == key
    response = Client(headers={"Authorization": f"Token {key}"}).get(reverse("api:sites"))
    assert response.status_code == 200


def test_rotate_replaces_the_token_and_the_old_one_stops_working(users):
    old = _token("mod")
    new = _token("mod", "--rotate")
    assert new != old
    assert Client(headers={"Authorization": f"Token {old}"}).get(reverse("api:sites")).status_code == 401


def test_it_refuses_an_unknown_or_inactive_user(users):
    with pytest.raises(CommandError, match="no user 'ghost'"):
        _token("ghost")
    users["dradmin"].is_active = False
    users["dradmin"].save()
    with pytest.raises(CommandError, match="inactive"):
        _token("dradmin")
