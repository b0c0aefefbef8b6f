"""The doorbell of the board's stream: after a RunEvent commits (``engine.journal``), a Redis
message says "run N has news" (never the payload); the stream then reads the rows.

A process rings through one publisher thread: a ring only notes the run, and the thread
publishes what was noted, one message per run however many events it got meanwhile (a
burst of events from a worker's threads costs a few publishes, not one each). The stream
reads every row after the last it sent whatever the message says, so a message stands for
every event of its run before it."""

from __future__ import annotations

import atexit
import functools
import logging
import os
import threading

import redis
from django.conf import settings

log = logging.getLogger(__name__)


def channel(run_id: int) -> str:
    # Pub/sub ignores Redis database numbers: the channel names the database (and so the
    # deployment, or the test run), or portals sharing one Redis ring each other's bells.
    return f"drportal:{_redis_db(settings.REDIS_URL)}:run:{run_id}"


@functools.lru_cache(maxsize=4)
def _redis_db(url: str) -> int:
    return redis.Redis.from_url(url).connection_pool.connection_kwargs.get("db", 0)


class _Bell:
    def __init__(self) -> None:
        self._due: dict[int, int] = {}  # run id: the latest event number noted
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._client: redis.Redis | None = None

    def ring(self, run_id: int, seq: int) -> None:
        self.note(run_id, seq)
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                # Per process: a prefork child does not inherit its parent's thread.
                self._pid = os.getpid()
                self._client = None
                self._thread = threading.Thread(target=self._publish_forever, name="doorbell", daemon=True)
                self._thread.start()
        self._wake.set()

    def note(self, run_id: int, seq: int) -> None:
        """What the next publish says: the run has news, up to event ``seq``."""
        with self._lock:
            self._due[run_id] = max(seq, self._due.get(run_id, 0))

    def _publish_forever(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self.publish_due()

    def publish_due(self) -> None:
        """One message per run noted since the last publish, with its latest number."""
        with self._lock:
            due, self._due = self._due, {}
        for run_id, seq in due.items():
            try:
                if self._client is None:
                    self._client = redis.Redis.from_url(
                        settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
                    )
                self._client.publish(channel(run_id), str(seq))
            except redis.RedisError as exc:
                # The board falls back to polling and Last-Event-ID replay; a lost ring loses nothing.
                log.warning("doorbell for run %s #%s not rung: %s", run_id, seq, exc)
                self._client = None


_BELL = _Bell()
# A process that ends (a management command) rings what it noted before it goes.
atexit.register(_BELL.publish_due)


def ring_doorbell(run_id: int, seq: int) -> None:
    _BELL.ring(run_id, seq)
