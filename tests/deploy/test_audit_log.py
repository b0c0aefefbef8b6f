"""The audit log (disasters, runs and their numbered events) can be read in the admin but
not added to, changed or deleted there, by a superuser neither; the API only reads it."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from failover.models import Disaster, Run, RunEvent
from tests.board.runs import build_run

pytestmark = pytest.mark.django_db

MODELS = {"disaster": Disaster, "run": Run, "runevent": RunEvent}


@pytest.fixture
def superuser_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def run(admin_user):
    return build_run(user=admin_user, per_step=1, events=3)


def objects_of(run: Run) -> dict[str, object]:
    return {"disaster": run.disaster, "run": run, "runevent": run.events.order_by("seq").first()}


def snapshot(run: Run) -> list[tuple]:
    return [
        (Disaster.objects.count(), Run.objects.count()),
        *RunEvent.objects.filter(run=run).order_by("seq").values_list("seq", "kind", "message", "user_id"),
    ]


@pytest.mark.parametrize("model", MODELS)
def test_the_admin_shows_the_audit_log_read_only(superuser_client, run, model):
    obj = objects_of(run)[model]
    page = superuser_client.get(reverse(f"admin:failover_{model}_change", args=[obj.pk]))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content and b"deletelink" not in page.content
    listing = superuser_client.get(reverse(f"admin:failover_{model}_changelist"))
    assert listing.status_code == 200
    assert b'name="action"' not in listing.content  # no bulk actions, "delete selected" neither
    assert reverse(f"admin:failover_{model}_add").encode() not in listing.content


@pytest.mark.parametrize("model", MODELS)
def test_not_even_a_superuser_can_change_delete_or_add_to_the_audit_log(superuser_client, run, model):
    obj = objects_of(run)[model]
    before = snapshot(run)
    change = reverse(f"admin:failover_{model}_change", args=[obj.pk])
    delete = reverse(f"admin:failover_{model}_delete", args=[obj.pk])
    forged = {"message": "nothing happened", "notes": "forged"}
    assert superuser_client.post(change, forged).status_code == 403
    assert superuser_client.get(delete).status_code == 403
    assert superuser_client.post(delete, {"post": "yes"}).status_code == 403
    assert superuser_client.get(reverse(f"admin:failover_{model}_add")).status_code == 403
    bulk = superuser_client.post(
        reverse(f"admin:failover_{model}_changelist"),
        {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 302, 403)
    assert snapshot(run) == before


def test_the_admin_lists_one_runs_events_from_the_runs_page(superuser_client, run):
    run.refresh_from_db()
    page = superuser_client.get(reverse("admin:failover_run_change", args=[run.pk])).content.decode()
    link = reverse("admin:failover_runevent_changelist") + f"?run={run.pk}"
    assert f'href="{link}"' in page and f"{run.event_seq} events" in page
    listing = superuser_client.get(link).content.decode()
    assert listing.count("event 0") == 1 and "event 2" in listing


def test_the_api_only_reads_a_runs_events(client, run):
    user = get_user_model().objects.get(is_superuser=True)
    client.force_login(user)
    url = reverse("api:run-events", args=[run.pk])
    before = snapshot(run)
    assert client.get(url).status_code == 200
    for method in (client.put, client.patch, client.delete):
        response = method(url, data={"message": "forged"}, content_type="application/json")
        assert response.status_code in (403, 405), (method, response.status_code)
    response = client.post(url, data={"kind": "forged"}, content_type="application/json")
    assert response.status_code in (403, 405)
    assert snapshot(run) == before


def test_a_recorded_event_cannot_be_rewritten_or_deleted_through_the_model(run):
    event = run.events.order_by("seq").first()
    before = snapshot(run)
    event.message = "nothing happened"
    with pytest.raises(PermissionError, match="audit log"):
        event.save()
    with pytest.raises(PermissionError, match="audit log"):
        event.delete()
    assert snapshot(run) == before
