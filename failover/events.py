"""RunEvents: numbered per run, written in the caller's transaction; after commit a
Redis message rings the doorbell of the board's stream (never the payload)."""

from __future__ import annotations

import functools
import json
import logging

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import RunEvent

log = logging.getLogger(__name__)


def channel(run_id: int) -> str:
    # Pub/sub ignores Redis database numbers: the channel names the database (and so the
    # deployment, or the test run), or portals sharing one Redis ring each other's bells.
    return f"drportal:{_redis_db(settings.REDIS_URL)}:run:{run_id}"


@functools.lru_cache(maxsize=4)
def _redis_db(url: str) -> int:
    return redis.Redis.from_url(url).connection_pool.connection_kwargs.get("db", 0)


def record_event(
    *, run_id: int, kind: str, message: str, action_id: int | None = None, user=None, data: dict | None = None
) -> RunEvent:
    """Append one event. Must run inside a transaction: the counter UPDATE takes the
    run's row lock, so concurrent writers number their events without gaps or twins."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_event needs a transaction (the counter and the row commit together)")
    connection = transaction.get_connection()
    fields = {"run_id": run_id, "kind": kind, "message": message, "action_id": action_id, "user": user}
    fields["data"] = data or {}
    if connection.vendor == "postgresql":
        # One statement numbers and writes the event: the run row stays locked (which keeps
        # the numbers in commit order) for one round trip and the commit, not three.
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(
                _NUMBER_AND_INSERT,
                [
                    run_id,
                    now,
                    kind,
                    message,
                    action_id,
                    user.pk if user else None,
                    json.dumps(fields["data"]),
                ],
            )
            row = cursor.fetchone()
        if row is None:
            raise RuntimeError(f"run {run_id} does not exist")
        event = RunEvent(id=row[0], seq=row[1], created_at=now, **fields)
        event._state.adding = False
    else:
        with connection.cursor() as cursor:
            # RETURNING: SQLite has it since 3.35.
            cursor.execute(_NEXT_SEQ, [run_id])
            row = cursor.fetchone()
        if row is None:
            raise RuntimeError(f"run {run_id} does not exist")
        event = RunEvent.objects.create(seq=row[0], **fields)
    seq = event.seq
    transaction.on_commit(lambda: ring_doorbell(run_id, seq))
    return event


_NEXT_SEQ = "UPDATE failover_run SET event_seq = event_seq + 1 WHERE id = %s RETURNING event_seq"
_NUMBER_AND_INSERT = (
    "WITH n AS (UPDATE failover_run SET event_seq = event_seq + 1 WHERE id = %s RETURNING id, event_seq)"
    " INSERT INTO failover_runevent (run_id, seq, created_at, kind, message, action_id, user_id, data)"
    " SELECT n.id, n.event_seq, %s, %s, %s, %s, %s, %s::jsonb FROM n RETURNING id, seq"
)

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
