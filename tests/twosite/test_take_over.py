"""The take-over (drportal/takeover.py, ``manage.py take_over``) on real PostgreSQL 15
streaming replication: the KA portal runs on a hot standby of WSL's portal database.
Every refusal leaves the standby a standby and the epochs as they were; a take-over
promotes the real standby, writes the new epoch with who, what was typed and what the
peer answered, and sends the reaper its task on the site's own Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.conftest import WORKER_ENV, Worker

from .pgpair import PgPair
from .portals import RedisServer, count, manage, prepare, site_env

pytestmark = pytest.mark.slow


class Portals:
    def __init__(self, pair: PgPair, tmp: Path) -> None:
        self.pair = pair
        self.redis = {site: RedisServer(tmp / f"redis-{site.lower()}").start() for site in ("WSL", "KA")}
        self.env = {site: site_env(pair, site, self.redis[site].url) for site in ("WSL", "KA")}

    def take_over(self, site: str, *args: str):
        return manage(self.env[site], "take_over", *args, check=False)

    def mode(self, site: str) -> str:
        code = "from drportal.twosite import site_status; print(site_status().mode)"
        return manage(self.env[site], "shell", "--no-imports", "-c", code).stdout.strip()

    def stop(self) -> None:
        for redis in self.redis.values():
            redis.kill()


@pytest.fixture(scope="module")
def portals(_pg_pairs, tmp_path_factory) -> Iterator[Portals]:
    """WSL primary, KA its standby, the portal database made at WSL; refusals only (a
    test that promotes takes its own pair)."""
    pair = _pg_pairs.make()
    handle = Portals(pair, tmp_path_factory.mktemp("take-over"))
    try:
        prepare(pair, handle.env["WSL"])
        yield handle
    finally:
        handle.stop()
        _pg_pairs.destroy(pair)


@pytest.fixture
def own_portals(make_pg_pair, tmp_path) -> Iterator[Portals]:
    pair = make_pg_pair()
    handle = Portals(pair, tmp_path)
    try:
        prepare(pair, handle.env["WSL"])
        yield handle
    finally:
        handle.stop()


def assert_nothing_changed(p: Portals) -> None:
    assert p.pair.ka.in_recovery(), "a refused take-over promotes nothing"
    assert count(p.pair.ka, "SELECT count(*) FROM drportal_epoch") == 1


def test_only_the_manager_on_duty_may_take_over(portals):
    done = portals.take_over(
        "KA", "--user", "helpdesk", "--confirm", "WSL IS LOST", "--override-reason", "drill"
    )
    assert done.returncode == 1
    assert "take-over refused: Only the Manager on Duty may take over: nothing was changed." in done.stderr
    assert_nothing_changed(portals)


@pytest.mark.parametrize("typed", ["wsl is lost", "KA IS LOST", "WSL IS LOST!", ""])
def test_the_typed_confirmation_must_be_exactly_the_lost_peer_is_lost(portals, typed):
    done = portals.take_over("KA", "--user", "mod", "--confirm", typed, "--override-reason", "drill")
    assert done.returncode == 1
    assert (
        f'--confirm: Confirmation: type exactly "WSL IS LOST" (capitals) to say that WSL is lost; you typed "{typed}".'
        in done.stderr
    )
    assert_nothing_changed(portals)


def test_a_standby_refuses_to_take_over_while_its_peer_answers_as_primary(portals):
    done = portals.take_over("KA", "--user", "mod", "--confirm", "WSL IS LOST", "--override-reason", "   ")
    assert done.returncode == 1
    assert (
        "--override-reason: Refused: WSL's database still answers as a primary (primary, epoch 1, timeline 1)."
        in done.stderr
    )
    assert "type the override reason if you know it cannot act (it is recorded)" in done.stderr
    assert_nothing_changed(portals)


def test_a_primary_refuses_a_take_over_saying_since_which_epoch(portals):
    done = portals.take_over("WSL", "--user", "mod", "--confirm", "KA IS LOST")
    assert done.returncode == 1
    assert "This portal is already primary since epoch 1: nothing to take over." in done.stderr
    assert_nothing_changed(portals)


def test_with_the_override_typed_the_standby_takes_over_records_it_and_fences_the_old_primary(own_portals):
    p = own_portals
    done = p.take_over(
        "KA",
        "--user",
        "mod",
        "--confirm",
        "WSL IS LOST",
        "--override-reason",
        "WSL's portal is switched off",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["epoch"] == 2 and result["site"] == "KA" and result["started_by"] == "mod"
    assert result["override_reason"] == "WSL's portal is switched off"
    assert result["peer_state"] == "primary, epoch 1, timeline 1"
    assert result["reaper_sent"] is True
    assert not p.pair.ka.in_recovery() and p.pair.ka.timeline() == 2
    row = p.pair.ka.sql(
        "SELECT number, site, confirmation, override_reason, peer_state, u.username"
        " FROM drportal_epoch e JOIN auth_user u ON u.id = e.started_by_id WHERE number = 2",
        "drportal",
    )
    assert row == "2|KA|WSL IS LOST|WSL's portal is switched off|primary, epoch 1, timeline 1|mod"
    assert "failover.tasks.reap" in p.redis["KA"].cli("LRANGE", "celery", "0", "-1")
    assert p.redis["WSL"].cli("LLEN", "celery").strip() == "0", "nothing sent to the other site's Redis"
    print(json.dumps({"take_over_s": result["seconds"]}))

    assert p.mode("KA") == "primary"
    assert p.mode("WSL") == "behind", "the old primary sees the newer epoch and fences itself"

    again = p.take_over("KA", "--user", "mod", "--confirm", "WSL IS LOST", "--override-reason", "twice")
    assert again.returncode == 1
    assert "This portal is already primary since epoch 2: nothing to take over." in again.stderr
    assert count(p.pair.ka, "SELECT count(*) FROM drportal_epoch") == 2


SEED_RUNNING_ACTION = """
import datetime as dt
from django.contrib.auth import get_user_model
from django.utils import timezone
from failover.models import Action
from tests.board.runs import build_run
run = build_run(user=get_user_model().objects.get(username="mod"), per_step=1)
action = run.actions.order_by("pk").first()
# claimed by WSL's worker a moment before the loss: its lease has minutes to go
Action.objects.filter(pk=action.pk).update(
    state="running", attempt=1, epoch=1, claimed_by="wsl-worker:1",
    lease_expires_at=timezone.now() + dt.timedelta(minutes=10))
