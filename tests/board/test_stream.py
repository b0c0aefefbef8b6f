"""The event stream for real: uvicorn serving the ASGI app in a subprocess against the
tests' PostgreSQL and Redis; events written here the way the engine writes them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import Client

from failover import events as run_events
from failover.choices import ActionStateChoices as A
from failover.choices import RunStateChoices as R
from failover.choices import StepStateChoices as S
from failover.engine.journal import record_event
from failover.models import Action, Run
from tests.engine.conftest import database_url

from .live import SSEClient, StreamEnded, Uvicorn, http_get

pytestmark = pytest.mark.django_db(transaction=True)

MAX_SECONDS = 8.0  # long enough for 40 streams to be set up on a machine others share
KEEPALIVE_S = 0.5


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory) -> Uvicorn:
    log_dir = Path(tmp_path_factory.mktemp("uvicorn"))
    handle = Uvicorn(
        {
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "DRPORTAL_SSE_MAX_SECONDS": str(MAX_SECONDS),
            "DRPORTAL_SSE_KEEPALIVE_S": str(KEEPALIVE_S),
            "DEBUG": "1",
        },
        log_dir,
    ).start()
    yield handle
    handle.stop()


@pytest.fixture
def session(users):
    def cookies(role: str) -> dict[str, str]:
        client = Client()
        client.force_login(users[role])
        return {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}

    return cookies


def write(run: Run, n: int, kind: str = "action_started") -> list[int]:
    """n events, each in its own transaction, as the engine commits them."""
    seqs = []
    for i in range(n):
        with transaction.atomic():
            seqs.append(record_event(run_id=run.pk, kind=kind, message=f"{kind} {i}").seq)
    return seqs


def path(run: Run, last: int | None = None) -> str:
    return f"/runs/{run.pk}/events/" + (f"?last_event_id={last}" if last is not None else "")


def test_the_stream_is_event_stream_unbuffered_and_never_compressed(server, session, make_run):
    run = make_run()
    with SSEClient(
        server.base, path(run, 1), cookies=session("helpdesk"), headers={"Accept-Encoding": "gzip, br"}
    ) as client:
        assert client.status == 200
        assert client.headers["content-type"].startswith("text/event-stream")
        assert "no-cache" in client.headers["cache-control"]
        assert client.headers["x-accel-buffering"] == "no"
        assert "content-encoding" not in client.headers
        assert client.next().retry == settings.DRPORTAL_SSE_RETRY_MS
        started = time.monotonic()
        write(run, 1)
        event = client.next_event(timeout=5)
        assert event.id == "2" and time.monotonic() - started < 1.0


@pytest.mark.sqlite
def test_events_arrive_in_order_with_the_runevent_number_as_id(server, session, make_run):
    run = make_run()
    with SSEClient(server.base, path(run, 1), cookies=session("helpdesk")) as client:
        client.next()  # retry: the stream is registered
        seqs = write(run, 10, "action_succeeded") + write(run, 2, "step_done") + write(run, 1, "run_paused")
        got = client.events(len(seqs))
    assert [int(e.id) for e in got] == seqs == list(range(2, 15))
    assert [e.event for e in got] == ["action"] * 10 + ["step"] * 2 + ["run"]
    assert [e.json["seq"] for e in got] == seqs
    assert got[0].json["kind"] == "action_succeeded" and got[0].json["message"] == "action_succeeded 0"


def test_a_reconnect_with_last_event_id_gets_exactly_the_missed_events(server, session, make_run):
    run = make_run()
    cookies = session("helpdesk")
    with SSEClient(server.base, path(run, 1), cookies=cookies) as client:
        client.next()
        write(run, 3)
        seen = client.events(3)
    last = int(seen[-1].id)
    missed = write(run, 5)  # while nobody listens
    # The browser's reconnect: the header wins over the page's ?last_event_id.
    with SSEClient(server.base, path(run, 1), cookies=cookies, last_event_id=last) as client:
        replayed = client.events(5)
        assert [int(e.id) for e in replayed] == missed
        live = write(run, 2)
        assert [int(e.id) for e in client.events(2)] == live
        with pytest.raises(TimeoutError):  # and nothing twice
            client.next_event(timeout=KEEPALIVE_S * 3)


def test_a_client_without_an_event_number_gets_a_snapshot_then_the_news(server, session, make_run):
    run = make_run(per_step=2, events=3, step_states={0: S.DONE, 1: S.RUNNING})
    Action.objects.filter(run=run, step__number=0).update(state=A.SUCCEEDED)
    Action.objects.filter(run=run, step__number=1).update(state=A.RUNNING)
    with SSEClient(server.base, path(run), cookies=session("helpdesk")) as client:
        snapshot = client.next_event()
        assert snapshot.event == "snapshot" and snapshot.id == "4"
        data = snapshot.json
        assert data["seq"] == 4 and data["state"] == R.RUNNING
        assert [(s["number"], s["state"], s["finished"], s["total"]) for s in data["steps"]][:3] == [
            (0, S.DONE, 2, 2),
            (1, S.RUNNING, 0, 2),
            (2, S.PENDING, 0, 2),
        ]
        assert data["actions"] == {str(pk): state for pk, state in Action.objects.values_list("pk", "state")}
        news = write(run, 2)
        assert [int(e.id) for e in client.events(2)] == news == [5, 6]


def test_keepalives_flow_and_the_stream_ends_after_its_lifetime(server, session, make_run):
    run = make_run()
    started = time.monotonic()
    comments = 0
    with (
        SSEClient(server.base, path(run, 1), cookies=session("helpdesk")) as client,
        pytest.raises(StreamEnded),
    ):
        while True:
            comments += "keepalive" in client.next(timeout=MAX_SECONDS + 2).comments
    lasted = time.monotonic() - started
    assert comments >= 3
    assert MAX_SECONDS - 0.5 < lasted < MAX_SECONDS + 2


def test_the_stream_says_end_and_closes_once_the_run_has_ended(server, session, make_run):
    run = make_run()
    with SSEClient(server.base, path(run, 1), cookies=session("helpdesk")) as client:
        client.next()
        with transaction.atomic():
            Run.objects.filter(pk=run.pk).update(state=R.SUCCEEDED)
            record_event(run_id=run.pk, kind="run_succeeded", message="Recovery complete")
        done = client.next_event()
        end = client.next_event()  # after the board's last parts (skipped here, kept in parts)
        assert done.event == "run" and done.id == "2"
        assert "Succeeded" in client.parts["header"].data and "Recovery complete" in client.parts["log"].data
        assert end.event == "end" and end.json == {"state": "succeeded"}
        with pytest.raises(StreamEnded):
            client.next(timeout=2)


def test_a_lost_doorbell_loses_nothing(server, session, make_run, monkeypatch):
    run = make_run()
    monkeypatch.setattr(run_events, "ring_doorbell", lambda run_id, seq: None)
    with SSEClient(server.base, path(run, 1), cookies=session("helpdesk")) as client:
        client.next()
        seqs = write(run, 2)
        assert [int(e.id) for e in client.events(2, timeout=KEEPALIVE_S * 6)] == seqs


def test_a_stream_after_a_server_restart_replays_what_happened_meanwhile(server, session, make_run):
    run = make_run()
    cookies = session("helpdesk")
    with SSEClient(server.base, path(run, 1), cookies=cookies) as client:
        client.next()
        last = int(write(run, 1)[0])
        assert client.next_event().id == str(last)
    server.kill()
    meanwhile = write(run, 3)
    server.start()
    with SSEClient(server.base, path(run, 1), cookies=cookies, last_event_id=last) as client:
        assert [int(e.id) for e in client.events(3)] == meanwhile


def test_helpdesk_may_watch_anonymous_is_sent_to_log_in_and_a_missing_run_is_404(server, session, make_run):
    run = make_run()
    assert http_get(server.base, path(run, 1)) == 302
    assert http_get(server.base, f"/runs/{run.pk + 1000}/events/", cookies=session("helpdesk")) == 404
    for role in ("helpdesk", "mod", "dradmin"):
        with SSEClient(server.base, path(run, 1), cookies=session(role)) as client:
            assert client.status == 200


def test_many_watchers_share_one_database_connection(server, session, make_run):
    run = make_run()
    cookies = session("helpdesk")
    clients = [SSEClient(server.base, path(run, 1), cookies=cookies) for _ in range(40)]
    try:
        for client in clients:
            client.next()
        write(run, 1)
        assert {client.next_event().id for client in clients} == {"2"}
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [connection.settings_dict["NAME"]],
            )
            others = cursor.fetchone()[0]
        assert others <= 3, f"{others} connections for 40 watchers"
    finally:
        for client in clients:
            client.close()


def _parts_after(client, seq: str, wanted=("header", "steps", "actions", "checks", "log")) -> dict:
    """The event ``seq``, then the board's parts that follow it (html-<part> events)."""
    assert client.next_event().id == seq
    got = {}
    while set(got) != set(wanted):
        event = client.next_event(parts=True)
        assert event.event.startswith("html-"), f"{event.event} before every part of the burst came"
        assert event.id is None  # the browser's Last-Event-ID stays the RunEvent's number
        got[event.event.removeprefix("html-")] = event.data
    return got


