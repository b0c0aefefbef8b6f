"""A drportal per site on a PgPair (tests/twosite/pgpair.py): each site's environment, its
own Redis server, ``manage.py`` run as that site's portal, and the portal's database made
at WSL (migrated, reference estate, demo users) and replicated to KA.

The portals' database is ``drportal`` on the pair's clusters, not pytest's test database:
the tests of this folder that use it need no ``django_db``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .pgpair import REPO, PgCluster, PgPair, free_port

DB = "drportal"
PASSWORD = "drportal-demo"  # manage.py create_demo_users


class RedisServer:
    """A redis-server of its own on a free port (a site's Redis), killable like a site."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")]
        self.proc = subprocess.Popen(argv, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.cli("ping").strip() == "PONG":
                return self
            time.sleep(0.05)
        raise RuntimeError(
            f"redis-server on {self.port} did not start: {(self.dir / 'redis.log').read_text()}"
        )

    def cli(self, *args: str) -> str:
        done = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True)
        return done.stdout

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    stop = kill


def site_env(pair: PgPair, site: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of one site's portal processes (as scripts/two-site-demo gives it)."""
    here, peer = (pair.wsl, pair.ka) if site == "WSL" else (pair.ka, pair.wsl)
    return {
        "DJANGO_SETTINGS_MODULE": "drportal.settings",
        "DATABASE_URL": here.url(DB),
        "REDIS_URL": redis_url,
        "DRPORTAL_SITE": site,
        "DRPORTAL_PEER_DATABASE_URL": peer.url(DB),
        "DRPORTAL_PEER_CONNECT_TIMEOUT_S": "1",
        "DRPORTAL_SITE_STATUS_CACHE_S": "0.5",
        **extra,
    }


def manage(
    env: dict[str, str], *args: str, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"manage.py {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done


def prepare(pair: PgPair, env_wsl: dict[str, str], *, estate: bool = True) -> None:
    """WSL's portal database: migrated, the reference estate (unless ``estate`` is False:
    the caller loads it, e.g. pointed at a lab), the demo users; KA has it all by
    replication when this returns."""
    pair.wsl.sql(f"CREATE DATABASE {DB}")
    manage(env_wsl, "migrate", "--noinput")
    if estate:
        manage(env_wsl, "load_reference_estate")
    manage(env_wsl, "create_demo_users")
    pair.wait_caught_up(timeout=60)


def count(cluster: PgCluster, query: str) -> int:
    return int(cluster.sql(query, DB) or 0)
