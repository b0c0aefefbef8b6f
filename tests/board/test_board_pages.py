"""The board's pages and partials: what they show, to whom, and how they stop polling."""

from __future__ import annotations

import pytest
from django.urls import reverse

from failover.choices import ActionStateChoices as A
from failover.choices import RunStateChoices as R
from failover.choices import StepStateChoices as S
from failover.models import Action, RunEvent

pytestmark = pytest.mark.django_db

PARTS = ("header", "steps", "actions", "log", "checks")


@pytest.mark.sqlite
def test_the_board_shows_seven_steps_with_state_progress_and_planned_minutes(as_role, make_run):
    run = make_run(per_step=3, step_states={0: S.DONE, 1: S.RUNNING})
    Action.objects.filter(run=run, step__number=0).update(state=A.SUCCEEDED)
    page = as_role("helpdesk").get(reverse("run-board", args=[run.pk])).content.decode()
    for number in range(7):
        assert f'id="step-{number}"' in page
    assert 'id="step-0" data-state="done"' in page
    assert "3 of 3" in page and "0 of 3" in page
    assert "30 min" in page  # planned minutes of the storage step
    assert "<svg" in page and "timeline-title" in page


def test_states_are_drawn_as_icon_and_text_never_colour_alone(as_role, make_run):
    run = make_run(per_step=1, step_states={0: S.DONE})
    page = as_role("helpdesk").get(reverse("run-board", args=[run.pk])).content.decode()
    assert '<span class="icon" aria-hidden="true">✔</span> Done' in page
    assert '<span class="icon" aria-hidden="true">○</span> Pending' in page


def test_the_board_follows_the_run_by_sse_from_the_event_it_was_drawn_at(as_role, make_run):
    run = make_run(events=4)
    page = as_role("helpdesk").get(reverse("run-board", args=[run.pk])).content.decode()
    assert f'sse-connect="/runs/{run.pk}/events/?last_event_id=5"' in page
    assert 'sse-close="end"' in page
    # Each part is swapped in from the stream's html-<part> events: nothing to fetch.
    for part in ("header", "steps", "actions", "checks", "log"):
        assert f'id="run-{part}" class="panel" sse-swap="html-{part}" hx-swap="innerHTML"' in page
    assert f'hx-get="/runs/{run.pk}/part/' not in page


def test_with_polling_on_the_board_polls_instead_of_streaming(as_role, make_run, settings):
    settings.DRPORTAL_BOARD_POLLING = True
    settings.DRPORTAL_BOARD_POLL_S = 3.0
    run = make_run()
    page = as_role("helpdesk").get(reverse("run-board", args=[run.pk])).content.decode()
    assert "sse-connect" not in page and "sse-swap" not in page
    assert 'hx-trigger="every 3s"' in page
    assert f'hx-get="/runs/{run.pk}/part/steps/"' in page


def test_a_finished_run_neither_streams_nor_polls(as_role, make_run):
    run = make_run(state=R.SUCCEEDED)
    page = as_role("helpdesk").get(reverse("run-board", args=[run.pk])).content.decode()
    assert "sse-connect" not in page and "hx-trigger" not in page and "sse-swap" not in page
    assert "Run ended" in page


@pytest.mark.parametrize("part", PARTS)
def test_a_partial_answers_200_while_the_run_is_active_and_286_once_it_ended(as_role, make_run, part):
    client = as_role("helpdesk")
    run = make_run()
    url = reverse("run-part", args=[run.pk, part])
    response = client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "HX-Request" in response["Vary"]
    run.state = R.SUCCEEDED
    run.save(update_fields=["state"])
    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 286


def test_an_unknown_partial_or_run_is_404(as_role, make_run):
    client = as_role("helpdesk")
    run = make_run()
    assert client.get(reverse("run-part", args=[run.pk, "nope"])).status_code == 404
    assert client.get(reverse("run-board", args=[run.pk + 999])).status_code == 404
    assert client.get(reverse("run-part", args=[run.pk + 999, "steps"])).status_code == 404


def test_the_log_shows_the_newest_events_first_with_who_did_it(as_role, make_run, users):
    run = make_run(events=3)
    page = as_role("helpdesk").get(reverse("run-part", args=[run.pk, "log"])).content.decode()
    assert page.index('id="event-4"') < page.index('id="event-1"')
    assert "— mod" in page


