"""Which part this portal plays in a two-site deployment: ``site_status()``.

One drportal per data centre; the active site's PostgreSQL is the primary, the other
site's a hot standby fed by streaming replication (docs/two-sites.md). A portal is in one
of four modes, asked of its own PostgreSQL (and, as a primary, of the peer's):

standalone  DRPORTAL_SITE unset: one portal, every two-site check off.
standby     its PostgreSQL is in recovery: read-only, nothing runs; says how old its data is.
primary     not in recovery, and the peer is not a primary of a newer epoch: it acts.
behind      not in recovery, but the peer answers as a primary of a newer epoch (or
            timeline): this portal was the primary before a take-over and came back. It
            is fenced: no run, no claim, no beat job, and every page says how to rejoin.

The answer is cached for DRPORTAL_SITE_STATUS_CACHE_S (1 s) per process: every page and
every task asks, and the peer may be a 2-second connect timeout away.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)

STANDALONE, STANDBY, PRIMARY, BEHIND = "standalone", "standby", "primary", "behind"
SLOT = "drportal_standby"


@dataclass(frozen=True)
class Peer:
    """What the other site's PostgreSQL answered (or why it did not)."""

    reachable: bool
    in_recovery: bool | None = None
    epoch: int | None = None
    timeline: int | None = None
    error: str = ""

    @property
    def is_primary(self) -> bool:
        return self.reachable and self.in_recovery is False

    def describe(self) -> str:
        if not self.reachable:
            return f"unreachable: {self.error}"
        role = "standby (in recovery)" if self.in_recovery else "primary"
        return f"{role}, epoch {self.epoch}, timeline {self.timeline}"


@dataclass(frozen=True)
class SiteStatus:
    mode: str
    site: str = ""
    peer_site: str = ""
    epoch: int | None = None  # None: standalone (not asked)
    timeline: int | None = None
    # standby: how old the data is
    data_as_of: datetime | None = None
    lag_s: float | None = None
    receive_lsn: str = ""
    replay_lsn: str = ""
    receiver: str = ""  # pg_stat_wal_receiver.status, "" when no WAL receiver runs
    primary_silent_s: float | None = None  # standby: no word from the primary this long
    # primary: its standbys
    replicas: tuple[dict, ...] = ()
    slot: dict | None = None
    peer: Peer | None = None
    problems: tuple[str, ...] = field(default=())
    pgdata: str = ""

    @property
    def two_site(self) -> bool:
        return self.mode != STANDALONE

    @property
    def may_act(self) -> bool:
        """Runs may start, actions be claimed and beat jobs run."""
        return self.mode in (STANDALONE, PRIMARY)

    @property
    def read_only(self) -> bool:
        return not self.may_act

    @property
    def primary_lost(self) -> bool:
        """A standby that has not heard from its primary for longer than the setting."""
        return (
            self.mode == STANDBY
            and self.primary_silent_s is not None
            and self.primary_silent_s > settings.DRPORTAL_STANDBY_LOST_AFTER_S
        )

    @property
    def reason(self) -> str:
        """Why nothing may be changed here, in one sentence (for disabled controls, 503s and
        the log lines of tasks that did nothing)."""
        peer = self.peer_site or "the other site"
        if self.mode == STANDBY:
            return (
                f"this portal is a standby of {peer}'s portal (read-only): "
                f"take over (Manager on Duty) or use the primary at {peer}"
            )
        if self.mode == BEHIND:
            return (
                f"this portal is behind: {peer}'s portal took over (epoch {self.peer.epoch if self.peer else '?'}); "
                f"it does nothing until it has rejoined as {peer}'s standby"
            )
        return ""

    @property
    def lag_text(self) -> str:
        return "" if self.lag_s is None else f"{self.lag_s:.1f} s"

    @property
    def rejoin_command(self) -> str:
        """The command that makes this (behind) site the standby of the peer."""
        host, port = _host_port(settings.DRPORTAL_PEER_DATABASE_URL)
        return (
            f"scripts/rejoin-as-standby --pgdata {self.pgdata or '<PGDATA>'} "
            f'--source "host={host} port={port} user=postgres" --slot {SLOT}'
        )


