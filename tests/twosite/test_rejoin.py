"""scripts/rejoin-as-standby on real PostgreSQL 15 replication (tests/twosite/pgpair.py):
the old primary comes back after a take-over and rejoins as the standby of the survivor,
by pg_rewind or, when that is impossible, by a new base backup; and the portal's own
failback, the round trip back to WSL as the primary."""

from __future__ import annotations

import subprocess

import pytest

from .pgpair import REJOIN_SCRIPT, SLOT, PgError, PgPair

pytestmark = pytest.mark.slow


def lose_wsl_and_take_over(pair: PgPair) -> None:
    """WSL writes, KA follows; WSL is lost (SIGKILL); KA is promoted and writes on its own;
    WSL comes back as a primary (nobody told it) and takes a few writes KA never sees."""
    wsl, ka = pair.wsl, pair.ka
    wsl.sql("CREATE TABLE events (id int PRIMARY KEY, site text)")
    wsl.sql("INSERT INTO events SELECT g, 'WSL before the loss' FROM generate_series(1, 50) g")
    pair.wait_caught_up(timeout=30)
    wsl.kill()
    ka.promote()
    ka.sql("INSERT INTO events SELECT g, 'KA after the take-over' FROM generate_series(51, 60) g")
    wsl.start()
    assert not wsl.in_recovery(), "the lost site comes back as a primary"
    wsl.sql("INSERT INTO events SELECT g, 'WSL diverged' FROM generate_series(51, 55) g")
    wsl.sql("INSERT INTO events VALUES (1000, 'WSL diverged')")


def rows(cluster) -> str:
    return cluster.sql("SELECT site, count(*) FROM events GROUP BY site ORDER BY site")


def assert_follows(pair: PgPair, primary, standby, marker: int) -> None:
    assert pair.primary is primary and pair.standby is standby
    assert pair.replication()["state"] == "streaming"
    assert pair.replication()["slot"] == SLOT
    primary.sql(f"INSERT INTO events VALUES ({marker}, 'after the rejoin')")
    pair.wait_caught_up(timeout=60)
    assert standby.sql(f"SELECT site FROM events WHERE id = {marker}") == "after the rejoin"
    with pytest.raises(PgError, match="read-only transaction"):
        standby.sql("INSERT INTO events VALUES (-1, 'no')")


def test_the_old_primary_rejoins_by_rewind_and_its_diverged_writes_are_gone(make_pg_pair, record_property):
    pair = make_pg_pair()
    lose_wsl_and_take_over(pair)

    result = pair.rejoin(pair.wsl, pair.ka)

    assert result.method == "rewind", result.output
    assert "rejoined by pg_rewind" in result.output
    record_property("rejoin_by_rewind_s", result.seconds)
    print(f"MEASURED rejoin by pg_rewind: {result.seconds:.2f} s")
    assert pair.wsl.in_recovery()
    assert rows(pair.wsl) == rows(pair.ka) == "KA after the take-over|10\nWSL before the loss|50"
    assert pair.wsl.sql("SELECT count(*) FROM events WHERE id = 1000") == "0"
    assert_follows(pair, pair.ka, pair.wsl, marker=2000)


def test_a_killed_old_primary_that_never_restarted_rejoins_by_rewind(make_pg_pair):
    pair = make_pg_pair()
    pair.wsl.sql("CREATE TABLE events (id int PRIMARY KEY, site text)")
    pair.wait_caught_up(timeout=30)
    pair.wsl.kill()  # not shut down cleanly: pg_rewind runs its crash recovery first
    pair.ka.promote()
    pair.ka.sql("INSERT INTO events VALUES (1, 'KA after the take-over')")

    result = pair.rejoin(pair.wsl, pair.ka)

    assert result.method == "rewind", result.output
    assert_follows(pair, pair.ka, pair.wsl, marker=2)


