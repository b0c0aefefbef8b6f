"""The engine's two ways out to Redis, against the tests' real Redis database: the board's
doorbell (one message per run for the events noted since the last publish) and the
dispatch of queued actions (one pipeline for a batch, every message in it)."""

from __future__ import annotations

import json
import time

import redis
from django.conf import settings

from failover import events
from failover.engine.dispatch import send_actions

from .conftest import flush_redis

RUN, OTHER = 987651, 987652


def subscribed() -> redis.client.PubSub:
    pubsub = redis.Redis.from_url(settings.REDIS_URL).pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(events.channel(0).rsplit(":", 1)[0] + ":*")
    pubsub.get_message(timeout=2)  # the psubscribe confirmation
    return pubsub


def received(pubsub: redis.client.PubSub, quiet_s: float = 0.5) -> list[tuple[str, str]]:
    """(channel, payload) of every message until none came for ``quiet_s``."""
    got = []
    while (message := pubsub.get_message(timeout=quiet_s)) is not None:
        got.append((message["channel"].decode(), message["data"].decode()))
    return got


def test_the_doorbell_rings_once_per_run_with_its_latest_event_when_events_come_in_a_burst():
    pubsub = subscribed()
    bell = events._Bell()
    for seq in range(1, 41):
        bell.note(RUN, seq)
    bell.note(OTHER, 7)
    bell.note(RUN, 12)  # a late ring of an earlier event does not go back
    bell.publish_due()
    assert sorted(received(pubsub)) == [(events.channel(RUN), "40"), (events.channel(OTHER), "7")]
    bell.publish_due()  # nothing noted since: nothing to say
    assert received(pubsub) == []


def test_the_doorbell_rings_from_its_own_thread_when_an_event_is_rung():
    pubsub = subscribed()
    events.ring_doorbell(RUN, 3)
    deadline = time.monotonic() + 10
    got: list[tuple[str, str]] = []
    while not got and time.monotonic() < deadline:
        got = received(pubsub, quiet_s=0.2)
    assert got == [(events.channel(RUN), "3")]


def test_every_action_of_a_batch_is_sent_in_order_when_they_are_sent_together():
    flush_redis(settings.REDIS_URL)
    client = redis.Redis.from_url(settings.REDIS_URL)
    send_actions([11, 12, 13])
    # LPUSH, and a worker takes from the right: the oldest message is the last element.
    messages = [json.loads(raw) for raw in reversed(client.lrange("celery", 0, -1))]
    assert [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in messages] == [
        ("failover.tasks.execute_action", "(11,)"),
        ("failover.tasks.execute_action", "(12,)"),
        ("failover.tasks.execute_action", "(13,)"),
    ]