def test_the_functional_test_table_says_ok_down_and_why(as_role, make_run):
    run = make_run(per_step=1, checks=2)
    page = as_role("helpdesk").get(reverse("run-part", args=[run.pk, "checks"])).content.decode()
    assert "vm-0" in page and "vm-1" in page
    assert "✔</span> ok" in page and "✖</span> down" in page
    assert "connection refused" in page
    assert "http check &#x27;http&#x27;: ok: 200" in page


def test_helpdesk_sees_the_whole_board_but_no_controls(as_role, make_run):
    run = make_run(per_step=1, action_state=A.FAILED)
    page = as_role("helpdesk").get(reverse("run-board", args=[run.pk])).content.decode()
    assert "action-" in page and "Retry" not in page and "Abort" not in page and "Pause" not in page
    assert "/pause/" not in page and "/retry/" not in page


def test_the_manager_on_duty_gets_the_controls_the_states_allow(as_role, make_run):
    run = make_run(per_step=1, action_state=A.FAILED)
    Action.objects.filter(run=run, step__number=6).update(state=A.SUCCEEDED)
    page = as_role("mod").get(reverse("run-board", args=[run.pk])).content.decode()
    failed = Action.objects.filter(run=run, state=A.FAILED).first()
    done = Action.objects.filter(run=run, state=A.SUCCEEDED).first()
    assert reverse("action-retry", args=[failed.pk]) in page
    assert reverse("action-skip", args=[failed.pk]) in page
    assert reverse("action-done", args=[failed.pk]) in page
    assert reverse("action-retry", args=[done.pk]) not in page
    assert reverse("run-pause", args=[run.pk]) in page and reverse("run-abort", args=[run.pk]) in page
    assert reverse("run-resume", args=[run.pk]) not in page


@pytest.mark.sqlite
def test_a_control_posted_by_the_manager_on_duty_is_done_and_audited_with_the_reason(
    as_role, make_run, users
):
    run = make_run(per_step=1, action_state=A.FAILED)
    action = Action.objects.filter(run=run).first()
    response = as_role("mod").post(
        reverse("action-skip", args=[action.pk]), {"reason": "storage team did it"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    action.refresh_from_db()
    assert action.state == A.SKIPPED and action.reason == "storage team did it"
    event = RunEvent.objects.filter(run=run).order_by("-seq").first()
    assert event.user == users["mod"] and "storage team did it" in event.message
    assert event.kind == "action_skipped"


def test_a_refused_control_answers_422_with_the_reason(as_role, make_run):
    run = make_run(per_step=1, action_state=A.FAILED)
    action = Action.objects.filter(run=run).first()
    response = as_role("mod").post(
        reverse("action-skip", args=[action.pk]), {"reason": ""}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 422
    assert "needs a reason" in response.content.decode()
    action.refresh_from_db()
    assert action.state == A.FAILED


def test_without_htmx_a_control_redirects_back_to_the_board(as_role, make_run):
    run = make_run(per_step=1)
    response = as_role("mod").post(reverse("run-pause", args=[run.pk]))
    assert response.status_code == 303 and response["Location"] == reverse("run-board", args=[run.pk])
    run.refresh_from_db()
    assert run.state == R.PAUSED


@pytest.mark.parametrize(
    ("url_name", "data"),
    [
        ("run-pause", {}),
        ("run-resume", {}),
        ("run-abort", {"reason": "forged"}),
        ("action-retry", {}),
        ("action-skip", {"reason": "forged"}),
        ("action-done", {"reason": "forged"}),
    ],
)
@pytest.mark.parametrize("role", ["helpdesk", "dradmin"])
def test_a_forged_post_by_a_role_that_may_not_operate_gets_403_and_changes_nothing(
    as_role, make_run, url_name, data, role
):
    run = make_run(per_step=1, action_state=A.FAILED)
    action = Action.objects.filter(run=run).first()
    target = action.pk if url_name.startswith("action") else run.pk
    before = RunEvent.objects.filter(run=run).count()
    assert as_role(role).post(reverse(url_name, args=[target]), data).status_code == 403
    action.refresh_from_db()
    run.refresh_from_db()
    assert action.state == A.FAILED and run.state == R.RUNNING
    assert RunEvent.objects.filter(run=run).count() == before


def test_the_deadline_counts_down_on_the_board(as_role, make_run):
    run = make_run()
    page = as_role("helpdesk").get(reverse("run-board", args=[run.pk])).content.decode()
    assert 'class="countdown"' in page and "data-seconds=" in page
    assert 'data-left="%(time)s left"' in page
