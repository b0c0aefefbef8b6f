"""The board of a 20,000-action run stays usable: each step says how many actions are in
each state, lists the ones that need a decision first and a page of the others, and the
page costs as many queries as the board of a small run."""

from __future__ import annotations

import re
import time

import pytest
from django.urls import reverse

from failover.board import selectors as board
from failover.choices import ActionStateChoices as A
from failover.choices import StepStateChoices as S
from failover.models import Action, Step

pytestmark = pytest.mark.django_db

ACTIONS = 20_000
FAILED_IN_STEP_5 = 40  # more than a page of them


PER_STEP = 2857  # and one functional test: 7 * 2857 + 1 = 20,000


def _huge_run(make_run):
    """Built by bulk_create (tests/board/runs.py), then given the states of a run in step 5:
    steps 0 and 1 done, step 5 with failed, running and done actions, the rest pending."""
    run = make_run(per_step=PER_STEP, checks=1, step_states={0: S.DONE, 1: S.DONE, 5: S.RUNNING})
    actions = Action.objects.filter(run=run)
    actions.filter(step__number__lt=2).update(state=A.SUCCEEDED)
    step5 = list(actions.filter(step__number=5).order_by("order", "pk").values_list("pk", flat=True))
    actions.filter(pk__in=step5[:FAILED_IN_STEP_5]).update(state=A.FAILED, error="xl create: out of memory")
    actions.filter(pk__in=step5[FAILED_IN_STEP_5:100]).update(state=A.RUNNING)
    actions.filter(pk__in=step5[100:]).update(state=A.SUCCEEDED)
    actions.filter(step__number=6, kind="functional_check").update(state=A.PENDING, outcome="")
    assert actions.count() == ACTIONS
    return run


def _timed_get(client, url: str, what: str):
    started = time.perf_counter()
    response = client.get(url)
    print(f"\n{what}: {1000 * (time.perf_counter() - started):.0f} ms, {len(response.content)} bytes")
    return response


@pytest.mark.parametrize("role", ["helpdesk", "mod"])
def test_the_board_of_a_20000_action_run_draws_a_bounded_page_in_a_fixed_number_of_queries(
    as_role, make_run, role, django_assert_max_num_queries
):
    client = as_role(role)
    run = _huge_run(make_run)
    with django_assert_max_num_queries(
        19
    ):  # the board of a 300-action run: tests/board/test_board_queries.py
        response = _timed_get(
            client, reverse("run-board", args=[run.pk]), f"board of {ACTIONS} actions ({role})"
        )
    assert response.status_code == 200
    page = response.content.decode()
    rows = page.count('id="action-')
    assert rows <= 7 * 2 * board.ACTIONS_PAGE, rows
    # Step 5: its failed ones come first, counted; a page of them, and a page of the others.
    step5 = page[page.index('id="actions-step-5"') : page.index('id="actions-step-6"')]
    assert f"{FAILED_IN_STEP_5} actions need a decision" in step5
    assert step5.count('data-state="failed"><td>') == 0  # (rows are <tr ... data-state=...>)
    assert len(re.findall(r'<tr id="action-\d+" data-state="failed"', step5)) == board.ACTIONS_PAGE
    assert f"Actions 1–{board.ACTIONS_PAGE} of {FAILED_IN_STEP_5}" in step5
    per_step = PER_STEP
    assert f"Actions 1–{board.ACTIONS_PAGE} of {per_step - FAILED_IN_STEP_5}" in step5
    # The counts per state, as icon and label, in the step's summary.
    summary = re.sub(r"<[^>]+>", "", step5[: step5.index("</summary>")])
    assert re.search(rf"Failed {FAILED_IN_STEP_5}\b", summary)
    assert re.search(rf"Running {100 - FAILED_IN_STEP_5}\b", summary)
    assert re.search(rf"Done {per_step - 100}\b", summary)
    if role == "mod":
        assert 'hx-post="/actions/' in step5  # the failed ones can be retried from here
    else:
        assert "hx-post" not in page[page.index('id="run-actions"') :]


def test_the_actions_partial_of_a_20000_action_run_costs_what_a_small_ones_does(
    as_role, make_run, django_assert_max_num_queries
):
    client = as_role("mod")
    run = _huge_run(make_run)
    with django_assert_max_num_queries(7):  # tests/board/test_board_queries.py: the actions partial
        response = _timed_get(client, reverse("run-part", args=[run.pk, "actions"]), "actions partial")
    assert response.status_code == 200
    assert response.content.decode().count('id="action-') <= 7 * 2 * board.ACTIONS_PAGE


def test_a_page_link_draws_the_next_page_of_one_steps_list_and_a_page_past_the_end_the_last(
    as_role, make_run, django_assert_max_num_queries
):
    client = as_role("helpdesk")
    run = _huge_run(make_run)
    url = reverse("run-part", args=[run.pk, "actions"])
    with django_assert_max_num_queries(8):
        response = _timed_get(client, f"{url}?step=3&list=rest&page=2", "page 2 of step 3")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.startswith('<div class="action-list" id="actions-step-3-rest" data-page="2">')
    key = Step.objects.get(run=run, number=3).key
    targets = re.findall(rf"<strong>({key}-\d+)</strong>", body)
    assert targets == [f"{key}-{i}" for i in range(board.ACTIONS_PAGE, 2 * board.ACTIONS_PAGE)]
    assert 'rel="prev"' in body and 'rel="next"' in body

    last = client.get(f"{url}?step=5&list=decide&page=99").content.decode()
    assert 'data-page="2"' in last and 'rel="next"' not in last
    assert (
        len(re.findall(r'<tr id="action-\d+" data-state="failed"', last))
        == FAILED_IN_STEP_5 - board.ACTIONS_PAGE
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [("step=x&list=rest", "step"), ("step=3&list=rest&page=-1", "page"), ("step=3&list=all", "list")],
)
def test_a_wrong_page_link_is_refused_naming_the_field(as_role, make_run, query, field):
    run = make_run(per_step=2)
    response = as_role("helpdesk").get(reverse("run-part", args=[run.pk, "actions"]) + "?" + query)
    assert response.status_code == 400
    assert response.content.decode().startswith(f"{field}: ")
