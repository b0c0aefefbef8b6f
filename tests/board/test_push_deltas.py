"""What the stream sends a watcher of a part it was shown before (failover/board/push.py):
the elements that changed, swapped out of band, or the whole part where that cannot say
it. The HTML here is small and made up; tests/board/test_stream_hub.py pushes the board's."""

from __future__ import annotations

import re

import pytest

from failover.board.push import Piece, Rendered, cut, format_part

ROWS = re.compile(r'<(tr) id="(row-\d+)"')


def table(caption: str, *cells: str) -> str:
    rows = "".join(f'<tr id="row-{n}"><td>{cell}</td></tr>' for n, cell in enumerate(cells))
    return f"<h2>{caption}</h2><table><tbody>{rows}</tbody></table>"


def rendered(html: str) -> Rendered:
    return Rendered(format_part("steps", html), cut(html, ROWS))


def test_only_the_rows_that_changed_are_sent_when_the_rest_reads_alike():
    before, now = rendered(table("Steps", "a", "b", "c")), rendered(table("Steps", "a", "B", "c"))
    assert now.since(before) == format_part(
        "oob", '<template><tr hx-swap-oob="true" id="row-1"><td>B</td></tr></template>'
    )
    assert now.since(rendered(table("Steps", "a", "B", "c"))) == b""
    assert now.since(None) == now.full  # shown nothing yet: the whole part


def test_the_whole_part_is_sent_when_it_changed_outside_its_rows_or_gained_one():
    now = rendered(table("Steps", "a", "b"))
    assert now.since(rendered(table("Stages", "a", "b"))) == now.full
    assert now.since(rendered(table("Steps", "a"))) == now.full


def log(seqs: list[int], more: int) -> Rendered:
    lines = tuple((seq, f'<li id="event-{seq}">{seq}</li>') for seq in seqs)
    more_html = f'<p id="log-more">{more}</p>'
    html = "<ol>" + "".join(line for _seq, line in lines) + "</ol>" + more_html
    return Rendered(format_part("log", html), Piece(html, "log 3", {"log-more": Piece(more_html)}), lines)


def test_the_log_is_sent_its_new_lines_or_whole_when_more_came_than_it_shows():
    before = log([5, 4, 3], 2)
    assert log([7, 6, 5], 4).since(before) == format_part(
        "oob",
        '<template><p hx-swap-oob="true" id="log-more">4</p></template><template>'
        '<ol id="log-lines" hx-swap-oob="afterbegin"><li id="event-7">7</li><li id="event-6">6</li></ol>'
        "</template>",
    )
    gap = log([9, 8, 7], 6)
    assert gap.since(before) == gap.full


@pytest.mark.django_db
def test_a_step_group_is_drawn_again_when_what_it_shows_changed_and_kept_when_not(make_run, monkeypatch):
    from failover.board import push
    from failover.models import Action

    run = make_run(per_step=2)
    variant = ("en", frozenset({"operate"}))
    drawn = []
    real = push.get_template

    def counting(name):
        drawn.append(name)
        return real(name)

    monkeypatch.setattr(push, "get_template", counting)
    monkeypatch.setattr(push, "_GROUPS", {})

    def actions() -> bytes:
        drawn.clear()
        return push.render_parts(run.pk, ["actions"], [variant])[variant]["actions"].full

    first = actions()
    assert drawn.count(push.GROUP_TEMPLATE) == 7  # one group per step
    assert actions() == first and drawn.count(push.GROUP_TEMPLATE) == 0  # kept: as drawn before
    action = Action.objects.filter(run=run, step__number=3).order_by("pk").first()
    Action.objects.filter(pk=action.pk).update(state="failed", error="disk <full>", attempt=2)
    changed = actions()
    assert drawn.count(push.GROUP_TEMPLATE) == 1  # step 3's group, alone
    push._GROUPS.clear()
    assert actions() == changed  # the group kept reads as one drawn afresh
    assert b"disk &lt;full&gt;" in changed and b"Retry" in changed


def test_a_burst_drawing_the_header_and_the_steps_counts_the_actions_once_and_reads_alike(make_run):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from failover.board import push
    from failover.models import Action

    run = make_run(per_step=2, action_state="failed")
    Action.objects.filter(run=run, step__number=2).update(state="succeeded")
    variant = ("en", frozenset({"operate"}))
    with CaptureQueriesContext(connection) as both:
        drawn = push.render_parts(run.pk, ["header", "steps"], [variant])[variant]
    with CaptureQueriesContext(connection) as header:
        alone = push.render_parts(run.pk, ["header"], [variant])[variant]["header"]
    with CaptureQueriesContext(connection) as steps:
        push.render_parts(run.pk, ["steps"], [variant])
    # each alone reads the run; together the run once, and the actions' counts once
    assert len(both) == len(header) + len(steps) - 2
    progress = drawn["header"].tree.pieces["run-progress"].html
    assert progress == alone.tree.pieces["run-progress"].html
    total = Action.objects.filter(run=run).count()
    assert "need a decision" in progress and f" of {total} actions done" in progress
