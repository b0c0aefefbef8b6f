"""The stream's parts in this process: the hub (real Redis, a real database thread), the
read it does on every doorbell, and the gate's hand-over. The ASGI server is the pair of
callables (``send``, ``receive``) that ASGI is; tests/board/test_stream.py runs the
whole thing under uvicorn."""

from __future__ import annotations

import asyncio

import pytest
from django.db import connection, transaction
from django.test import Client

from failover.board import gate, stream
from failover.engine.journal import record_event
from failover.models import Action
from failover.runs.selectors import events_after

pytestmark = pytest.mark.django_db(transaction=True)


def run_with_hub(scenario):
    """``asyncio.run(scenario())``; then the hub's database thread lets go of its
    connection (the test database is flushed and dropped after us)."""
    hubs = []

    async def main():
        hubs.append(await stream.get_hub())
        return await scenario(hubs[0])

    try:
        return asyncio.run(main())
    finally:
        for hub in hubs:
            hub.executor.submit(lambda: connection.close()).result()
            hub.executor.shutdown()


def write_event(run_id: int, message: str) -> int:
    """In a thread of its own (as the engine's worker would), closing its connection."""
    try:
        with transaction.atomic():
            return record_event(run_id=run_id, kind="action_succeeded", message=message).seq
    finally:
        connection.close()