def _host_port(url: str) -> tuple[str, str]:
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<host>", "<port>"
    return str(info.get("host", "<host>")), str(info.get("port", "5432"))


_lock = threading.Lock()
_cached: tuple[float, SiteStatus] | None = None


def clear_cache() -> None:
    """Forget the cached status (after a take-over, and in tests)."""
    global _cached
    with _lock:
        _cached = None


def site_status() -> SiteStatus:
    """This portal's mode, cached for DRPORTAL_SITE_STATUS_CACHE_S."""
    global _cached
    if not settings.DRPORTAL_SITE:
        return SiteStatus(mode=STANDALONE)
    now = time.monotonic()
    with _lock:
        if _cached is not None and now - _cached[0] < settings.DRPORTAL_SITE_STATUS_CACHE_S:
            return _cached[1]
    status = _ask()
    with _lock:
        _cached = (time.monotonic(), status)
    return status


def _ask() -> SiteStatus:
    site = settings.DRPORTAL_SITE
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery(), current_setting('data_directory', true)")
        in_recovery, pgdata = cursor.fetchone()
        epoch = _local_epoch(cursor)
        peer_site = _peer_site(cursor, site)
        if in_recovery:
            return _standby(cursor, site=site, peer_site=peer_site, epoch=epoch, pgdata=pgdata or "")
        cursor.execute("SELECT timeline_id FROM pg_control_checkpoint()")
        timeline = cursor.fetchone()[0]
        cursor.execute(
            "SELECT application_name, client_addr::text, state, sync_state,"
            " EXTRACT(EPOCH FROM replay_lag)::float8, sent_lsn::text, replay_lsn::text"
            " FROM pg_stat_replication ORDER BY application_name"
        )
        replicas = tuple(
            dict(zip(("name", "addr", "state", "sync", "lag_s", "sent_lsn", "replay_lsn"), row, strict=True))
            for row in cursor.fetchall()
        )
        cursor.execute(
            "SELECT active, wal_status, restart_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
            [SLOT],
        )
        row = cursor.fetchone()
        slot = dict(zip(("active", "wal_status", "restart_lsn"), row, strict=True)) if row else None
    problems = []
    streaming = any(r["state"] == "streaming" for r in replicas)
    # A peer that streams from this portal is its standby, not a primary: no need to ask.
    peer = None if streaming else peer_probe()
    mode = PRIMARY
    if peer is not None and peer.is_primary and _newer(peer, epoch, timeline):
        mode = BEHIND
    elif peer is not None and peer.is_primary:
        problems.append(
            f"{peer_site or 'the peer'}'s PostgreSQL also answers as a primary (epoch {peer.epoch}, "
            f"older than this portal's {epoch}): it is fenced; rejoin it as this site's standby"
        )
    if mode == PRIMARY:
        if not replicas:
            problems.append(
                f"no standby connected: {peer_site or 'the other site'} would lose its portal's data"
            )
        if slot is None:
            problems.append(f"replication slot {SLOT} is missing: create it (docs/two-sites.md)")
        elif slot["wal_status"] == "lost":
            problems.append(f"replication slot {SLOT} lost its WAL: the standby needs a new base backup")
    return SiteStatus(
        mode=mode,
        site=site,
        peer_site=peer_site,
        epoch=epoch,
        timeline=timeline,
        replicas=replicas,
        slot=slot,
        peer=peer,
        problems=tuple(problems),
        pgdata=pgdata or "",
        lag_s=max((r["lag_s"] or 0.0 for r in replicas), default=None),
    )


