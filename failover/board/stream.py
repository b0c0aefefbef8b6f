"""The board's live stream: Server-Sent Events under ASGI.

- Django decides whether a client may stream (middleware, login, permission, the run
  exists; the view ``run_events``) and answers with the headers; the ASGI wrapper
  ``StreamGate`` (drportal/asgi.py) then sends the events straight to the server.
- One hub per process (per event loop): one Redis pattern subscription for every run and
  one thread that reads the database, however many browsers watch. Redis only rings the
  doorbell ("run N has news", see failover/events.py); the events come from RunEvent rows,
  read once per burst and run (one statement) and formatted once for all its watchers.
- The hub is subscribed before any stream registers, and it reads the table for a stream
  only after the stream registered. So an event committed after that read rings the bell
  and is fetched, and one committed before is in the read; duplicates are dropped by seq.
- A stream replays the events after Last-Event-ID (the header; ``?last_event_id=`` for a
  page's first connection, which names the event the page was drawn at) or, without
  one, starts with a snapshot of the run. It gets keepalive comments (one tick of the hub
  for all streams), ends after DRPORTAL_SSE_MAX_SECONDS (the browser reconnects with
  Last-Event-ID), and ends with an ``end`` event once the run has ended (htmx closes the
  EventSource on it).
- Every RunEvent's seq is its SSE ``id:``; its SSE event name is ``run``, ``step`` or
  ``action``. After the events of a burst come the board's parts they change, as HTML
  (``html-header``, ``html-steps``, ...: ``push.py``), rendered once per burst for every
  watcher alike (one rendering per language and set of roles among them): the browsers
  swap them in and fetch nothing. A watcher is sent only the parts whose HTML changed
  since it was last sent them, and of the actions and the log only the step groups that
  changed and the new lines (``html-oob``); a new stream is sent them whole. Who may watch was decided by the ordinary permission-
  checked view, when the stream was set up.
- What a watcher costs the server per burst of events: one wakeup of its task and one
  ``send`` to the ASGI server (bench/board.py measures it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import redis.asyncio as aioredis
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from failover.engine import sql
from failover.events import channel
from failover.runs.selectors import events_after

from . import push
from . import selectors as board

log = logging.getLogger(__name__)


# A client this far behind (a stalled connection: its socket's buffers are full) is
# dropped; it reconnects and replays.
MAX_BACKLOG_BYTES = 4 * 1024 * 1024


FETCH_LIMIT = 500


def format_event(event: dict) -> bytes:
    data = json.dumps(event, separators=(",", ":"))  # one line: json escapes newlines
    return f"id: {event['seq']}\nevent: {board.sse_event_name(event['kind'])}\ndata: {data}\n\n".encode()


def format_snapshot(snapshot: dict) -> bytes:
    data = json.dumps(snapshot, separators=(",", ":"))
    return f"id: {snapshot['seq']}\nevent: snapshot\ndata: {data}\n\n".encode()


def format_end(state: str) -> bytes:
    return f'event: end\ndata: {{"state":"{state}"}}\n\n'.encode()


KEEPALIVE = b": keepalive\n\n"


class Subscriber:
    """One stream's place in the hub: its cursor and the bytes waiting to be written.

    The hub appends and wakes the stream's task; the task takes everything that is
    waiting in one go (a burst is one write). No queue, and no timer per wait: the hub's
    keepalive tick and one timer for the stream's lifetime stand in for them."""

    __slots__ = (
        "closed",
        "cursor",
        "pending",
        "pending_bytes",
        "run_id",
        "shown",
        "variant",
        "waiter",
        "written",
    )

    def __init__(self, run_id: int, cursor: int | None, variant: push.Variant | None = None) -> None:
        self.run_id = run_id
        self.variant = variant or default_variant()  # which rendering of the board it gets
        self.cursor = cursor  # the last seq this client has; None: it needs a snapshot first
        # The board's parts as this client was last sent them (part -> its SSE event). The
        # watchers that were sent the same share one dict, so a burst works out what to
        # send once for all of them (``Fanout``).
        self.shown: push.Parts = NOTHING_SHOWN
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.written = False  # since the last keepalive tick

    def send(self, chunk: bytes) -> None:
        if self.closed:
            return
        if self.pending_bytes + len(chunk) > MAX_BACKLOG_BYTES:
            # What is waiting ends at an event: the client gets it, then reconnects from there.
            log.warning("SSE client of run %s fell %s bytes behind: dropped", self.run_id, MAX_BACKLOG_BYTES)
            self.close()
            return
        self.pending.append(chunk)
        self.pending_bytes += len(chunk)
        self.written = True
        self._wake()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self) -> bytes | None:
        """Everything waiting, as one chunk; None once the stream is over."""
        while not self.pending:
            if self.closed:
                return None
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        chunk = self.pending[0] if len(self.pending) == 1 else b"".join(self.pending)
        self.pending.clear()
        self.pending_bytes = 0
        return chunk


