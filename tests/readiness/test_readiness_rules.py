"""The judgement alone (failover.readiness.assess): no database, no lab."""

from __future__ import annotations

import datetime as dt

from failover.readiness import probe
from failover.readiness.assess import EstateFacts, GroupFact, assess, configs_to_check
from failover.readiness.probe import ArrayLook, EstateLook, HostLook
from hosts.capacity import CapacityResult, HostResult
from hosts.drivers.storage import GroupStatus
from hosts.models import Host

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
BRIDGES = ["xenbr0", "xenbr1"]


def _host(name: str, site: str, placed, *, fits: bool = True, shortfall: int = 0) -> HostResult:
    used = 128 + sum(mb for _vm, mb in placed)
    return HostResult(name, site, 4096, 0, 128, used, max(4096 - used, 0), fits, list(placed), shortfall)


def facts(*, target_kind: str = "eva-ca", last_drill=None, normal_fits: bool = True) -> EstateFacts:
    """WSL runs dns-xen01 (replicated to KA), KA runs lws-xen01; losing WSL puts both on xenka01."""
    return EstateFacts(
        sites=["KA", "WSL"],
        host_site={"xenka01": "KA", "xenwsl01": "WSL"},
        host_bridges={"xenka01": BRIDGES, "xenwsl01": BRIDGES},
        vm_home_site={"dns-xen01": "WSL", "lws-xen01": "KA"},
        vm_config={"dns-xen01": "/etc/xen/vm/dns-xen01", "lws-xen01": "/etc/xen/vm/lws-xen01"},
        vm_bridges={"dns-xen01": frozenset(BRIDGES), "lws-xen01": frozenset(BRIDGES)},
        groups=[GroupFact("DRG-dns-xen01", "WSL", "KA", "eva-ka", target_kind)],
        capacity=[
            CapacityResult(
                "normal operation",
                [
                    _host(
                        "xenwsl01",
                        "WSL",
                        [("dns-xen01", 512)],
                        fits=normal_fits,
                        shortfall=0 if normal_fits else 300,
                    )
                ],
                [],
                [],
                normal_fits,
                0 if normal_fits else 300,
                [],
                None,
            ),
            CapacityResult(
                "WSL lost",
                [_host("xenka01", "KA", [("dns-xen01", 256), ("lws-xen01", 512)])],
                [],
                [],
                True,
                0,
                [],
                "WSL",
            ),
        ],
        last_drill=last_drill or {},
    )


def status(replication: str = "consistent", lag: float | None = 2.0, role: str = "secondary") -> GroupStatus:
    return GroupStatus("DRG-dns-xen01", role, replication, lag, (), "primary", f"{replication}, lag {lag}")


def look(group: GroupStatus | None = None) -> EstateLook:
    return EstateLook(
        hosts={name: HostLook(name=name, bridges=list(BRIDGES)) for name in ("xenka01", "xenwsl01")},
        arrays={"eva-ka": ArrayLook(name="eva-ka", groups={"DRG-dns-xen01": group or status()})},
    )


def judge(f: EstateFacts, lk: EstateLook, *, rpo_s: float = 900.0) -> dict[str, set[tuple[str, str]]]:
    found = assess(f, lk, now=NOW, rpo_s=rpo_s, drill_max_age_days=90)
    return {site: {(x.severity, x.code) for x in items} for site, items in found.items()}


def recent_drills() -> dict:
    return {"WSL": NOW - dt.timedelta(days=10), "KA": NOW - dt.timedelta(days=10)}


def test_only_the_config_files_of_vms_that_would_be_started_are_checked():
    # lws-xen01 runs at KA already when WSL is lost: only dns-xen01's file matters on xenka01.
    assert configs_to_check(facts()) == {"xenka01": ["/etc/xen/vm/dns-xen01"]}


def test_a_site_never_drilled_gets_a_warning_and_a_recent_drill_clears_it():
    assert ("warning", "never-drilled") in judge(facts(), look())["WSL"]
    assert judge(facts(last_drill=recent_drills()), look()) == {"KA": set(), "WSL": set()}


def test_a_drill_older_than_the_limit_is_a_warning_naming_its_age():
    drills = {"WSL": NOW - dt.timedelta(days=120), "KA": NOW - dt.timedelta(days=10)}
    found = assess(facts(last_drill=drills), look(), now=NOW, rpo_s=900, drill_max_age_days=90)
    (old,) = found["WSL"]
    assert (old.severity, old.code) == ("warning", "drill-age")
    assert "120 days ago" in old.message


def test_lag_up_to_the_rpo_is_fine_and_beyond_it_is_critical():
    f = facts(last_drill=recent_drills())
    assert judge(f, look(status(lag=900.0)))["WSL"] == set()
    assert judge(f, look(status(lag=901.0)))["WSL"] == {("critical", "rpo")}


def test_a_group_already_failed_over_is_a_warning_not_a_replication_failure():
    f = facts(last_drill=recent_drills())
    assert judge(f, look(status("broken", None, role="primary")))["WSL"] == {("warning", "failed-over")}


def test_a_manual_array_is_a_warning_because_nobody_can_see_its_mirrors():
    f = facts(target_kind="manual", last_drill=recent_drills())
    assert judge(f, look(status("unknown", None)))["WSL"] == {("warning", "groups-manual")}


def test_normal_operation_that_does_not_fit_is_a_warning_for_the_hosts_site():
    f = facts(last_drill=recent_drills(), normal_fits=False)
    assert judge(f, look()) == {"KA": set(), "WSL": {("warning", "normal-capacity")}}


def test_a_bridge_missing_where_nothing_would_start_is_only_a_warning_for_its_site():
    lk = look()
    lk.hosts["xenwsl01"].bridges = ["xenbr0"]
    assert judge(facts(last_drill=recent_drills()), lk) == {
        "KA": set(),
        "WSL": {("warning", "bridge-missing")},
    }


def test_a_surprise_while_looking_at_one_host_becomes_that_hosts_problem(monkeypatch):
    def surprise(host, paths, pool):
        raise RuntimeError("unparsable brctl output")

    monkeypatch.setattr(probe, "_look_host", surprise)
    seen = probe.look_at_estate(hosts=[Host(name="xenka01")], configs={}, groups=[])
    assert seen.hosts["xenka01"].problem == "unreachable"
    assert seen.hosts["xenka01"].error == "unexpected error: RuntimeError: unparsable brctl output"
