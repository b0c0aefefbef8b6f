"""Issue 14 end to end: two portals on real PostgreSQL 15 streaming replication (asynchronous),
each site with its own Redis, web server and worker (with beat), one lab for the estate.

WSL's portal runs a drill of WSL (committed: a run, its cleanup, their events), KA's
standby follows. WSL is lost: its web server, worker, Redis and PostgreSQL are SIGKILLed
and its dom0 and array go down in the lab. At KA the Manager on Duty takes over and
declares WSL lost; the failover completes on KA's workers. Everything WSL committed
before the loss is on KA (or the missing rows are within the lag KA reported, printed).
WSL's PostgreSQL comes back: its portal is "behind", its worker does nothing and its page
says how to rejoin; it rejoins as KA's standby (scripts/rejoin-as-standby) and the estate
is failed back from KA. Printed: the take-over time, from the kill to the first action of
the failover claimed at KA, and the data lost."""

from __future__ import annotations

import json
import os
import re
import time

import pytest
import requests

from hosts.lab.keys import client_key_path, fingerprints
from hosts.lab.vm_services import vm_fingerprints
from tests.board.live import Uvicorn
from tests.engine.conftest import WORKER_ENV, Worker, lab, lose_wsl  # noqa: F401 (the lab fixture)

from .pgpair import PgPair
from .portals import DB, PASSWORD, RedisServer, count, manage, prepare, site_env

pytestmark = pytest.mark.slow

SEED = """
import json, os
from hosts.models import VM
from hosts.services import estate_load_reference
cfg = json.loads(os.environ["E2E_ESTATE"])
estate_load_reference(addresses=cfg["addresses"], ssh_port=cfg["port"], ssh_key_path=cfg["key"],
                      fingerprints=cfg["fingerprints"])
for vm, address in cfg["drill"].items():
    VM.objects.filter(name=vm).update(drill_address=address)
"""

COUNTS = {
    "runs": "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM failover_run",
    "events": "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM failover_runevent",
    "actions": "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM failover_action",
    "epochs": "SELECT coalesce(string_agg(number::text, ',' ORDER BY number), '') FROM drportal_epoch",
}


def ids(cluster) -> dict[str, set[str]]:
    return {name: set(filter(None, cluster.sql(q, DB).split(","))) for name, q in COUNTS.items()}


def wait_sql(cluster, query: str, want, timeout: float = 240, what: str = "") -> str:
    deadline = time.monotonic() + timeout
    got = ""
    while time.monotonic() < deadline:
        got = cluster.sql(query, DB)
        if want(got) if callable(want) else got == want:
            return got
        time.sleep(0.2)
    raise AssertionError(f"{what or query}: still {got!r} after {timeout:.0f} s")


def run_id(done) -> int:
    match = re.search(r"run (\d+) started", done.stdout + done.stderr)
    assert match, done.stdout + done.stderr
    return int(match.group(1))


def logged_in(base: str, user: str) -> requests.Session:
    s = requests.Session()
    s.get(f"{base}/accounts/login/", timeout=30)
    token = s.cookies["csrftoken"]
    answer = s.post(
        f"{base}/accounts/login/",
        data={"username": user, "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/accounts/login/"},
        timeout=30,
    )
    assert answer.url.rstrip("/") == base, answer.text[-2000:]
    return s