def read_events(run_id: int, after: int, limit: int = FETCH_LIMIT) -> tuple[list[dict], str | None, int]:
    """What ``runs.selectors.events_after`` returns, read in one statement (the hub reads this on
    every bell): the run's state and counter and its events after ``after`` come from one
    snapshot, so a final state comes with the event that ended the run. The statement is
    PostgreSQL's (LATERAL, jsonb); elsewhere (the demo's SQLite) the selector reads it."""
    if connection.vendor != "postgresql":
        return events_after(run_id=run_id, after=after, limit=limit)
    with connection.cursor() as cursor:
        cursor.execute(sql.events_after(), [after, limit, run_id])
        rows = cursor.fetchall()
    if not rows:
        return [], None, 0
    events = [
        {
            "seq": seq,
            "kind": kind,
            "message": message,
            "at": created_at.isoformat(),
            "action": action_id,
            "user": username,
            "step": json.loads(step) if step is not None else None,
        }
        for _state, _counter, seq, kind, message, created_at, action_id, username, step in rows
        if seq is not None
    ]
    return events, rows[0][0], rows[0][1]


def default_variant() -> push.Variant:
    return (settings.LANGUAGE_CODE, frozenset())


NOTHING_SHOWN: push.Parts = {}  # shared, never changed: a new stream was sent no part yet


class Fanout:
    """What one burst's parts come to for its watchers: per variant and per what a watcher
    was shown before, what changed in its parts (one bytes object: whole parts, or their
    changed pieces, ``push.Rendered.since``) and what it has been shown then (one dict). Watchers that were sent the same before (all of them, but
    a new one) share both, so the work is per variant, not per watcher.

    A watcher sent events is sent at least the log, which shows them, even when the
    parts read as they did (they were drawn after a read that came just before these
    events): its burst always ends with the board's HTML."""

    __slots__ = ("_cache", "rendered")

    def __init__(self, rendered: dict[push.Variant, push.Parts]) -> None:
        self.rendered = rendered
        # (variant, id of what was shown) -> (what was shown, kept so the id stays its
        # own; the bytes to send; what is shown then)
        self._cache: dict[tuple[push.Variant, int], tuple[push.Parts, bytes, push.Parts]] = {}

    def html(self, sub: Subscriber) -> bytes:
        """The parts to send ``sub`` after its events; notes that it was shown them."""
        parts = self.rendered.get(sub.variant)
        if not parts:
            return b""
        before = sub.shown
        hit = self._cache.get((sub.variant, id(before)))
        if hit is None or hit[0] is not before:
            changed = [chunk for part, now in parts.items() if (chunk := now.since(before.get(part)))]
            if not changed:
                changed = [(parts.get("log") or next(reversed(parts.values()))).full]
            hit = self._cache[(sub.variant, id(before))] = (before, b"".join(changed), {**before, **parts})
        sub.shown = hit[2]
        return hit[1]


class Read:
    """What the hub's database thread read for a run: a snapshot (if asked for), the events
    after a cursor, the run's state and counter, and the board's parts those change, as
    SSE bytes per variant."""

    __slots__ = ("events", "html", "seq", "snapshot", "state")

    def __init__(self, snapshot, events, state, seq, html) -> None:
        self.snapshot: dict | None = snapshot
        self.events: list[dict] = events
        self.state: str | None = state
        self.seq: int = seq
        self.html: dict[push.Variant, push.Parts] = html


