"""The Redis counters that let a pass over a run be skipped when a later one has seen
everything: a lost "started" key must never make every later pass skip (a run that
stalls with work pending)."""

from __future__ import annotations

import redis
from django.conf import settings

from failover.engine.advance import _PassCounter

RUN = 987654


def fresh_counter() -> _PassCounter:
    counter = _PassCounter()
    redis.Redis.from_url(settings.REDIS_URL).delete(*counter._keys(RUN))
    return counter


def test_a_pass_is_skipped_only_when_one_begun_later_has_committed():
    counter = fresh_counter()
    asked = counter.started(RUN)
    assert counter.finished_after(RUN, asked) is False
    number = counter.start(RUN)
    assert number == asked + 1
    assert counter.finished_after(RUN, asked) is False  # begun, not committed
    counter.finish(RUN, number)
    assert counter.finished_after(RUN, asked) is True
    assert counter.finished_after(RUN, number) is False


def test_a_lost_started_counter_does_not_make_every_later_pass_skip():
    counter = fresh_counter()
    for _ in range(80):
        counter.finish(RUN, counter.start(RUN))
    started_key, _finished = counter._keys(RUN)
    redis.Redis.from_url(settings.REDIS_URL).delete(started_key)  # flushed, evicted...
    asked = counter.started(RUN)
    assert asked == 0
    assert counter.finished_after(RUN, asked) is False  # the pass runs
    counter.finish(RUN, counter.start(RUN))
    assert counter.finished_after(RUN, asked) is True  # and the numbering works again
