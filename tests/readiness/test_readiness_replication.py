"""Readiness red for the portal's own replication (issue 14; assess.portal_replication):
on a two-site primary, a standby that does not stream, a missing slot, a slot that lost
its WAL or a standby too far behind is a critical finding of that site, with the fix."""

from __future__ import annotations

import pytest

from drportal import twosite
from drportal.twosite import SiteStatus
from failover.readiness.assess import portal_replication
from tests.board.live import free_port

from .conftest import check, codes, latest, messages

STREAMING = {"name": "ka", "addr": "10.0.2.5", "state": "streaming", "sync": "async", "lag_s": 0.4}


def primary(**kw) -> SiteStatus:
    base = {"mode": "primary", "site": "WSL", "peer_site": "KA", "epoch": 1, "replicas": (STREAMING,)}
    base["slot"] = {"active": True, "wal_status": "reserved", "restart_lsn": "0/3000000"}
    return SiteStatus(**{**base, **kw})


def test_a_primary_streaming_to_its_standby_within_the_lag_has_no_finding():
    assert portal_replication(primary(), max_lag_s=30) == []


def test_a_standby_and_a_standalone_portal_add_nothing():
    problems = ("not receiving from WSL: replication is broken or the primary is lost",)
    assert portal_replication(SiteStatus(mode="standby", site="KA", problems=problems), max_lag_s=30) == []
    assert portal_replication(SiteStatus(mode="standalone"), max_lag_s=30) == []


@pytest.mark.parametrize(
    ("status", "says", "fix"),
    [
        (
            primary(replicas=(), problems=("no standby connected: KA would lose its portal's data",)),
            "portal replication: no standby connected: KA would lose its portal's data",
            "start KA's PostgreSQL; if it does not stream, rejoin it as the standby (on KA's database host: "
            "scripts/rejoin-as-standby --pgdata <PGDATA> --source \"host=<WSL's database host>",
        ),
        (
            primary(
                slot=None,
                problems=("replication slot drportal_standby is missing: create it (docs/two-sites.md)",),
            ),
            "replication slot drportal_standby is missing",
            "SELECT pg_create_physical_replication_slot('drportal_standby', true)",
        ),
        (
            primary(
                problems=(
                    "replication slot drportal_standby lost its WAL: the standby needs a new base backup",
                )
            ),
            "lost its WAL",
            "rebuild the standby from a new base backup",
        ),
        (
            primary(replicas=({**STREAMING, "state": "catchup"},)),
            "the standby is connected but not streaming (ka: catchup)",
            "look at KA's PostgreSQL log",
        ),
        (
            primary(replicas=({**STREAMING, "lag_s": 95.0},)),
            "the standby ka replays 95 s behind (more than DRPORTAL_STANDBY_MAX_LAG_S, 30 s): "
            "losing WSL now loses that much of the portal's data",
            "look at the link to KA",
        ),
    ],
    ids=["not-connected", "slot-missing", "slot-lost", "not-streaming", "lag"],
)
def test_each_replication_fault_is_a_critical_finding_of_the_primary_site_with_its_fix(status, says, fix):
    (finding,) = portal_replication(status, max_lag_s=30)
    assert finding.site == "WSL" and finding.severity == "critical" and finding.code == "portal-replication"
    assert says in finding.message
    assert fix in finding.fix


def test_the_readiness_check_of_a_primary_without_its_standby_turns_the_site_red(ready, settings):
    """The tests' PostgreSQL is a real primary with no standby and no slot."""
    settings.DRPORTAL_SITE = "WSL"
    settings.DRPORTAL_PEER_DATABASE_URL = f"postgresql://postgres@127.0.0.1:{free_port()}/drportal"
    twosite.clear_cache()
    try:
        result = check()
    finally:
        twosite.clear_cache()
    assert result.verdicts["WSL"] == "not-ready"
    assert "portal-replication" in codes("WSL", "critical")
    text = messages("WSL")
    assert "portal replication: no standby connected: KA would lose its portal's data" in text
    assert "replication slot drportal_standby is missing" in text
    assert latest("KA").findings.filter(code="portal-replication").count() == 0
