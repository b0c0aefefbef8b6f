"""make test runs the suite in two processes (pytest-xdist): each must have a Redis database
of its own (tests/conftest.py), or the Celery workers of one would take the other's tasks."""

from __future__ import annotations

import os

import pytest

from drportal.celery import app
from tests.conftest import _redis_of_this_process


@pytest.fixture
def restore_broker():
    before = app.conf.broker_url
    yield
    app.conf.broker_url = before


@pytest.mark.parametrize(
    ("worker", "expected"), [("gw0", "redis://127.0.0.1:6379/15"), ("gw1", "redis://127.0.0.1:6379/14")]
)
def test_each_test_process_takes_its_own_redis_database_counting_down_from_the_given_one(
    worker, expected, settings, monkeypatch, restore_broker
):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/15")
    settings.REDIS_URL = settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/15"
    _redis_of_this_process()
    assert settings.REDIS_URL == settings.CELERY_BROKER_URL == os.environ["REDIS_URL"] == expected
    assert app.conf.broker_url == expected


def test_a_test_process_without_a_redis_database_left_is_refused_with_the_reason(
    settings, monkeypatch, restore_broker
):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    settings.REDIS_URL = "redis://127.0.0.1:6379/1"
    with pytest.raises(pytest.UsageError, match="no Redis database left for test process gw1"):
        _redis_of_this_process()
