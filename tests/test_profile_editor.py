"""The memory-profile editor: inline HTMX edit, bars update in place, refusals save nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from hosts.models import MemoryProfile, VMAllocation

pytestmark = pytest.mark.django_db


@pytest.fixture
def dr_row(reference_estate):
    profile = MemoryProfile.objects.get(name="WSL lost")
    return VMAllocation.objects.get(profile=profile, vm__name="dasi-xen01")


def test_it_saves_a_value_that_fits_and_returns_the_row_and_the_bars(client_as, dr_row):
    response = client_as("dradmin").post(
        reverse("allocation-edit", args=[dr_row.pk]), {"memory_mb": "1200"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    dr_row.refresh_from_db()
    assert dr_row.memory_mb == 1200
    html = response.content.decode()
    assert f'id="alloc-{dr_row.pk}"' in html
    assert 'hx-swap-oob="true"' in html  # the bars come along, out of band
    assert "3632" in html  # 3456 + 176: the new total on xenka01
    assert response["Vary"] and "HX-Request" in response["Vary"]


def test_it_refuses_a_value_that_would_swap_naming_host_need_and_capacity(client_as, dr_row):
    response = client_as("dradmin").post(
        reverse("allocation-edit", args=[dr_row.pk]), {"memory_mb": "1696"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "xenka01" in html and "4128 MB" in html and "4096 MB" in html and "32 MB short" in html
    assert "Nothing was saved" in html
    dr_row.refresh_from_db()
    assert dr_row.memory_mb == 1024


@pytest.mark.parametrize(
    ("value", "reason"), [("abc", "not a whole number"), ("0", "more than 0"), ("-5", "")]
)
def test_it_refuses_bad_input_with_the_field_named(client_as, dr_row, value, reason):
    response = client_as("dradmin").post(
        reverse("allocation-edit", args=[dr_row.pk]), {"memory_mb": value}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "Memory (MB):" in html and reason in html
    dr_row.refresh_from_db()
    assert dr_row.memory_mb == 1024


def test_helpdesk_gets_403_on_a_forged_post_and_nothing_changes(client_as, dr_row):
    response = client_as("helpdesk").post(reverse("allocation-edit", args=[dr_row.pk]), {"memory_mb": "100"})
    assert response.status_code == 403
    dr_row.refresh_from_db()
    assert dr_row.memory_mb == 1024


def test_without_htmx_the_editor_still_works_as_a_plain_form(client_as, dr_row):
    response = client_as("dradmin").post(reverse("allocation-edit", args=[dr_row.pk]), {"memory_mb": "1696"})
    assert response.status_code == 422
    assert "32 MB short" in response.content.decode()


def test_the_profile_page_renders_in_bounded_queries(client_as, dr_row, django_assert_max_num_queries):
    client = client_as("dradmin")
    with django_assert_max_num_queries(25):
        response = client.get(reverse("profile-detail", args=[dr_row.profile_id]))
    assert response.status_code == 200


@pytest.mark.parametrize("value", ["5_12", "５１２", "1e3", "+512", " 512 0"])
def test_it_accepts_ascii_digits_only_and_names_the_field_by_its_label(client_as, dr_row, value):
    response = client_as("dradmin").post(
        reverse("allocation-edit", args=[dr_row.pk]), {"memory_mb": value}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "Memory (MB):" in html and "digits 0-9 only" in html
    assert "memory_mb:" not in html
    dr_row.refresh_from_db()
    assert dr_row.memory_mb == 1024


def test_a_huge_value_gets_one_message_about_the_host_s_ram_not_a_database_limit(client_as, dr_row):
    response = client_as("dradmin").post(
        reverse("allocation-edit", args=[dr_row.pk]),
        {"memory_mb": "99999999999999999999999"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "9223372036854775807" not in html and "2147483647" not in html
    assert html.count('class="error"') == 1
    assert "Memory (MB):" in html and "xenka01" in html and "4096 MB" in html
    dr_row.refresh_from_db()
    assert dr_row.memory_mb == 1024