print(action.pk)
"""


def test_a_standby_whose_peer_is_lost_takes_over_and_its_reaper_adopts_the_lost_portals_action_at_once(
    own_portals, tmp_path
):
    p = own_portals
    seeded = manage(p.env["WSL"], "shell", "--no-imports", "-c", SEED_RUNNING_ACTION)
    action = int(seeded.stdout.strip().splitlines()[-1])
    p.pair.wait_caught_up(timeout=60)
    p.pair.wsl.kill()
    worker = Worker(
        tmp_path, tmp_path / "no-lab", p.redis["KA"].url, {**WORKER_ENV, **p.env["KA"]}, name="ka"
    )
    worker.start()
    try:
        done = p.take_over("KA", "--user", "mod", "--confirm", "WSL IS LOST")
        assert done.returncode == 0, done.stderr
        assert "took over: KA's portal is the primary of epoch 2" in done.stdout
        assert "the peer answered: unreachable: " in done.stdout
        row = p.pair.ka.sql(
            "SELECT override_reason, peer_state FROM drportal_epoch WHERE number = 2", "drportal"
        )
        override, peer_state = row.split("|", 1)
        assert override == "" and peer_state.startswith("unreachable: ")
        assert p.mode("KA") == "primary"
        # The lease has ten minutes to go: only the new epoch makes the reaper take it now.
        deadline = time.monotonic() + 60
        query = (
            f"SELECT count(*) FROM failover_runevent WHERE action_id = {action}"
            " AND message LIKE '%claimed at the lost portal (epoch 1)%'"
        )
        while p.pair.ka.sql(query, "drportal") == "0":
            assert time.monotonic() < deadline, worker.logs()
            time.sleep(0.2)
        state = p.pair.ka.sql(f"SELECT state, epoch FROM failover_action WHERE id = {action}", "drportal")
        assert state != "running|1", "adopted into epoch 2 and observed, never re-run blindly"
    finally:
        worker.kill()
