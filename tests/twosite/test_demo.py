"""scripts/two-site-demo's command line: the environment it gives each site's portal, and
bad input refused with the reason. (Its clusters are the harness's, tested beside this;
`up`, `lose`, `start`, `rejoin` were run by hand, see docs/two-sites.md.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "scripts" / "two-site-demo"


def demo(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(DEMO), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
    )


def exports(text: str) -> dict[str, str]:
    return dict(line.removeprefix("export ").split("=", 1) for line in text.splitlines())


def test_each_site_s_portal_points_at_its_own_database_and_redis_and_at_the_peer(tmp_path):
    ports = {
        "TWO_SITE_DIR": str(tmp_path),
        "TWO_SITE_PG_PORTS": "6433,6434",
        "TWO_SITE_HTTP_PORTS": "9001,9002",
    }
    wsl = exports(demo("env", "WSL", **ports).stdout)
    ka = exports(demo("env", "ka", **ports).stdout)
    assert wsl["DRPORTAL_SITE"] == "WSL" and ka["DRPORTAL_SITE"] == "KA"
    assert (
        wsl["DATABASE_URL"]
        == ka["DRPORTAL_PEER_DATABASE_URL"]
        == "postgres://postgres@127.0.0.1:6433/drportal"
    )
    assert (
        ka["DATABASE_URL"]
        == wsl["DRPORTAL_PEER_DATABASE_URL"]
        == "postgres://postgres@127.0.0.1:6434/drportal"
    )
    assert wsl["DRPORTAL_PEER_PORTAL_URL"] == "http://127.0.0.1:9002"
    assert wsl["REDIS_URL"] != ka["REDIS_URL"]
    assert wsl["DRPORTAL_LAB_DIR"] == ka["DRPORTAL_LAB_DIR"] == str(tmp_path / "lab"), "one lab, both sites"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["lose", "HD"], {}, "unknown site 'HD' (WSL or KA)"),
        (["lose"], {}, "lose needs one site, WSL or KA"),
        (["frobnicate"], {}, "unknown command 'frobnicate'"),
        (["status"], {"TWO_SITE_PG_PORTS": "5433"}, "TWO_SITE_PG_PORTS must be two port numbers"),
    ],
)
def test_bad_input_is_refused_with_the_reason(args, env, message):
    done = demo(*args, **env)
    assert done.returncode != 0
    assert message in done.stderr