def _read(run_id: int, after: int | None, snapshot: bool, variants: frozenset[push.Variant]) -> Read:
    """In the hub's database thread. The parts are rendered after the events were read, so
    they show at least what the events say. A dropped connection is reopened once."""
    for attempt in (1, 2):
        try:
            snap = board.run_snapshot(run_id=run_id) if snapshot else None
            events: list[dict]
            if after is None:
                events, state, seq = [], snap["state"] if snap else None, snap["seq"] if snap else 0
            else:
                events, state, seq = read_events(run_id, after)
            names = {board.sse_event_name(e["kind"]) for e in events} | ({"snapshot"} if snap else set())
            parts = push.parts_for(names, events) if state is not None else []
            html = push.render_parts(run_id, parts, variants)
            return Read(snap, events, state, seq, html)
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
        # When the first bell since its last read rang, per run: a read waits the batch
        # window after it (``_fetch_loop``).
        self.rung_at: dict[int, float] = {}
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
                asyncio.create_task(self._keepalive(), name="sse-keepalive"),
            ]
            warming = self.loop.run_in_executor(self.executor, push.warm)
            try:
                await asyncio.wait_for(self.subscribed.wait(), timeout=3)
            except TimeoutError:
                log.warning("SSE hub: no Redis subscription yet; streams poll the database meanwhile")
            try:
                await warming
            except Exception:  # a broken template shows on the first burst, with its traceback
                log.exception("SSE hub: warming the board's templates failed")
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

    async def _keepalive(self) -> None:
        """A comment to every stream that was sent nothing since the last tick: one timer
        for all of them, however many there are."""
        while True:
            await asyncio.sleep(settings.DRPORTAL_SSE_KEEPALIVE_S)
            for subs in list(self.subs.values()):
                for sub in subs:
                    if not sub.written:
                        sub.send(KEEPALIVE)
                    sub.written = False

    def register(self, run_id: int, cursor: int | None, variant: push.Variant | None = None) -> Subscriber:
        sub = Subscriber(run_id, cursor, variant)
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
        if run_id not in self.dirty:
            self.rung_at[run_id] = self.loop.time()
        self.dirty.add(run_id)
        if run_id not in self.fetching:
            self.fetching[run_id] = asyncio.create_task(self._fetch_loop(run_id))

    async def _fetch_loop(self, run_id: int) -> None:
        # The engine commits in bursts (a step ends, the next starts, its actions queue):
        # a read waits a moment after the first bell since the last read, and reads and
        # sends what rang meanwhile in one go. That saves writes to every watcher (a third,
        # in the reference failover) for at most 50 ms, whether the bell rang in a quiet
        # spell or while the last burst was read and sent: under a stream of events the
        # bursts are read at most once a window, not as fast as they can be sent (each
        # costs a rendering, and a write and a wakeup per watcher).
        window = settings.DRPORTAL_SSE_BATCH_MS / 1000
        try:
            while run_id in self.dirty and self.subs.get(run_id):
                wait = self.rung_at.get(run_id, 0.0) + window - self.loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.dirty.discard(run_id)
                try:
                    await self._fetch(run_id)
                    # The streams handed the burst were woken before this task: one turn of
                    # the loop runs them, and they write it. The next read starts after
                    # those writes, not beside them (its thread would take the GIL from
                    # them, which delays this burst at every watcher).
                    await asyncio.sleep(0)
                except Exception:
                    log.exception("SSE hub: reading run %s failed; trying again", run_id)
                    self.dirty.add(run_id)
                    await asyncio.sleep(1)
        finally:
            self.fetching.pop(run_id, None)
            if run_id not in self.dirty:
                self.rung_at.pop(run_id, None)

    async def _fetch(self, run_id: int) -> None:
        subs = [s for s in self.subs.get(run_id, ()) if not s.closed]
        if not subs:
            return
        want_snapshot = any(s.cursor is None for s in subs)
        cursors = [s.cursor for s in subs if s.cursor is not None]
        after = min(cursors) if cursors else None
        variants = frozenset(s.variant for s in subs)
        read = await self.loop.run_in_executor(self.executor, _read, run_id, after, want_snapshot, variants)
        snap, events, state, seq = read.snapshot, read.events, read.state, read.seq
        if state is None:  # the run is gone
            for sub in subs:
                sub.close()
            return
        chunks = [(e["seq"], format_event(e)) for e in events]
        snap_chunk = format_snapshot(snap) if snap else None
        complete = len(events) < FETCH_LIMIT
        ended = format_end(state) if state in board.FINAL_RUN_STATES and complete else None
        everything = b"".join(chunk for _seq, chunk in chunks)
        fanout = Fanout(read.html)
        common: dict[int, bytes] = {}  # id of its parts (kept alive by fanout) -> events + parts
        for sub in subs:
            if sub.closed:
                continue
            if read.html and sub.variant not in read.html:
                self.dirty.add(run_id)  # registered during this read: the next one is its
                continue
            parts = []
            if sub.cursor is None:
                if snap_chunk is None:
                    continue  # registered during this read: the next one has its snapshot
                assert snap is not None  # snap_chunk is made from it
                parts.append(snap_chunk)
                sub.cursor = snap["seq"]
            elif sub.cursor > seq:
                # It claims events this run never had (a restored database): start over.
                sub.cursor = None
                self.dirty.add(run_id)
                continue
            if chunks and sub.cursor < chunks[0][0] and not parts:
                # the usual case: the same bytes object for every watcher shown the same
                html = fanout.html(sub)
                both = common.get(id(html))
                if both is None:
                    both = common[id(html)] = everything + html
                parts.append(both)
                sub.cursor = chunks[-1][0]
            else:
                before = sub.cursor
                for event_seq, chunk in chunks:
                    if event_seq > sub.cursor:
                        parts.append(chunk)
                        sub.cursor = event_seq
                if read.html and (sub.cursor > before or parts):
                    parts.append(fanout.html(sub))  # a snapshot, or the events it had not seen yet
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


async def serve(run_id: int, cursor: int | None, send, receive, variant: push.Variant | None = None) -> None:
    """Stream run ``run_id`` to one client, after its response has started: the retry
    line, then whatever the hub hands this stream, until the run ends, the stream's
    lifetime is over, the hub drops it, or the client goes away."""
    hub = await get_hub()
    sub = hub.register(run_id, cursor, variant)
    lifetime = asyncio.get_running_loop().call_later(settings.DRPORTAL_SSE_MAX_SECONDS, sub.close)

    async def until_disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        sub.close()

    watcher = asyncio.create_task(until_disconnected())
    try:
        # Sent at once: the client knows the stream is registered.
        retry = f"retry: {settings.DRPORTAL_SSE_RETRY_MS}\n\n".encode()
        await send({"type": "http.response.body", "body": retry, "more_body": True})
        while (chunk := await sub.next()) is not None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        lifetime.cancel()
        watcher.cancel()
        hub.unregister(sub)
