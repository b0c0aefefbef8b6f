"""The doorbell of the board's stream: after a RunEvent commits (``engine.journal``), a Redis
message says "run N has news" (never the payload); the stream then reads the rows."""

from __future__ import annotations

import functools
import logging

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


_client: redis.Redis | None = None


def ring_doorbell(run_id: int, seq: int) -> None:
    global _client
    try:
        if _client is None:
            _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        _client.publish(channel(run_id), str(seq))
    except redis.RedisError as exc:
        # The board falls back to polling and Last-Event-ID replay; a lost ring loses nothing.
        log.warning("doorbell for run %s #%s not rung: %s", run_id, seq, exc)
        _client = None
