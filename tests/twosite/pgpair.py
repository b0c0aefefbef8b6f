"""Two PostgreSQL 15 clusters on one machine, one per site, with physical streaming
replication between them: the harness of issue 14's tests (plain Python, no Django).

WSL starts as the primary, KA as its hot standby fed through the replication slot
``drportal_standby``. A site is lost with ``kill()`` (SIGKILL of the postmaster and its
children, as a power cut does), the standby is promoted with ``promote()``
(``pg_promote(wait => true)``, then a CHECKPOINT so pg_rewind sees the new timeline), and
the old primary comes back as the new standby with ``PgPair.rejoin()``, which runs
``scripts/rejoin-as-standby``, the same script an operator runs.

Every server binary runs as the ``postgres`` user (``runuser`` when the tests run as
root). Ports are given on the command line, never in postgresql.conf: pg_basebackup and
pg_rewind copy the config files, which would give both clusters the same port.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BINDIR = Path(os.environ.get("DRPORTAL_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
SLOT = "drportal_standby"
REPO = Path(__file__).resolve().parents[2]
REJOIN_SCRIPT = REPO / "scripts" / "rejoin-as-standby"
# The user the server binaries run as, when the tests run as root.
PG_USER = "postgres"

# The settings of both clusters (the standby gets them with its base backup). The same
# settings are in docker-compose.two-site.yml and docs/two-sites.md.
PRIMARY_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "wal_level": "replica",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "wal_keep_size": "'256MB'",
    # a standby lost for long cannot fill the primary's disk: its slot is invalidated
    "max_slot_wal_keep_size": "'2GB'",
    "hot_standby": "on",
    "hot_standby_feedback": "on",
    # pg_rewind needs it (or data checksums)
    "wal_log_hints": "on",
    # small: several clusters share this machine with the rest of the suite
    "shared_buffers": "'32MB'",
    "max_connections": "40",
    "wal_receiver_status_interval": "'1s'",
}


class PgError(RuntimeError):
    """A command of the harness failed; the message carries its stderr."""


def missing_binaries(bindir: Path = BINDIR) -> list[str]:
    """The PostgreSQL server binaries the harness needs that are not installed."""
    need = ("initdb", "pg_ctl", "postgres", "pg_basebackup", "pg_rewind", "psql", "pgbench")
    return [name for name in need if not os.access(bindir / name, os.X_OK)]


def free_port() -> int:
    """A TCP port nobody listens on now (several test runs share this machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_pg_user(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_USER, "--", *argv]
    return argv


def _run(argv: list[str], *, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise PgError(f"{' '.join(argv)}: no answer after {timeout:.0f} s") from exc
    if check and done.returncode != 0:
        raise PgError(f"{' '.join(argv)} exited {done.returncode}: {(done.stderr or done.stdout).strip()}")
    return done


def _own(path: Path) -> None:
    """Give a directory to the postgres user (the tests run as root)."""
    if os.geteuid() == 0:
        pw = pwd.getpwnam(PG_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _alive(pid: int) -> bool:
    """True while the process runs (a zombie nobody reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            stat = (entry / "stat").read_text(encoding="ascii")
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


class PgCluster:
    """One PostgreSQL cluster in ``base_dir/name``: data directory ``data``, server log
    ``postgres.log`` beside it (outside the data directory: pg_rewind replaces what is in
    there), listening on 127.0.0.1:``port``."""

    def __init__(self, name: str, base_dir: Path | str, port: int, bindir: Path = BINDIR) -> None:
        self.name = name
        self.dir = Path(base_dir) / name
        self.pgdata = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = port
        self.bindir = Path(bindir)
        self.dir.mkdir(parents=True, exist_ok=True)
        _own(self.dir)

    def __repr__(self) -> str:
        return f"PgCluster({self.name!r}, port={self.port})"

    # -- making it -------------------------------------------------------------------

    def initdb_primary(self, settings: dict[str, str] | None = None) -> None:
        """A new cluster set up as a primary a standby can follow (PRIMARY_SETTINGS,
        updated with ``settings``)."""
        if self.pgdata.exists():
            raise PgError(f"{self.name}: {self.pgdata} exists already")
        argv = [str(self.bindir / "initdb"), "-A", "trust", "-U", "postgres", "-E", "UTF8"]
        argv += ["--no-instructions", "-D", str(self.pgdata)]
        _run(_as_pg_user(argv))
        conf = {**PRIMARY_SETTINGS, **(settings or {})}
        lines = "".join(f"{key} = {value}\n" for key, value in conf.items())
        with (self.pgdata / "postgresql.conf").open("a", encoding="utf-8") as f:
            f.write("\n# tests/twosite/pgpair.py: a primary a standby can follow\n" + lines)
        # initdb -A trust already lets replication connections in from 127.0.0.1; said
        # here so that a change of initdb's defaults does not break replication silently.
        with (self.pgdata / "pg_hba.conf").open("a", encoding="utf-8") as f:
            f.write("host replication all 127.0.0.1/32 trust\n")

    def basebackup_from(self, primary: PgCluster, slot: str = SLOT) -> None:
        """This cluster as a new hot standby of ``primary``: pg_basebackup -R (standby.signal,
        primary_conninfo, primary_slot_name) streaming its WAL through ``slot``, made on the
        primary if it is missing."""
        if self.pgdata.exists():
            raise PgError(f"{self.name}: {self.pgdata} exists already")
        has_slot = primary.sql(f"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}'")
        argv = [str(self.bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port)]
        argv += ["-U", "postgres", "-D", str(self.pgdata), "-R", "-X", "stream", "-S", slot, "-c", "fast"]
        if has_slot == "0":
            argv.append("-C")
        _run(_as_pg_user(argv), timeout=300)

    # -- running it ------------------------------------------------------------------

    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text(encoding="ascii").split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, timeout: float = 120) -> None:
        argv = [str(self.bindir / "pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log)]
        argv += ["-o", f"-p {self.port}", "-w", "-t", str(int(timeout)), "start"]
        _run(_as_pg_user(argv), timeout=timeout + 10)

    def stop(self, mode: str = "fast") -> None:
        if not self.running():
            return
        _run(_as_pg_user([str(self.bindir / "pg_ctl"), "-D", str(self.pgdata), "-m", mode, "-w", "stop"]))

    def kill(self) -> None:
        """Lose the site: SIGKILL the postmaster and every child it has (a child left alive
        would keep the port and the shared memory)."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGSTOP)  # no new children from here on
        for child in _children(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not _alive(pid) and not any(_alive(c) for c in _children(pid)) and self._port_free():
                break
            time.sleep(0.05)
        else:
            raise PgError(f"{self.name}: postmaster {pid} still there 30 s after SIGKILL")
        # The dead postmaster is a zombie until init reaps it (here it takes seconds), and a
        # new postmaster refuses to start while the pid in postmaster.pid exists at all.
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if Path(f"/proc/{pid}").exists():
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)

    def _port_free(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            return s.connect_ex(("127.0.0.1", self.port)) != 0

    # -- talking to it ---------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def conninfo(self) -> str:
        """libpq key/value connection string (scripts/rejoin-as-standby --source)."""
        return f"host=127.0.0.1 port={self.port} user=postgres"

    def sql(self, query: str, dbname: str = "postgres", timeout: float = 60) -> str:
        """``psql -Atc query``: its output, stripped; PgError with psql's message on error."""
        argv = [str(self.bindir / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", dbname, "-c", query]
        return _run(argv, timeout=timeout).stdout.strip()

    def in_recovery(self) -> bool:
        return self.sql("SELECT pg_is_in_recovery()") == "t"

    def timeline(self) -> int:
        return int(self.sql("SELECT timeline_id FROM pg_control_checkpoint()"))

    def promote(self) -> None:
        """Promote this standby (what take_over does), then CHECKPOINT so the new timeline
        is in the control file (pg_rewind of the old primary reads it there)."""
        if self.sql("SELECT pg_promote(wait => true, wait_seconds => 60)") != "t":
            raise PgError(f"{self.name}: pg_promote did not finish within 60 s")
        self.sql("CHECKPOINT")

    def remove(self) -> None:
        """Stop (or kill) it and delete its directory."""
        if self.running():
            try:
                self.stop("immediate")
            except PgError:
                self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class RejoinResult:
    method: str  # "rewind" or "basebackup"
    seconds: float
    output: str


@dataclass
class PgPair:
    """WSL's and KA's PostgreSQL. ``primary``/``standby`` say which is which now (they swap
    with a take-over and a rejoin)."""

    base_dir: Path
    wsl: PgCluster
    ka: PgCluster

    @classmethod
    def create(cls, base_dir: Path | str | None = None, settings: dict[str, str] | None = None) -> PgPair:
        """WSL initdb'ed and started as the primary, KA base-backed-up from it and started as
        its streaming hot standby. ``base_dir`` must be reachable by the postgres user; None
        makes one under the system's temporary directory."""
        base = Path(base_dir) if base_dir is not None else Path(tempfile.mkdtemp(prefix="drportal-pgpair-"))
        base.mkdir(parents=True, exist_ok=True)
        _own(base)
        if os.geteuid() == 0:
            probe = _run(_as_pg_user(["test", "-w", str(base)]), check=False)
            if probe.returncode != 0:
                raise PgError(f"{base}: the postgres user cannot write there (a parent directory is closed)")
        pair = cls(base, PgCluster("wsl", base, free_port()), PgCluster("ka", base, free_port()))
        try:
            pair.wsl.initdb_primary(settings)
            pair.wsl.start()
            pair.ka.basebackup_from(pair.wsl)
            pair.ka.start()
            pair.wait_streaming()
        except BaseException:
            pair.destroy()
            raise
        return pair

    @property
    def clusters(self) -> tuple[PgCluster, PgCluster]:
        return (self.wsl, self.ka)

    @property
    def primary(self) -> PgCluster:
        live = [c for c in self.clusters if c.running() and not c.in_recovery()]
        if len(live) != 1:
            raise PgError(f"expected one running primary, found {live}")
        return live[0]

    @property
    def standby(self) -> PgCluster:
        live = [c for c in self.clusters if c.running() and c.in_recovery()]
        if len(live) != 1:
            raise PgError(f"expected one running standby, found {live}")
        return live[0]

    def wait_streaming(self, timeout: float = 60) -> None:
        """Until the primary's pg_stat_replication shows the standby streaming."""
        primary = self.primary
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if primary.sql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") != "0":
                return
            time.sleep(0.1)
        raise PgError(f"{primary.name}: no standby streaming after {timeout:.0f} s")

    def wait_caught_up(self, timeout: float = 60) -> float:
        """Until the standby has replayed everything the primary had written when this was
        called; the seconds that took."""
        primary, standby = self.primary, self.standby
        started = time.monotonic()
        target = primary.sql("SELECT pg_current_wal_lsn()")
        while time.monotonic() - started < timeout:
            behind = standby.sql(f"SELECT pg_wal_lsn_diff('{target}', pg_last_wal_replay_lsn())")
            if float(behind) <= 0:
                return time.monotonic() - started
            time.sleep(0.01)
        raise PgError(f"{standby.name} has not replayed {target} after {timeout:.0f} s")

    def replication(self) -> dict[str, str]:
        """The primary's view of its standby (pg_stat_replication): state, lag in bytes and
        the replay lag in seconds ('' while idle: PostgreSQL clears it)."""
        row = self.primary.sql(
            "SELECT state, slot_name, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn),"
            " coalesce(extract(epoch FROM replay_lag)::text, '')"
            " FROM pg_stat_replication JOIN pg_replication_slots ON active_pid = pid"
        )
        if not row:
            return {}
        state, slot, lag_bytes, lag_seconds = row.split("|")
        return {"state": state, "slot": slot, "lag_bytes": lag_bytes, "replay_lag_s": lag_seconds}

    def row_lag(self, table: str = "pgpair_probe", dbname: str = "postgres", timeout: float = 30) -> float:
        """Seconds from a commit on the primary to the row being visible on the standby."""
        primary, standby = self.primary, self.standby
        primary.sql(f"CREATE TABLE IF NOT EXISTS {table} (id bigserial PRIMARY KEY, at timestamptz)", dbname)
        started = time.monotonic()
        row_id = primary.sql(f"INSERT INTO {table} (at) VALUES (clock_timestamp()) RETURNING id", dbname)
        row_id = row_id.splitlines()[0]
        while time.monotonic() - started < timeout:
            with contextlib.suppress(PgError):  # the table itself may not have arrived yet
                if standby.sql(f"SELECT count(*) FROM {table} WHERE id = {row_id}", dbname) == "1":
                    return time.monotonic() - started
            time.sleep(0.005)
        raise PgError(f"row {row_id} of {table} not on {standby.name} after {timeout:.0f} s")

    def write_load(self, seconds: float, clients: int = 2, dbname: str = "postgres") -> subprocess.Popen:
        """pgbench's TPC-B-like writes on the primary for ``seconds`` (in the background;
        wait() on what this returns). Initialises pgbench's tables the first time."""
        primary = self.primary
        base = [str(primary.bindir / "pgbench"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"]
        if primary.sql("SELECT to_regclass('pgbench_accounts') IS NOT NULL", dbname) != "t":
            _run([*base, "-i", "-q", "-s", "1", dbname], timeout=300)
        argv = [*base, "-n", "-c", str(clients), "-T", str(max(1, round(seconds))), dbname]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def rejoin(self, old: PgCluster, new: PgCluster, *extra: str) -> RejoinResult:
        """``old`` (a former primary, running or not) rejoins as the standby of ``new`` (the
        primary now) through scripts/rejoin-as-standby; raises PgError with the script's
        output when it fails."""
        argv = [str(REJOIN_SCRIPT), "--pgdata", str(old.pgdata), "--source", new.conninfo()]
        argv += ["--port", str(old.port), "--bindir", str(old.bindir), "--log", str(old.log), *extra]
        started = time.monotonic()
        done = _run(argv, timeout=600, check=False)
        seconds = time.monotonic() - started
        output = done.stdout + done.stderr
        if done.returncode != 0:
            raise PgError(f"rejoin-as-standby exited {done.returncode}:\n{output}")
        method = "basebackup" if "rejoined by base backup" in output else "rewind"
        return RejoinResult(method, seconds, output)

    def destroy(self) -> None:
        """Stop (or kill) both clusters and delete everything under base_dir."""
        for cluster in self.clusters:
            with contextlib.suppress(Exception):
                cluster.remove()
        shutil.rmtree(self.base_dir, ignore_errors=True)
