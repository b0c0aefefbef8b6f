"""The board's partials, rendered once per burst of events for everybody who watches
the run, and pushed over the event stream (htmx's sse extension swaps them in: the
sections of the board carry ``sse-swap="html-<part>"``).

Before, every browser fetched up to five partials per event (its ``hx-trigger`` was the
event's name): with 1,000 watchers a burst cost 5,000 requests, each with its session,
its user and its queries. Now the hub renders each part once per burst for each
*variant* of the page its watchers see (their language, and their roles, which decide
the controls), and sends the same bytes to every watcher of that variant.

A burst renders only the parts its events change (``parts_for``: the functional tests
only when one of them moved), and the stream sends a watcher only the parts whose HTML
differs from what it was sent last (``stream.Subscriber.shown``), and of the actions and
the log only what changed in them (``Rendered.since``): the step groups whose HTML
changed, swapped out of band (``html-oob``: ``hx-swap-oob`` elements, which the page's
hidden ``#board-oob`` takes in), and the log's new lines, put at its top (the browser
drops the oldest beyond the log's length, static/js/board.js). A watcher that was sent
nothing yet (a new stream, a reconnection) is sent the whole parts.

The HTML is what the partial views (``views.run_part``) render, from the same selectors
and templates, with two differences: no ``{% csrf_token %}`` inside (htmx sends the
token as a header from ``<body hx-headers>``), and no request (so nothing per user
beyond the roles)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.template.loader import get_template
from django.utils import translation
from django.utils.safestring import mark_safe

from failover.choices import ActionKindChoices as AK
from failover.models import Action

from . import selectors as board

# Which parts change with which events (the names of ``selectors.sse_event_name``), in the
# order they are sent; ``snapshot`` stands for "everything".
PART_EVENTS: dict[str, frozenset[str]] = {
    "header": frozenset({"run", "step", "action", "snapshot"}),
    "steps": frozenset({"run", "step", "action", "snapshot"}),
    "actions": frozenset({"run", "action", "snapshot"}),
    "checks": frozenset({"action", "snapshot"}),
    "log": frozenset({"run", "step", "action", "snapshot"}),
}

TEMPLATES = {
    "header": "failover/_header.html",
    "steps": "failover/_steps.html",
    "actions": "failover/_actions.html",
    "checks": "failover/_checks.html",
    "log": "failover/_log.html",
}

SELECTORS: dict[str, Callable[..., dict]] = {
    "header": board.board_header,
    "steps": board.board_steps,
    "actions": board.board_actions,
    "checks": board.board_checks,
    "log": board.board_log,
}

# What a watcher's page looks like: its language, and its roles (the controls it has).
Variant = tuple[str, frozenset[str]]


@dataclass(frozen=True, eq=False, slots=True)
class Piece:
    """An element of the board (or a whole part) as HTML, and the elements in it that
    change alone (by DOM id, in order): ``frame`` is its HTML with each of them cut down
    to a mark of its id, so two pieces whose frames read alike differ only inside them."""

    html: str
    frame: str = ""
    pieces: dict[str, Piece] = field(default_factory=dict)

    def swaps(self, before: Piece) -> list[str] | None:
        """The out-of-band swaps that turn ``before`` into this: none when they read alike,
        the changed elements within when only they changed; None: this one swapped whole."""
        if self.html == before.html:
            return []
        if not self.pieces or self.frame != before.frame:
            return None
        out: list[str] = []
        for key, piece in self.pieces.items():  # the same ids as before's: they are in the frame
            inner = piece.swaps(before.pieces[key])
            out.extend([_oob(piece.html)] if inner is None else inner)
        return out


def cut(html: str, elements: re.Pattern[str] | None = None, given: dict[str, Piece] | None = None) -> Piece:
    """``html`` as a piece: the ``elements`` in it (a pattern of their opening tags: the
    tag name, then its id) run to their closing tag (none of them holds another of its
    name: text in the HTML is escaped), or the ``given`` pieces, as they occur in it."""
    pieces: dict[str, Piece] = {}
    frame: list[str] = []
    at = 0
    if given is not None:
        for key, piece in given.items():
            start = html.index(piece.html, at)
            frame += [html[at:start], f"\x00{key}\x00"]
            pieces[key], at = piece, start + len(piece.html)
    elif elements is not None:
        for match in elements.finditer(html):
            if match.start() < at:
                continue
            end = html.index(f"</{match.group(1)}>", match.end()) + len(match.group(1)) + 3
            frame += [html[at : match.start()], f"\x00{match.group(2)}\x00"]
            pieces[match.group(2)], at = Piece(html[match.start() : end]), end
    if not pieces:
        return Piece(html)
    frame.append(html[at:])
    return Piece(html, "".join(frame), pieces)


# The elements of a part that change alone: the run's state, progress, time and deadline;
# a step's row, the total and the timeline; an
# action's row and its step's summary (within the step's group); a functional test's row
# and the counts above them.
STEPS_ELEMENTS = re.compile(r'<(tr|figure) id="(step-\d+|steps-total|timeline)"')
GROUP_ELEMENTS = re.compile(r'<(tr|summary) id="(action-\d+|actions-step-\d+-summary)"')
CHECKS_ELEMENTS = re.compile(r'<(tr|p) id="(check-\d+|check-summary)"')
HEADER_ELEMENTS = re.compile(
    r'<(p|div|dd)(?: class="[^"]*")? id="(run-state|run-progress|run-elapsed|run-deadline)"'
)


@dataclass(frozen=True, eq=False, slots=True)
class Rendered:
    """One part as one variant's watchers see it: ``full``, its SSE event ``html-<part>``
    (the section's new content), and what a watcher that was shown an earlier rendering
    needs instead (``since``): ``tree``, the part as a piece (None: it is only ever sent
    whole), and ``lines``, the log's lines, newest first (seq, HTML), which the tree
    leaves out."""

    full: bytes
    tree: Piece | None = None
    lines: tuple[tuple[int, str], ...] = ()

    def since(self, before: Rendered | None) -> bytes:
        """What turns the part as ``before`` drew it into this one: nothing when they read
        alike; the changed elements and the new lines (``html-oob``) where that says it;
        the whole part otherwise."""
        if before is None:
            return self.full
        if self.full == before.full:
            return b""
        if self.tree is None or before.tree is None:
            return self.full
        oob = self.tree.swaps(before.tree)
        if oob is None:
            return self.full
        if self.lines != before.lines:
            newest = before.lines[0][0] if before.lines else None
            new = [html for seq, html in self.lines if newest is None or seq > newest]
            if newest is not None and (len(new) == len(self.lines) or self.lines[len(new)][0] != newest):
                return self.full  # a gap (more new lines than the log shows), or lines it never had
            oob.append(
                f'<template><ol id="{LOG_LINES_ID}" hx-swap-oob="afterbegin">{"".join(new)}</ol></template>'
            )
        return format_part("oob", "".join(oob)) if oob else b""


LOG_LINES_ID = "log-lines"


def _oob(html: str) -> str:
    """An element, marked to be swapped out of band (by its id), in a ``<template>`` of its
    own: the browser parses each alone, so a table's row after a paragraph stays a row
    (htmx takes the swaps out of templates)."""
    html = html.lstrip()
    name_end = html.index(" ")  # every element that changes alone has attributes: its id at least
    return f'<template>{html[:name_end]} hx-swap-oob="true"{html[name_end:]}</template>'


# What a burst renders for one variant: each part, in sending order.
Parts = dict[str, Rendered]


def parts_for(names: Iterable[str], events: list[dict] | None = None) -> list[str]:
    """The parts that events of these SSE names change, in sending order. With the
    events themselves, the functional tests only when one of their actions (the events'
    ``action``) is a functional test: a check's row changes only with its own action."""
    wanted = set(names)
    parts = [part for part, parts_events in PART_EVENTS.items() if parts_events & wanted]
    if "checks" in parts and "snapshot" not in wanted and events and not touches_checks(events):
        parts.remove("checks")
    return parts


def touches_checks(events: Iterable[dict]) -> bool:
    """Whether any of these events may change the functional tests' table: an action
    event of a functional test, or of no action named (one query, none without actions)."""
    actions = set()
    for event in events:
        if board.sse_event_name(event["kind"]) != "action":
            continue
        if event.get("action") is None:
            return True
        actions.add(event["action"])
    return bool(actions) and Action.objects.filter(pk__in=actions, kind=AK.FUNCTIONAL_CHECK).exists()


def format_part(part: str, html: str) -> bytes:
    """One SSE event ``html-<part>`` whose data is the HTML (one ``data:`` line per line;
    the browser joins them with newlines). No ``id:``: the browser's Last-Event-ID stays
    the number of the last RunEvent, which is what it replays from."""
    lines = html.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return (f"event: html-{part}\n" + "".join(f"data: {line}\n" for line in lines) + "\n").encode()


def render_parts(run_id: int, parts: list[str], variants: Iterable[Variant]) -> dict[Variant, Parts]:
    """Each of ``parts`` of run ``run_id`` for each variant (per variant, part by part in
    sending order). The run row is read once; the selectors run once per language (their
    labels are translated), the templates once per variant."""
    if not parts:
        return {}
    by_language: dict[str, list[frozenset[str]]] = {}
    for language, roles in variants:
        by_language.setdefault(language, []).append(roles)
    run = board.board_run(run_id=run_id)
    live = {**board.live_context(run), "error": ""}
    out: dict[Variant, Parts] = {}
    for language, role_sets in by_language.items():
        with translation.override(language):
            contexts = {}
            if "header" in parts and "steps" in parts:  # the header's counts from the steps' rows
                contexts["steps"] = {**board.board_steps(run_id=run_id, run=run), **live}
                counts = board.header_counts(contexts["steps"]["steps"])
                contexts["header"] = {**board.board_header(run_id=run_id, run=run, counts=counts), **live}
            for part in parts:
                if part not in contexts:
                    contexts[part] = {**SELECTORS[part](run_id=run_id, run=run), **live}
            for roles in role_sets:
                out[(language, roles)] = {
                    part: RENDER.get(part, _whole)(part, {**contexts[part], "roles": roles}) for part in parts
                }
    return out


def _whole(part: str, context: dict) -> Rendered:
    html = get_template(TEMPLATES[part]).render(context)
    elements = ELEMENTS.get(part)
    return Rendered(format_part(part, html), cut(html, elements) if elements else None)


def _actions(part: str, context: dict) -> Rendered:
    """Each step's group drawn once: alone (a piece), and inside the whole part. A group
    that shows what it showed before (``_group_key``) is not drawn again: most bursts
    change one step's actions, and the drawings are most of the part's cost."""
    groups = []
    pieces = {}
    for group in context["action_groups"]:
        key = _group_key(context, group)
        drawn = _GROUPS.get(key)
        if drawn is None:
            if len(_GROUPS) >= GROUPS_KEPT:
                _GROUPS.clear()  # the next bursts draw their groups again, once
            html = get_template(GROUP_TEMPLATE).render({**context, "group": group})
            drawn = _GROUPS[key] = (mark_safe(html), cut(html, GROUP_ELEMENTS))  # nosec B308 B703  # the template's own escaped output
        pieces[f"actions-step-{group['step'].number}"] = drawn[1]
        groups.append({**group, "html": drawn[0]})
    full = get_template(TEMPLATES[part]).render({**context, "action_groups": groups})
    return Rendered(format_part(part, full), cut(full, given=pieces))


def _group_key(context: dict, group: dict) -> tuple:
    """Everything a step's group of actions shows (``_action_group.html`` and
    ``_action_list.html`` read nothing else), in the language it is drawn in: its drawing
    is kept under it, as the log's lines are (``selectors.LogLine``), so nothing stale can
    come back."""
    step = group["step"]
    lists = tuple(
        (
            shown.kind,
            shown.step_number,
            shown.page,
            shown.total,
            shown.page_size,
            tuple(
                (
                    a.pk,
                    a.target,
                    a.host,
                    str(a.kind_label),
                    a.optional,
                    a.state,
                    str(a.state_label),
                    a.error,
                    a.reason,
                    a.attempt,
                    a.output_tail,
                    a.truncated,
                    a.can_retry,
                    a.can_skip,
                    a.can_mark_done,
                )
                for a in shown.actions
            ),
        )
        for shown in (group["decide"], group["rest"])
    )
    return (
        translation.get_language(),
        context["run"].pk,
        "operate" in context["roles"] and bool(context["live"]),
        step.number,
        step.state,
        str(group["name"]),
        str(group["state_label"]),
        tuple((state, str(label), n) for state, label, n in group["counts"]),
        bool(group["open"]),
        lists,
    )


# The groups drawn lately (``_group_key`` -> the HTML and its piece); a bounded number.
_GROUPS: dict[tuple, tuple[str, Piece]] = {}
GROUPS_KEPT = 512


def _log(part: str, context: dict) -> Rendered:
    """The lines (drawn once for all, ``selectors.LogLine``), and the count of those not
    shown; besides them the log is its heading and its length."""
    full = get_template(TEMPLATES[part]).render(context)
    more = get_template(LOG_MORE_TEMPLATE).render(context)
    lines = tuple((line.event.seq, str(line)) for line in context["lines"])
    tree = Piece(full, f"log {context['limit']}", {"log-more": Piece(more)})
    return Rendered(format_part(part, full), tree, lines)


ELEMENTS = {"header": HEADER_ELEMENTS, "steps": STEPS_ELEMENTS, "checks": CHECKS_ELEMENTS}
GROUP_TEMPLATE = "failover/_action_group.html"
LOG_MORE_TEMPLATE = "failover/_log_more.html"
RENDER: dict[str, Callable[[str, dict], Rendered]] = {"actions": _actions, "log": _log}


def warm() -> None:
    """Compile the templates and load the catalogues before the first burst needs them
    (the first rendering of a process costs seconds otherwise, on a busy machine)."""
    for name in (*TEMPLATES.values(), GROUP_TEMPLATE, LOG_MORE_TEMPLATE):
        get_template(name)
    for language, _name in settings.LANGUAGES:
        with translation.override(language):
            translation.gettext("Actions")
