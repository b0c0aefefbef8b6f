"""The event stream's door: the view that decides whether a client may stream, and the
ASGI wrapper (``StreamGate``, in drportal/asgi.py) that sets streams up a few at a time and
hands them to the hub (``stream.serve``)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.translation import get_language
from django.views.decorators.http import require_GET

from failover.models import Run
from hosts.permissions import permission_or_403, roles_of

from .push import Variant
from .stream import serve

log = logging.getLogger(__name__)

VIEW_RUN = "failover.view_run"


class Handoff:
    """What the view tells the gate: which run to stream, from where. Travels in the ASGI
    scope (``request.scope[HANDOFF]``); the view fills it in once the request may stream."""

    __slots__ = ("cursor", "run_id", "variant")

    def __init__(self) -> None:
        self.run_id: int | None = None
        self.cursor: int | None = None
        self.variant: Variant | None = None  # the page it is pushed: language and roles


HANDOFF = "drportal.sse_handoff"


def last_event_id(request: HttpRequest) -> int | None:
    """The header a reconnecting EventSource sends, else the page's ``?last_event_id=``;
    anything unreadable means "no number", which gets a snapshot."""
    raw = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or ""
    try:
        value = int(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _variant_and_release(request: HttpRequest) -> Variant:
    """Which rendering of the board this watcher is pushed (its language, and its roles,
    which decide the controls); then the connection goes. The middleware's session and
    user lookups opened it; a stream lives for minutes, and 1,000 watchers must not hold
    1,000 PostgreSQL connections."""
    variant = (getattr(request, "LANGUAGE_CODE", None) or get_language(), roles_of(request.user))
    if not connection.in_atomic_block:
        connection.close()
    return variant


async def _no_body() -> AsyncIterator[bytes]:
    return
    yield  # an async generator that yields nothing: the gate sends the stream


NO_GATE = (
    "the event stream is served through failover.board.gate.StreamGate: run drportal.asgi:application "
    "(uvicorn), not WSGI; the board's polling mode (DRPORTAL_BOARD_POLLING=1) works without it"
)


@require_GET
@permission_or_403(VIEW_RUN)
async def run_events(request: HttpRequest, pk: int) -> HttpResponse | StreamingHttpResponse:
    """Decides whether and what to stream (login, permission, the run exists, where to
    start) and answers with the stream's headers; StreamGate sends the events."""
    handoff = getattr(request, "scope", {}).get(HANDOFF)
    if handoff is None:
        # A deployment error (WSGI, or an ASGI app without the gate): say so, to the
        # operator in the log and to the browser, instead of streaming nothing forever.
        log.error("run %s: %s", pk, NO_GATE)
        return HttpResponse(NO_GATE + "\n", status=503, content_type="text/plain; charset=utf-8")
    if not await Run.objects.filter(pk=pk).aexists():
        raise Http404(f"no run {pk}")
    variant = await sync_to_async(_variant_and_release)(request)
    handoff.run_id, handoff.cursor, handoff.variant = pk, last_event_id(request), variant
    # Streaming, so that no middleware counts a Content-Length.
    response = StreamingHttpResponse(_no_body(), content_type="text/event-stream; charset=utf-8")
    # Nothing between here and the browser may hold the stream back: no cache, no proxy
    # buffering, and no compression (there is no GZipMiddleware; tests keep it that way).
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"
    return response


# The path of ``run-events`` (failover/board/urls.py); tests/board check they agree.
STREAM_PATH = re.compile(r"^/runs/\d+/events/$")


class StreamGate:
    """ASGI wrapper in front of the event streams: it sets them up a few at a time, and it
    serves them.

    Set-up: under ASGI Django runs each request's (synchronous) middleware in a thread of
    its own, and the session and user lookups open a database connection there. When 200
    browsers reconnect at once (a server restart), 200 such threads would ask PostgreSQL
    for 200 connections. The gate lets a stream through once at most ``limit`` others are
    being set up (until their views have answered and released that connection).

    Serving: Django decides (middleware, login, permission, the run's existence: the view
    ``run_events``) and sends the response's headers; the view hands the stream over in
    the scope, and the gate sends the events straight to the ASGI server, after Django's
    (empty) body. A burst of events then costs each client one wakeup and one ``send``,
    not a trip through Django's streaming response (a queue, a timer, three async
    generators, chunking), which was most of the server's CPU per watcher (bench/board.py
    measures it)."""

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
        handoff = Handoff()
        scope = {**scope, HANDOFF: handoff}
        gate = self._gate()
        await gate.acquire()
        held = True
        streaming = False  # the view handed the stream over and Django answered 200

        def release() -> None:
            nonlocal held
            if held:
                held = False
                gate.release()

        async def gated_send(message) -> None:
            nonlocal streaming
            if message["type"] == "http.response.start":
                release()
                streaming = handoff.run_id is not None and message["status"] == 200
            elif streaming:
                if message.get("body"):
                    await send({**message, "more_body": True})
                return  # not the end of the response: the stream follows
            await send(message)

        try:
            await self.app(scope, receive, gated_send)
        finally:
            release()
        if streaming:
            assert handoff.run_id is not None  # streaming means the view handed it over
            await serve(handoff.run_id, handoff.cursor, send, receive, handoff.variant)
