"""Concurrent edits on SQLite, the demo's database: never a 500. A write that still cannot
get the database answers 422 "changed at the same time, try again" and saves nothing."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from hosts.models import MemoryProfile, VMAllocation

pytestmark = [pytest.mark.sqlite, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def rows(reference_estate, users):
    profile = MemoryProfile.objects.get(name="WSL lost")
    return list(VMAllocation.objects.filter(profile=profile).order_by("pk")[:2])


def _client(make_user) -> Client:
    client = Client()
    client.force_login(make_user("dradmin"))  # roles synced by the users fixture
    return client


def test_two_memory_edits_at_the_same_time_both_answer_and_never_500(rows, make_user):
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def edit(row: VMAllocation, value: str) -> None:
        client = _client(make_user)
        try:
            for _ in range(4):
                barrier.wait(timeout=30)
                response = client.post(
                    reverse("allocation-edit", args=[row.pk]), {"memory_mb": value}, HTTP_HX_REQUEST="true"
                )
                statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=edit, args=(row, str(row.memory_mb - 8))) for row in rows]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(statuses) == 8
    assert set(statuses) <= {200, 422}, statuses


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own write lock")
def test_an_edit_that_cannot_get_the_database_answers_422_changed_at_the_same_time(rows, make_user, settings):
    row = rows[0]
    client = _client(make_user)
    options = connection.settings_dict["OPTIONS"]
    timeout = options.get("timeout")
    connection.close()
    options["timeout"] = 0.2
    holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
        response = client.post(
            reverse("allocation-edit", args=[row.pk]), {"memory_mb": "1000"}, HTTP_HX_REQUEST="true"
        )
        assert response.status_code == 422
        assert "changed at the same time, try again" in response.content.decode()
        plain = client.post(reverse("allocation-edit", args=[row.pk]), {"memory_mb": "1000"})
        assert plain.status_code == 422
        assert "changed at the same time, try again" in plain.content.decode()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        connection.close()
        options["timeout"] = timeout
    row.refresh_from_db()
    assert row.memory_mb != 1000