def test_without_wal_log_hints_the_rejoin_falls_back_to_a_base_backup_and_says_why(
    make_pg_pair, record_property
):
    pair = make_pg_pair(settings={"wal_log_hints": "off"})
    lose_wsl_and_take_over(pair)

    result = pair.rejoin(pair.wsl, pair.ka)

    assert result.method == "basebackup", result.output
    assert "pg_rewind impossible" in result.output
    assert "wal_log_hints" in result.output
    assert "falling back to a new base backup" in result.output
    record_property("rejoin_by_basebackup_s", result.seconds)
    print(f"MEASURED rejoin by base backup: {result.seconds:.2f} s")
    kept = list(pair.wsl.dir.glob("data.diverged-*"))
    assert len(kept) == 1, "the old data directory is kept beside the new one"
    assert rows(pair.wsl) == rows(pair.ka) == "KA after the take-over|10\nWSL before the loss|50"
    assert pair.wsl.sql("SELECT count(*) FROM events WHERE id = 1000") == "0"
    assert_follows(pair, pair.ka, pair.wsl, marker=2000)


def test_a_damaged_data_directory_rejoins_by_base_backup(make_pg_pair):
    pair = make_pg_pair()
    lose_wsl_and_take_over(pair)
    pair.wsl.stop()
    (pair.wsl.pgdata / "global" / "pg_control").unlink()  # the disk lost its control file

    result = pair.rejoin(pair.wsl, pair.ka, "--discard-old")

    assert result.method == "basebackup", result.output
    assert "holds no cluster" in result.output
    assert not list(pair.wsl.dir.glob("data.diverged-*")), "--discard-old keeps nothing"
    assert_follows(pair, pair.ka, pair.wsl, marker=2000)


def test_the_portal_fails_back_to_wsl_and_ka_rejoins_as_its_standby(make_pg_pair):
    """The round trip: take-over at KA, WSL rejoined; then the planned failback: KA's
    PostgreSQL is stopped cleanly (its last WAL reaches WSL), WSL is promoted, KA rejoins."""
    pair = make_pg_pair()
    lose_wsl_and_take_over(pair)
    pair.rejoin(pair.wsl, pair.ka)
    pair.ka.sql("INSERT INTO events VALUES (3000, 'KA just before the failback')")
    pair.wait_caught_up(timeout=30)

    pair.ka.stop()  # planned: the portal at KA is stopped first, then its PostgreSQL
    pair.wsl.promote()
    pair.wsl.sql("INSERT INTO events VALUES (4000, 'WSL after the failback')")
    result = pair.rejoin(pair.ka, pair.wsl)

    assert result.method == "rewind", result.output
    assert pair.wsl.timeline() == 3, "WSL 1 -> KA 2 -> WSL 3"
    for cluster in pair.clusters:
        assert cluster.sql("SELECT count(*) FROM events WHERE id IN (3000, 4000)") == "2"
        assert cluster.sql("SELECT count(*) FROM events WHERE site = 'WSL diverged'") == "0"
    assert_follows(pair, pair.wsl, pair.ka, marker=5000)


def test_the_rejoin_refuses_to_turn_the_survivor_into_a_standby_of_the_lost_site(make_pg_pair):
    pair = make_pg_pair()
    lose_wsl_and_take_over(pair)  # KA is on timeline 2, the returned WSL on 1

    with pytest.raises(PgError, match="the local one is the newer primary"):
        pair.rejoin(pair.ka, pair.wsl)

    assert not pair.ka.in_recovery(), "KA is untouched"
    assert pair.ka.sql("SELECT count(*) FROM events") == "60"


def test_the_rejoin_refuses_a_source_that_is_a_standby_or_this_very_cluster(make_pg_pair):
    pair = make_pg_pair()
    with pytest.raises(PgError, match="is a standby itself"):
        pair.rejoin(pair.wsl, pair.ka)
    with pytest.raises(PgError, match="is this very cluster"):
        pair.rejoin(pair.wsl, pair.wsl)
    assert not pair.wsl.in_recovery() and pair.ka.in_recovery()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "--pgdata is required"),
        (["--pgdata", "/tmp"], "--source is required"),
        (
            ["--pgdata", "/nonexistent/a/b", "--source", "host=x"],
            "neither it nor its parent directory exists",
        ),
        (["--pgdata", "/tmp/x", "--source", "host=x", "--port", "five"], "--port must be a TCP port number"),
        (["--pgdata", "/tmp/x", "--source", "host=x", "--slot", "Bad-Slot"], "--slot must be lower-case"),
        (["--pgdata", "/tmp/x", "--source", "host=x", "--bindir", "/nonexistent"], "has no pg_ctl"),
        (["--frobnicate"], "unknown argument: --frobnicate"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument(argv, message):
    done = subprocess.run([str(REJOIN_SCRIPT), *argv], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert message in done.stderr