def test_a_burst_pushes_the_boards_parts_as_html_after_its_events(server, session, make_run):
    run = make_run(per_step=2)
    with SSEClient(server.base, path(run, 1), cookies=session("helpdesk")) as client:
        client.next()
        write(run, 1, "action_succeeded")
        parts = _parts_after(client, "2")
    assert f"Run {run.pk}: Failover WSL → KA" in parts["header"]
    assert 'id="event-2"' in parts["log"] and "action_succeeded 0" in parts["log"]
    assert 'id="step-0"' in parts["steps"]
    assert parts["actions"].count('id="action-') == 14
    assert "<form" not in parts["actions"] + parts["header"]  # helpdesk: no controls
    assert "functional tests" in parts["checks"]


def test_each_watcher_is_pushed_its_own_language_and_its_controls(server, session, make_run):
    run = make_run(per_step=1)
    with (
        SSEClient(
            server.base, path(run, 1), cookies=session("mod"), headers={"Accept-Language": "de"}
        ) as mod,
        SSEClient(server.base, path(run, 1), cookies=session("helpdesk")) as helpdesk,
    ):
        mod.next(), helpdesk.next()
        write(run, 1, "run_paused")
        run_parts = ("header", "steps", "actions", "log")  # a run's event changes no functional test
        german, english = _parts_after(mod, "2", run_parts), _parts_after(helpdesk, "2", run_parts)
    assert "Aktionen" in german["actions"] and "Läuft" in german["header"]
    assert "Actions" in english["actions"] and "Running" in english["header"]
    # The Manager on Duty's controls, without a CSRF field: htmx sends the token as a header.
    assert 'hx-post="/actions/' in german["actions"] and 'hx-post="/runs/' in german["header"]
    assert "csrfmiddlewaretoken" not in german["actions"] + german["header"]
    assert "<form" not in english["actions"] + english["header"]


def test_a_client_without_an_event_number_gets_the_snapshot_and_every_part(server, session, make_run):
    run = make_run(per_step=1)
    with SSEClient(server.base, path(run), cookies=session("helpdesk")) as client:
        assert client.next_event().event == "snapshot"
        got = set()
        while len(got) < 5:
            got.add(client.next_event(parts=True).event)
    assert got == {"html-header", "html-steps", "html-actions", "html-checks", "html-log"}