class Browser:
    """One client as an ASGI server sees it: what was sent to it, and a switch that makes
    ``receive`` say it went away."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.arrived = asyncio.Event()
        self.gone = asyncio.Event()

    async def send(self, message: dict) -> None:
        self.sent.append(message)
        self.arrived.set()

    async def receive(self) -> dict:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent)

    async def wait_for(self, needle: bytes, timeout: float = 5) -> None:
        async with asyncio.timeout(timeout):
            while needle not in self.body():
                self.arrived.clear()
                await self.arrived.wait()


def test_the_streams_read_is_the_boards_selector_in_one_statement(make_run, users, django_assert_num_queries):
    run = make_run(events=3)
    action = Action.objects.filter(run=run).order_by("pk").first()
    with transaction.atomic():
        record_event(run_id=run.pk, kind="step_started", message="Step 2", data={"step": 2, "x": [1]})
        record_event(
            run_id=run.pk, kind="override", message="by hand", user=users["mod"], action_id=action.pk
        )
        record_event(run_id=run.pk, kind="note", message="a list, not a dict", data=["step"])
        record_event(run_id=run.pk, kind="note", message="named step", data={"step": "preflight"})
    for after, limit in ((0, 500), (2, 500), (4, 2), (8, 500)):
        with django_assert_num_queries(1):
            read = stream.read_events(run.pk, after, limit)
        assert read == events_after(run_id=run.pk, after=after, limit=limit)
    events, state, seq = stream.read_events(run.pk, 4)
    assert [(e["seq"], e["step"], e["user"]) for e in events] == [
        (5, 2, None),
        (6, None, "mod"),
        (7, None, None),
        (8, "preflight", None),
    ]
    assert (state, seq) == ("running", 8)
    assert stream.read_events(run.pk + 999, 0) == ([], None, 0)


def test_a_client_that_goes_away_is_forgotten_and_the_others_stream_on(make_run):
    run = make_run()

    async def scenario(hub):
        staying, leaving = Browser(), Browser()
        tasks = [asyncio.create_task(stream.serve(run.pk, 1, b.send, b.receive)) for b in (staying, leaving)]
        for browser in (staying, leaving):
            await browser.wait_for(b"retry:")
        assert len(hub.subs[run.pk]) == 2
        leaving.gone.set()
        await asyncio.wait_for(tasks[1], timeout=2)  # long before its lifetime is over
        assert len(hub.subs[run.pk]) == 1
        seq = await asyncio.to_thread(write_event, run.pk, "after the other left")
        await staying.wait_for(f"id: {seq}\n".encode())
        staying.gone.set()
        await asyncio.wait_for(tasks[0], timeout=2)
        assert run.pk not in hub.subs
        async with asyncio.timeout(2):  # and a read under way is the last one for the run
            while run.pk in hub.fetching:
                await asyncio.sleep(0.01)
        return leaving.sent[-1]

    last = run_with_hub(scenario)
    assert last == {"type": "http.response.body", "body": b"", "more_body": False}


def test_a_burst_reaches_a_client_as_one_write_in_order(make_run):
    run = make_run()

    async def scenario(hub):
        browser = Browser()
        task = asyncio.create_task(stream.serve(run.pk, 1, browser.send, browser.receive))
        await browser.wait_for(b"retry:")
        writes_before = len(browser.sent)

        def burst() -> list[int]:
            try:
                with transaction.atomic():
                    return [
                        record_event(run_id=run.pk, kind="step_done", message=f"{i}").seq for i in range(5)
                    ]
            finally:
                connection.close()

        seqs = await asyncio.to_thread(burst)
        await browser.wait_for(f"id: {seqs[-1]}\n".encode())
        browser.gone.set()
        await asyncio.wait_for(task, timeout=2)
        return seqs, browser.sent[writes_before], len(browser.sent) - writes_before

    seqs, first, writes = run_with_hub(scenario)
    assert seqs == [2, 3, 4, 5, 6]
    ids = [int(line[4:]) for line in first["body"].decode().split("\n") if line.startswith("id: ")]
    assert ids == seqs and first["more_body"] is True
    assert writes == 2  # the burst, and the end of the response


def test_a_stalled_client_is_dropped_with_what_waits_for_it_ending_at_an_event():
    sub = stream.Subscriber(run_id=1, cursor=0)
    event = b"id: 1\nevent: action\ndata: " + b"x" * 1000 + b"\n\n"
    sent = 0
    while not sub.closed:
        sub.send(event)
        sent += 1
    assert sent * len(event) > stream.MAX_BACKLOG_BYTES
    waiting = asyncio.run(sub.next())
    assert waiting == event * (sent - 1)  # the event that did not fit is not half sent
    assert asyncio.run(sub.next()) is None


def _fake_hub(fetch) -> stream.Hub:
    """A hub of its own (no Redis, no database) whose reads are ``fetch(hub, run_id)``."""
    hub = stream.Hub(asyncio.get_running_loop())

    async def read(run_id: int) -> None:
        await fetch(hub, run_id)

    hub._fetch = read  # type: ignore[method-assign]
    return hub


def test_bells_that_ring_while_a_burst_is_read_are_read_together_a_window_after_the_first(settings):
    settings.DRPORTAL_SSE_BATCH_MS = 50
    reads: list[float] = []

    async def fetch(hub, run_id):
        reads.append(hub.loop.time())
        if len(reads) == 1:  # news while the first burst is read: three bells, 10 ms apart
            for _ in range(3):
                hub.ring(run_id)
                await asyncio.sleep(0.01)

    async def scenario():
        hub = _fake_hub(fetch)
        hub.subs[7].add(stream.Subscriber(7, 0))
        first_bell = hub.loop.time()
        hub.ring(7)
        while 7 in hub.fetching:
            await asyncio.sleep(0.005)
        return first_bell

    first_bell = asyncio.run(scenario())
    assert len(reads) == 2  # the three bells: one read
    assert reads[0] - first_bell >= 0.045  # the window after the first bell of a quiet spell
    assert reads[1] - reads[0] >= 0.045  # and after the first bell during the burst


def test_the_next_read_starts_after_the_streams_wrote_the_last_burst(settings):
    settings.DRPORTAL_SSE_BATCH_MS = 0
    order: list[str] = []
    sub = stream.Subscriber(7, 0)

    async def fetch(hub, run_id):
        order.append("read")
        if order.count("read") == 1:
            hub.ring(run_id)  # more news: a second read follows at once
        sub.send(b"burst")

    async def scenario():
        hub = _fake_hub(fetch)
        hub.subs[7].add(sub)

        async def writes():
            while await sub.next() is not None:
                order.append("written")

        writer = asyncio.create_task(writes())
        await asyncio.sleep(0)  # the stream waits for what the hub hands it
        hub.ring(7)
        while 7 in hub.fetching:
            await asyncio.sleep(0)
        sub.close()
        await writer

    asyncio.run(scenario())
    assert order == ["read", "written", "read", "written"]


def test_the_gate_hands_only_a_200_over_to_the_stream():
    sent: list[dict] = []

    async def failing_after_the_view(scope, receive, send):
        scope[gate.HANDOFF].run_id = 1  # the view handed over, then a middleware failed
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"Server Error"})

    async def record(message):
        sent.append(message)

    asyncio.run(
        gate.StreamGate(failing_after_the_view)({"type": "http", "path": "/runs/1/events/"}, None, record)
    )
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1] == {"type": "http.response.body", "body": b"Server Error"}


def test_the_event_stream_view_needs_the_gate_in_front(make_run, users):
    run = make_run()
    client = Client()
    client.force_login(users["helpdesk"])
    response = client.get(f"/runs/{run.pk}/events/")
    assert response.status_code == 503
    assert b"StreamGate" in response.content and b"DRPORTAL_BOARD_POLLING" in response.content


def test_a_burst_is_rendered_once_per_variant_however_many_watch(make_run, monkeypatch):
    from failover.board import push

    run = make_run()
    calls: list[frozenset] = []
    real = push.render_parts

    def counted(run_id, parts, variants):
        calls.append(frozenset(variants))
        return real(run_id, parts, variants)

    monkeypatch.setattr(push, "render_parts", counted)
    english, german = ("en", frozenset()), ("de", frozenset({"operate"}))

    async def scenario(hub):
        browsers = [Browser() for _ in range(6)]
        tasks = [
            asyncio.create_task(stream.serve(run.pk, 1, b.send, b.receive, german if i == 5 else english))
            for i, b in enumerate(browsers)
        ]
        for browser in browsers:
            await browser.wait_for(b"retry:")
        calls.clear()
        seq = await asyncio.to_thread(write_event, run.pk, "one burst")
        for browser in browsers:
            await browser.wait_for(b"event: html-log\n")
        for browser in browsers:
            browser.gone.set()
        await asyncio.gather(*tasks)
        return seq, [b.body().decode() for b in browsers]

    seq, bodies = run_with_hub(scenario)
    rendered = [c for c in calls if c]
    assert rendered == [frozenset({english, german})]  # one rendering, both variants
    for body in bodies:
        assert (
            body.index(f"id: {seq}\n") < body.index("event: html-header\n") < body.index("event: html-log\n")
        )
    assert "Aktionen" in bodies[5] and all("Actions" in body for body in bodies[:5])


def write_action_event(run_id: int, action_id: int, message: str) -> int:
    try:
        with transaction.atomic():
            return record_event(
                run_id=run_id, kind="action_succeeded", message=message, action_id=action_id
            ).seq
    finally:
        connection.close()


def parts_sent(body: str, after_seq: int) -> list[str]:
    """The html-<part> events that came after the event ``after_seq``, in order."""
    rest = body[body.index(f"id: {after_seq}\n") :]
    return [line.removeprefix("event: html-") for line in rest.split("\n") if line.startswith("event: html-")]


def test_the_functional_tests_are_pushed_only_when_one_of_their_actions_moved(make_run):
    run = make_run(per_step=1, checks=2)
    host_check = Action.objects.filter(run=run, kind="check_host").order_by("pk").first()
    functional = Action.objects.filter(run=run, kind="functional_check").order_by("pk").first()

    async def scenario(hub):
        browser = Browser()
        task = asyncio.create_task(stream.serve(run.pk, 1, browser.send, browser.receive))
        await browser.wait_for(b"retry:")
        other = await asyncio.to_thread(write_action_event, run.pk, host_check.pk, "a host check")
        await browser.wait_for(b"event: html-log\n")
        check = await asyncio.to_thread(write_action_event, run.pk, functional.pk, "a functional test")
        await browser.wait_for(f"id: {check}\n".encode())
        await browser.wait_for(b"event: html-checks\n")
        browser.gone.set()
        await asyncio.wait_for(task, timeout=2)
        return other, check, browser.body().decode()

    other, check, body = run_with_hub(scenario)
    assert parts_sent(body, other)[: parts_sent(body, other).index("log") + 1] == [
        "header",
        "steps",
        "actions",
        "log",
    ]
    assert "checks" in parts_sent(body, check)


def test_a_watcher_is_not_sent_a_part_again_whose_html_did_not_change(make_run):
    run = make_run(per_step=1, checks=2)
    functional = Action.objects.filter(run=run, kind="functional_check").order_by("pk").first()

    async def scenario(hub):
        early, late = Browser(), Browser()
        first_task = asyncio.create_task(stream.serve(run.pk, 1, early.send, early.receive))
        await early.wait_for(b"retry:")
        first = await asyncio.to_thread(write_action_event, run.pk, functional.pk, "once")
        await early.wait_for(b"event: html-log\n")
        # A watcher that comes later has been sent nothing yet: it gets every part.
        second_task = asyncio.create_task(stream.serve(run.pk, first, late.send, late.receive))
        await late.wait_for(b"retry:")
        second = await asyncio.to_thread(write_action_event, run.pk, functional.pk, "twice")
        for browser in (early, late):
            await browser.wait_for(f'id="event-{second}"'.encode(), timeout=10)  # its log line
            browser.gone.set()
        await asyncio.gather(first_task, second_task)
        return first, second, early.body().decode(), late.body().decode()

    first, second, early, late = run_with_hub(scenario)
    assert "checks" in parts_sent(early, first)
    # The functional test's action did not change: its table reads as before.
    assert "checks" not in parts_sent(early, second)
    assert "checks" in parts_sent(late, second)
    assert "log" not in parts_sent(early, second)  # not the whole log again: its new line
    new_line = early[early.index(f"id: {second}\n") :]
    assert "event: html-oob\n" in new_line and 'hx-swap-oob="afterbegin"' in new_line
    assert f'id="event-{second}"' in new_line and f'id="event-{first}"' not in new_line
    assert "log" in parts_sent(late, second)  # sent nothing before: the whole log


def write_state_event(run_id: int, action_id: int, state: str) -> int:
    """An action's new state and its event, in one transaction (as the engine writes them)."""
    try:
        with transaction.atomic():
            Action.objects.filter(pk=action_id).update(state=state)
            return record_event(
                run_id=run_id, kind=f"action_{state}", message=f"now {state}", action_id=action_id
            ).seq
    finally:
        connection.close()


