"""The board's live stream: Server-Sent Events from an async view under ASGI.

- One hub per process (per event loop): one Redis pattern subscription for every run and
  one thread that reads the database, however many browsers watch. Redis only rings the
  doorbell ("run N has news", see failover/events.py); the events come from RunEvent rows.
- The hub is subscribed before any stream registers, and it reads the table for a stream
  only after the stream registered. So an event committed after that read rings the bell
  and is fetched, and one committed before is in the read; duplicates are dropped by seq.
- A stream replays the events after Last-Event-ID (the header; ``?last_event_id=`` for a
  page's first connection, which names the event the page was drawn at) or, without
  one, starts with a snapshot of the run. It sends keepalive comments, ends after
  DRPORTAL_SSE_MAX_SECONDS (the browser reconnects with Last-Event-ID), and ends with an
  ``end`` event once the run has ended (htmx closes the EventSource on it).
- Every RunEvent's seq is its SSE ``id:``; its SSE event name is ``run``, ``step`` or
  ``action``, which is what the board's partials listen to before they fetch their HTML
  from ordinary permission-checked views.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections import defaultdict
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.http import Http404, HttpRequest, StreamingHttpResponse
from django.views.decorators.http import require_GET

from hosts.permissions import permission_or_403

from . import board
from .events import channel
from .models import Run

log = logging.getLogger(__name__)

VIEW_RUN = "failover.view_run"
# A client this far behind (a stalled connection) is dropped; it reconnects and replays.
MAX_BACKLOG = 5000
FETCH_LIMIT = 500


def format_event(event: dict) -> bytes:
    data = json.dumps(event, separators=(",", ":"))  # one line: json escapes newlines
    return f"id: {event['seq']}\nevent: {board.sse_event_name(event['kind'])}\ndata: {data}\n\n".encode()


def format_snapshot(snapshot: dict) -> bytes:
    data = json.dumps(snapshot, separators=(",", ":"))
    return f"id: {snapshot['seq']}\nevent: snapshot\ndata: {data}\n\n".encode()


def format_end(state: str) -> bytes:
    return f'event: end\ndata: {{"state":"{state}"}}\n\n'.encode()


class Subscriber:
    def __init__(self, run_id: int, cursor: int | None) -> None:
        self.run_id = run_id
        self.cursor = cursor  # the last seq this client has; None: it needs a snapshot first
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closed = False

    def send(self, chunk: bytes) -> None:
        if self.closed:
            return
        if self.queue.qsize() >= MAX_BACKLOG:
            log.warning("SSE client of run %s fell %s events behind: dropped", self.run_id, MAX_BACKLOG)
            self.close()
            return
        self.queue.put_nowait(chunk)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)


def _read(run_id: int, after: int | None, snapshot: bool) -> tuple[dict | None, list[dict], str | None, int]:
    """In the hub's database thread: (snapshot, events after ``after``, the run's state and
    counter as read *before* the events). A dropped connection is reopened once."""
    for attempt in (1, 2):
        try:
            snap = board.run_snapshot(run_id=run_id) if snapshot else None
            if after is None:
                return snap, [], snap["state"] if snap else None, snap["seq"] if snap else 0
            events, state, seq = board.events_after(run_id=run_id, after=after, limit=FETCH_LIMIT)
            return snap, events, state, seq
        except (InterfaceError, OperationalError):
            connection.close()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class Hub:
    """Per process: the doorbell listener, the fetches, and the fan-out to streams."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.subs: dict[int, set[Subscriber]] = defaultdict(set)
        self.dirty: set[int] = set()
        self.fetching: dict[int, asyncio.Task] = {}
        # One thread, so one database connection, for every stream of this process.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sse-db")
        self.subscribed = asyncio.Event()
        self.redis_up = False
        self._tasks: list[asyncio.Task] = []
        self._started: asyncio.Future | None = None

    async def start(self) -> None:
        if self._started is None:
            self._started = self.loop.create_future()
            self._tasks = [
                asyncio.create_task(self._listen(), name="sse-doorbell"),
                asyncio.create_task(self._sweep(), name="sse-sweep"),
            ]
            try:
                await asyncio.wait_for(self.subscribed.wait(), timeout=3)
            except TimeoutError:
                log.warning("SSE hub: no Redis subscription yet; streams poll the database meanwhile")
            self._started.set_result(True)
        await asyncio.shield(self._started)

    async def _listen(self) -> None:
        backoff = 0.2
        while True:
            client = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3)
            pubsub = client.pubsub()
            try:
                await pubsub.psubscribe(channel(0).rsplit(":", 1)[0] + ":*")  # every run's doorbell
                async for message in pubsub.listen():
                    if message["type"] == "psubscribe":
                        self.redis_up = True
                        self.subscribed.set()
                        backoff = 0.2
                        # Bells may have rung while we were not listening: look at every run.
                        for run_id in list(self.subs):
                            self.ring(run_id)
                    elif message["type"] == "pmessage":
                        try:
                            self.ring(int(message["channel"].rsplit(b":", 1)[1]))
                        except (ValueError, IndexError):
                            continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down or gone: streams keep going on the sweep
                if self.redis_up:
                    log.warning("SSE hub lost Redis: %s", exc)
                self.redis_up = False
            finally:
                with contextlib.suppress(Exception):  # closing a dead connection may fail too
                    await pubsub.aclose()
                    await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5)

    async def _sweep(self) -> None:
        """A lost doorbell loses nothing: every run watched here is looked at now and then
        (every second while Redis is away)."""
        while True:
            await asyncio.sleep(1 if not self.redis_up else settings.DRPORTAL_SSE_KEEPALIVE_S)
            for run_id in list(self.subs):
                self.ring(run_id)

    def register(self, run_id: int, cursor: int | None) -> Subscriber:
        sub = Subscriber(run_id, cursor)
        self.subs[run_id].add(sub)
        self.ring(run_id)  # the first read for this stream happens after it registered
        return sub

    def unregister(self, sub: Subscriber) -> None:
        sub.closed = True
        subs = self.subs.get(sub.run_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.subs[sub.run_id]

    def ring(self, run_id: int) -> None:
        if run_id not in self.subs:
            return
        self.dirty.add(run_id)
        if run_id not in self.fetching:
            self.fetching[run_id] = asyncio.create_task(self._fetch_loop(run_id))

    async def _fetch_loop(self, run_id: int) -> None:
        # The engine commits in bursts (a step ends, the next starts, its actions queue):
        # waiting a moment after the first bell reads and sends a burst in one go, which
        # saves writes to every watcher (a third, in the reference failover) for 10 ms.
        window = settings.DRPORTAL_SSE_BATCH_MS / 1000
        try:
            while run_id in self.dirty and self.subs.get(run_id):
                if window:
                    await asyncio.sleep(window)
                self.dirty.discard(run_id)
                try:
                    await self._fetch(run_id)
                except Exception:
                    log.exception("SSE hub: reading run %s failed; trying again", run_id)
                    self.dirty.add(run_id)
                    await asyncio.sleep(1)
        finally:
            self.fetching.pop(run_id, None)

    async def _fetch(self, run_id: int) -> None:
        subs = [s for s in self.subs.get(run_id, ()) if not s.closed]
        if not subs:
            return
        want_snapshot = any(s.cursor is None for s in subs)
        cursors = [s.cursor for s in subs if s.cursor is not None]
        after = min(cursors) if cursors else None
        snap, events, state, seq = await self.loop.run_in_executor(
            self.executor, _read, run_id, after, want_snapshot
        )
        if state is None:  # the run is gone
            for sub in subs:
                sub.close()
            return
        chunks = [(e["seq"], format_event(e)) for e in events]
        snap_chunk = format_snapshot(snap) if snap else None
        complete = len(events) < FETCH_LIMIT
        ended = format_end(state) if state in board.FINAL_RUN_STATES and complete else None
        everything = b"".join(chunk for _seq, chunk in chunks)
        for sub in subs:
            if sub.closed:
                continue
            parts = []
            if sub.cursor is None:
                if snap_chunk is None:
                    continue  # registered during this read: the next one has its snapshot
                parts.append(snap_chunk)
                sub.cursor = snap["seq"]
            elif sub.cursor > seq:
                # It claims events this run never had (a restored database): start over.
                sub.cursor = None
                self.dirty.add(run_id)
                continue
            if chunks and sub.cursor < chunks[0][0] and not parts:
                parts.append(everything)  # the usual case: one write for every watcher alike
                sub.cursor = chunks[-1][0]
            else:
                for event_seq, chunk in chunks:
                    if event_seq > sub.cursor:
                        parts.append(chunk)
                        sub.cursor = event_seq
            if ended is not None and sub.cursor >= seq:
                parts.append(ended)
            if parts:
                sub.send(parts[0] if len(parts) == 1 else b"".join(parts))
            if ended is not None and sub.cursor >= seq:
                sub.close()
        if not complete:
            self.dirty.add(run_id)


_hub: Hub | None = None


async def get_hub() -> Hub:
    global _hub
    loop = asyncio.get_running_loop()
    if _hub is None or _hub.loop is not loop:
        _hub = Hub(loop)
    hub = _hub
    await hub.start()
    return hub


async def event_stream(run_id: int, last_event_id: int | None) -> AsyncIterator[bytes]:
    hub = await get_hub()
    sub = hub.register(run_id, last_event_id)
    loop = asyncio.get_running_loop()
    ends_at = loop.time() + settings.DRPORTAL_SSE_MAX_SECONDS
    keepalive = settings.DRPORTAL_SSE_KEEPALIVE_S
    try:
        # Sent at once: the headers go out and the client knows the stream is registered.
        yield f"retry: {settings.DRPORTAL_SSE_RETRY_MS}\n\n".encode()
        while True:
            left = ends_at - loop.time()
            if left <= 0:
                return
            try:
                async with asyncio.timeout(min(keepalive, left)):  # no task per wait, unlike wait_for
                    chunk = await sub.queue.get()
            except TimeoutError:
                if loop.time() < ends_at:
                    yield b": keepalive\n\n"
                continue
            if chunk is None:
                return
            parts = [chunk]
            done = False
            while not sub.queue.empty():  # a burst goes out as one write
                more = sub.queue.get_nowait()
                if more is None:
                    done = True
                    break
                parts.append(more)
            yield b"".join(parts)
            if done:
                return
    finally:
        hub.unregister(sub)


def last_event_id(request: HttpRequest) -> int | None:
    """The header a reconnecting EventSource sends, else the page's ``?last_event_id=``;
    anything unreadable means "no number", which gets a snapshot."""
    raw = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or ""
    try:
        value = int(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _release_connection() -> None:
    # The middleware's session and user lookups opened this request's connection; a
    # stream lives for minutes, and 200 watchers must not hold 200 PostgreSQL connections.
    if not connection.in_atomic_block:
        connection.close()


@require_GET
@permission_or_403(VIEW_RUN)
async def run_events(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    if not await Run.objects.filter(pk=pk).aexists():
        raise Http404(f"no run {pk}")
    await sync_to_async(_release_connection)()
    response = StreamingHttpResponse(
        event_stream(pk, last_event_id(request)), content_type="text/event-stream; charset=utf-8"
    )
    # Nothing between here and the browser may hold the stream back: no cache, no proxy
    # buffering, and no compression (there is no GZipMiddleware; tests keep it that way).
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"
    return response


# The path of ``run-events`` (failover/urls.py); tests/board check they agree.
STREAM_PATH = re.compile(r"^/runs/\d+/events/$")


class StreamGate:
    """ASGI wrapper: at most ``limit`` event-stream requests are being *set up* at once.

    Under ASGI Django runs each request's (synchronous) middleware in a thread of its own,
    and the session and user lookups open a database connection there. When 200 browsers
    reconnect at once (a server restart), 200 such threads would ask PostgreSQL for 200
    connections. The gate lets a stream through once the one before it has answered
    (its view has released that connection); the streaming itself is not limited."""

    def __init__(self, app, limit: int | None = None) -> None:
        self.app = app
        self.limit = limit
        self._gates: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    def _gate(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if loop not in self._gates:
            self._gates = {loop: asyncio.Semaphore(self.limit or settings.DRPORTAL_SSE_SETUP_CONCURRENCY)}
        return self._gates[loop]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not STREAM_PATH.match(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        gate = self._gate()
        await gate.acquire()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                gate.release()

        async def gated_send(message) -> None:
            if message["type"] == "http.response.start":
                release()
            await send(message)

        try:
            await self.app(scope, receive, gated_send)
        finally:
            release()