def _standby(cursor, *, site: str, peer_site: str, epoch: int, pgdata: str) -> SiteStatus:
    cursor.execute(
        "SELECT now(), pg_last_xact_replay_timestamp(), pg_last_wal_receive_lsn()::text,"
        " pg_last_wal_replay_lsn()::text, pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn(),"
        " (SELECT status FROM pg_stat_wal_receiver), (SELECT last_msg_receipt_time FROM pg_stat_wal_receiver),"
        " (SELECT received_tli FROM pg_stat_wal_receiver)"
    )
    now, replayed_at, received, replayed, caught_up, receiver, heard_at, timeline = cursor.fetchone()
    streaming = receiver == "streaming"
    lag: float | None
    if streaming and caught_up:
        # Everything the primary sent is applied: the data is as of the last word from it.
        data_as_of = max(filter(None, (heard_at, replayed_at)), default=now)
        lag = 0.0
    else:
        data_as_of = replayed_at
        lag = (now - replayed_at).total_seconds() if replayed_at else None
    silent = None
    if not streaming:
        # No WAL receiver: the primary is gone (or refused us). The last change replayed is
        # the latest moment it was surely heard from.
        last = heard_at or replayed_at
        silent = (now - last).total_seconds() if last else None
    elif heard_at is not None:
        silent = max(0.0, (now - heard_at).total_seconds())
    problems = []
    if not streaming:
        problems.append(
            f"not receiving from {peer_site or 'the primary'}: replication is broken or the primary is lost"
        )
    elif lag is not None and lag > settings.DRPORTAL_STANDBY_MAX_LAG_S:
        problems.append(f"{lag:.0f} s behind the primary (more than DRPORTAL_STANDBY_MAX_LAG_S)")
    return SiteStatus(
        mode=STANDBY,
        site=site,
        peer_site=peer_site,
        epoch=epoch,
        timeline=timeline,
        data_as_of=data_as_of,
        lag_s=lag,
        receive_lsn=received or "",
        replay_lsn=replayed or "",
        receiver=receiver or "",
        primary_silent_s=silent,
        problems=tuple(problems),
        pgdata=pgdata,
    )


def _newer(peer: Peer, epoch: int, timeline: int | None) -> bool:
    if peer.epoch is not None and peer.epoch != epoch:
        return peer.epoch > epoch
    return peer.timeline is not None and timeline is not None and peer.timeline > timeline


def _local_epoch(cursor) -> int:
    from .models import Epoch

    cursor.execute(f"SELECT max(number) FROM {connection.ops.quote_name(Epoch._meta.db_table)}")  # nosec B608  # name from _meta
    return cursor.fetchone()[0] or 1


def _peer_site(cursor, site: str) -> str:
    """The other site's code: the one site of the inventory that is not this one."""
    from hosts.models import Site

    codes = [code for code in Site.objects.exclude(code=site).values_list("code", flat=True)]
    return codes[0] if len(codes) == 1 else ""


def current_epoch() -> int:
    with connection.cursor() as cursor:
        return _local_epoch(cursor)


def peer_probe() -> Peer:
    """Ask the peer's PostgreSQL (DRPORTAL_PEER_DATABASE_URL) whether it is a primary, and of
    which epoch; DRPORTAL_PEER_CONNECT_TIMEOUT_S to answer."""
    from .models import Epoch

    url = settings.DRPORTAL_PEER_DATABASE_URL
    if not url:
        return Peer(reachable=False, error="DRPORTAL_PEER_DATABASE_URL is not set")
    timeout = settings.DRPORTAL_PEER_CONNECT_TIMEOUT_S
    try:
        with psycopg.connect(url, connect_timeout=max(1, round(timeout)), autocommit=True) as peer:
            peer.execute(f"SET statement_timeout = {int(timeout * 1000)}")
            answer = peer.execute(
                "SELECT pg_is_in_recovery(), (SELECT timeline_id FROM pg_control_checkpoint())"
            ).fetchone()
            assert answer is not None
            in_recovery, timeline = answer
            try:
                row = peer.execute(f'SELECT max(number) FROM "{Epoch._meta.db_table}"').fetchone()  # nosec B608  # name from _meta
                epoch = row[0] if row else None
            except psycopg.errors.UndefinedTable:
                epoch = None
    except psycopg.Error as exc:
        return Peer(
            reachable=False,
            error=str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
        )
    return Peer(reachable=True, in_recovery=in_recovery, epoch=epoch or 1, timeline=timeline)