def test_a_watcher_is_sent_only_the_elements_that_changed_and_a_newcomer_whole_parts(make_run):
    run = make_run(per_step=2)
    step2 = Action.objects.filter(run=run, step__number=2).order_by("pk").first()
    step4, step4_too = Action.objects.filter(run=run, step__number=4).order_by("pk")[:2]

    async def scenario(hub):
        early, late = Browser(), Browser()
        first_task = asyncio.create_task(stream.serve(run.pk, 1, early.send, early.receive))
        await early.wait_for(b"retry:")
        first = await asyncio.to_thread(write_state_event, run.pk, step2.pk, "succeeded")
        await early.wait_for(f'id="event-{first}"'.encode(), timeout=10)
        second_task = asyncio.create_task(stream.serve(run.pk, first, late.send, late.receive))
        await late.wait_for(b"retry:")
        second = await asyncio.to_thread(write_state_event, run.pk, step4.pk, "failed")
        for browser in (early, late):
            await browser.wait_for(f'id="event-{second}"'.encode(), timeout=10)
        third = await asyncio.to_thread(write_state_event, run.pk, step4_too.pk, "running")
        for browser in (early, late):
            await browser.wait_for(f'id="event-{third}"'.encode(), timeout=10)
            browser.gone.set()
        await asyncio.gather(first_task, second_task)
        return first, second, third, early.body().decode(), late.body().decode()

    first, second, third, early, late = run_with_hub(scenario)
    assert "actions" in parts_sent(early, first)  # a new stream: the whole part
    # A failed action goes to the list of those that need a decision: its step's group anew.
    burst = early[early.index(f"id: {second}\n") : early.index(f"id: {third}\n")]
    assert "actions" not in parts_sent(early, second) and "oob" in parts_sent(early, second)
    assert '<details hx-swap-oob="true" class="step-actions" id="actions-step-4" open>' in burst
    assert 'id="actions-step-2"' not in burst and 'id="actions-step-0"' not in burst
    assert f'id="action-{step4.pk}" data-state="failed"' in burst
    assert '<tr hx-swap-oob="true" id="step-4"' in burst  # its row of the steps, not all of them
    assert "steps" not in parts_sent(early, second) and 'id="step-3"' not in burst
    # One running now, in the same list: its row and its step's counts, nothing else of it.
    burst = early[early.index(f"id: {third}\n") :]
    assert f'<tr hx-swap-oob="true" id="action-{step4_too.pk}" data-state="running">' in burst
    assert '<summary hx-swap-oob="true" id="actions-step-4-summary">' in burst
    assert 'id="actions-step-4"' not in burst and f'id="action-{step4.pk}"' not in burst
    # The watcher that came between the bursts was sent the actions whole, step 2 as it is now.
    late_burst = late[late.index(f"id: {second}\n") :]
    assert "actions" in parts_sent(late, second)
    assert f'id="action-{step2.pk}" data-state="succeeded"' in late_burst
