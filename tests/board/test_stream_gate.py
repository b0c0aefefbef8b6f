"""The gate in front of the event streams: a burst of reconnecting browsers is set up a
few at a time (each setup holds a database connection), and streaming is not limited."""

from __future__ import annotations

import asyncio

from django.urls import reverse

from failover.board.gate import STREAM_PATH, StreamGate


def test_the_gate_knows_the_stream_urls_and_nothing_else():
    assert STREAM_PATH.match(reverse("run-events", args=[42]))
    assert not STREAM_PATH.match(reverse("run-board", args=[42]))
    assert not STREAM_PATH.match(reverse("run-part", args=[42, "log"]))


def test_a_burst_of_stream_setups_passes_the_gate_a_few_at_a_time_and_then_streams_together():
    setting_up = 0
    most_at_once = 0
    streaming = 0
    most_streaming = 0

    async def app(scope, receive, send):
        nonlocal setting_up, most_at_once, streaming, most_streaming
        setting_up += 1
        most_at_once = max(most_at_once, setting_up)
        await asyncio.sleep(0.01)  # the middleware and the view
        setting_up -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        streaming += 1
        most_streaming = max(most_streaming, streaming)
        await asyncio.sleep(0.05)  # the stream
        streaming -= 1
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    gate = StreamGate(app, limit=4)

    async def noop(message):
        pass

    async def burst():
        scope = {"type": "http", "path": "/runs/1/events/"}
        await asyncio.gather(*(gate(scope, None, noop) for _ in range(40)))
        await gate({"type": "http", "path": "/runs/1/"}, None, noop)  # not a stream: not gated

    asyncio.run(burst())
    assert most_at_once == 4
    assert most_streaming > 4