def test_wsl_is_lost_ka_takes_over_declares_and_fails_back_without_losing_what_wsl_committed(
    make_pg_pair,
    lab,  # noqa: F811 (the imported fixture)
    vm_addresses,
    vm_drill_addresses,
    tmp_path,
):
    pair: PgPair = make_pg_pair()
    redis = {site: RedisServer(tmp_path / f"redis-{site}").start() for site in ("WSL", "KA")}
    common = {
        **WORKER_ENV,
        "DRPORTAL_LAB_DIR": str(lab.lab_dir),
        "DRPORTAL_SSH_KEY": str(client_key_path(lab.lab_dir)),
        "DRPORTAL_STANDBY_LOST_AFTER_S": "5",
        "DEBUG": "1",
    }
    env = {site: site_env(pair, site, redis[site].url, **common) for site in ("WSL", "KA")}
    with lab.store.transaction() as state:
        for vm, address in vm_drill_addresses.items():
            state["services"][vm]["drill_address"] = address
    prepare(pair, env["WSL"], estate=False)
    cfg = {
        "addresses": vm_addresses,
        "port": lab.port,
        "key": str(client_key_path(lab.lab_dir)),
        "fingerprints": fingerprints(lab.lab_dir) | vm_fingerprints(lab.lab_dir),
        "drill": vm_drill_addresses,
    }
    manage({**env["WSL"], "E2E_ESTATE": json.dumps(cfg)}, "shell", "--no-imports", "-c", SEED)
    processes: list = []

    def start(site: str, n: int = 1):
        (tmp_path / f"{site}-{n}").mkdir()
        web = Uvicorn(env[site], tmp_path / f"{site}-{n}").start()
        worker = Worker(tmp_path, lab.lab_dir, redis[site].url, env[site], name=f"{site.lower()}{n}").start()
        processes.extend((web, worker))
        return web, worker

    try:
        wsl_web, wsl_worker = start("WSL")
        start("KA")  # its worker and beat do nothing while KA is a standby

        # 1. WSL's portal drills the loss of WSL: a run and its cleanup, committed at WSL.
        drill = manage(
            env["WSL"], "drill", "--site", "WSL", "--vms", "dns-xen01", "--wait", "--timeout", "300"
        )
        drill_id = run_id(drill)
        assert pair.wsl.sql(f"SELECT state FROM failover_run WHERE id = {drill_id}", DB) == "succeeded"
        # KA follows: what its portal reports as its lag just before the loss.
        ka_status = manage(
            env["KA"],
            "shell",
            "--no-imports",
            "-c",
            "import json; from drportal.twosite import site_status as s; st = s();"
            " print(json.dumps({'mode': st.mode, 'lag_s': st.lag_s}))",
        )
        reported = json.loads(ka_status.stdout.strip().splitlines()[-1])
        assert reported["mode"] == "standby"
        before = ids(pair.wsl)
        assert before["runs"] and before["events"]

        # 2. WSL is lost, all at once.
        killed_at = time.monotonic()
        wsl_web.kill()
        wsl_worker.kill()
        redis["WSL"].kill()
        pair.wsl.kill()
        lose_wsl(lab)
        lab.fault("xenwsl01", "crash")  # the power cut: the dom0 comes back without its VMs

        # 3. KA's Manager on Duty takes over and declares WSL lost.
        took = manage(env["KA"], "take_over", "--user", "mod", "--confirm", "WSL IS LOST", "--json")
        take_over = json.loads(took.stdout)
        assert take_over["epoch"] == 2 and take_over["peer_state"].startswith("unreachable")
        declare = "failover --lost-site WSL --disaster-class 2 --category power --confirm-isolated --yes"
        declared = manage(env["KA"], *declare.split())
        failover_id = run_id(declared)
        wait_sql(
            pair.ka,
            f"SELECT count(*) FROM failover_action WHERE run_id = {failover_id} AND claimed_by <> ''",
            lambda n: n != "0",
            what="the first action of the failover claimed at KA",
        )
        take_over_s = time.monotonic() - killed_at
        wait_sql(
            pair.ka,
            f"SELECT state FROM failover_run WHERE id = {failover_id}",
            lambda s: s in ("succeeded", "failed", "aborted"),
            timeout=400,
            what="the failover at KA",
        )
        assert pair.ka.sql(f"SELECT state FROM failover_run WHERE id = {failover_id}", DB) == "succeeded", (
            pair.ka.sql(
                f"SELECT kind, target, state, error FROM failover_action WHERE run_id = {failover_id}", DB
            )
        )
        assert (
            pair.ka.sql(f"SELECT DISTINCT epoch FROM failover_action WHERE run_id = {failover_id}", DB) == "2"
        )

        # 4. Nothing WSL committed is missing at KA (or no more than its reported lag).
        after = ids(pair.ka)
        missing = {name: sorted(before[name] - after[name]) for name in before}
        lost_rows = sum(len(v) for v in missing.values())
        if reported["lag_s"] in (None, 0.0):
            assert lost_rows == 0, missing
        assert after["epochs"] == {"1", "2"}

        # 5. WSL's PostgreSQL comes back (as a primary: nobody told it): its portal is behind.
        lab.fault("xenwsl01", "up")
        lab.fault("eva-wsl", "up")
        time.sleep(1)  # the lab reopens a host's listener within 0.2 s of "up"
        pair.wsl.start()
        redis["WSL"] = RedisServer(tmp_path / "redis-WSL-2").start()
        env["WSL"]["REDIS_URL"] = redis["WSL"].url
        wsl_events = count(pair.wsl, "SELECT count(*) FROM failover_runevent")
        wsl_web, wsl_worker = start("WSL", 2)
        page = logged_in(wsl_web.base, "helpdesk").get(f"{wsl_web.base}/", timeout=30).text
        assert 'data-site-mode="behind"' in page
        assert "KA&#x27;s portal took over (epoch 2)" in page and "scripts/rejoin-as-standby --pgdata" in page
        deadline = time.monotonic() + 30
        while "not run, nor any task until this changes: this portal is behind" not in wsl_worker.logs():
            assert time.monotonic() < deadline, wsl_worker.logs()
            time.sleep(0.2)
        assert count(pair.wsl, "SELECT count(*) FROM failover_runevent") == wsl_events, (
            "a behind portal acts not"
        )

        # 6. WSL rejoins as KA's standby; KA fails the estate back.
        wsl_web.stop()
        wsl_worker.stop()
        rejoin = pair.rejoin(pair.wsl, pair.ka)
        assert pair.wsl.in_recovery()
        back = manage(env["KA"], "failback", "--run", str(failover_id), "--wait", "--timeout", "400")
        failback_id = run_id(back)
        assert pair.ka.sql(f"SELECT state FROM failover_run WHERE id = {failback_id}", DB) == "succeeded", (
            back.stdout + back.stderr
        )
        pair.wait_caught_up(timeout=60)
        assert pair.wsl.sql(f"SELECT state FROM failover_run WHERE id = {failback_id}", DB) == "succeeded"

        print(
            json.dumps(
                {
                    "take_over_s": round(take_over_s, 2),
                    "take_over_command_s": take_over["seconds"],
                    "lag_reported_s": reported["lag_s"],
                    "rows_committed_at_wsl": {k: len(v) for k, v in before.items()},
                    "rows_missing_at_ka": lost_rows,
                    "rejoin": {"method": rejoin.method, "seconds": round(rejoin.seconds, 2)},
                    "cpu_count": os.cpu_count(),
                }
            )
        )
    finally:
        for process in processes:
            process.kill()
        for r in redis.values():
            r.kill()
