"""What the read endpoints say about the thesis estate and its runs, in a bounded number
of queries whatever the estate's size."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.urls import reverse

from failover.engine.journal import record_event
from failover.runs.selectors import run_summary
from hosts.models import DRGroup
from hosts.selectors import capacity_report
from tests.board.runs import build_run
from tests.factories import InterfaceFactory, SiteFactory

from .conftest import record_readiness

pytestmark = pytest.mark.django_db


@pytest.fixture
def helpdesk(api_as):
    return api_as("helpdesk")


def test_vms_come_with_their_nics_disks_dr_group_and_allocations(reference_estate, helpdesk):
    body = helpdesk.get(reverse("api:vms")).json()
    assert body["count"] == 6
    dns = next(vm for vm in body["results"] if vm["name"] == "dns-xen01")
    assert dns["home_host"] == "xenwsl01" and dns["home_site"] == "WSL" and dns["tier"] == 1
    assert dns["dr_group"] == "DRG-dns-xen01"
    assert [(n["bridge"], n["lan_role"]) for n in dns["interfaces"]] == [
        ("xenbr0", "user"),
        ("xenbr1", "backup"),
    ]
    assert dns["disks"] == [{"target": "/dev/vg_dns01/lvol1", "vdev": "xvda1", "writable": True}]
    assert {(a["profile"], a["host"], a["memory_mb"]) for a in dns["allocations"]} == {
        ("normal operation", "xenwsl01", 512),
        ("WSL lost", "xenka01", 256),
    }
    proxy = next(vm for vm in body["results"] if vm["name"] == "proxy-xen01")
    assert proxy["depends_on"] == ["dns-xen01"]


def test_the_vm_list_takes_the_same_queries_for_six_vms_or_sixty(
    reference_estate, helpdesk, django_assert_max_num_queries
):
    with django_assert_max_num_queries(12):
        helpdesk.get(reverse("api:vms"))
    InterfaceFactory.create_batch(54)  # 54 more VMs, each with a NIC on its own host
    with django_assert_max_num_queries(12):
        body = helpdesk.get(reverse("api:vms")).json()
    assert body["count"] == 60


def test_lists_are_paged_by_limit_and_offset(helpdesk):
    SiteFactory.create_batch(6)
    body = helpdesk.get(reverse("api:sites"), {"limit": 2, "offset": 2}).json()
    assert body["count"] == 6 and len(body["results"]) == 2
    assert "offset=4" in body["next"]


def test_sites_hosts_groups_and_profiles_describe_the_reference_estate(reference_estate, helpdesk):
    sites = helpdesk.get(reverse("api:sites")).json()["results"]
    assert [(s["code"], s["role"]) for s in sites] == [("KA", "alternate"), ("WSL", "primary")]
    hosts = helpdesk.get(reverse("api:hosts")).json()["results"]
    assert [(h["name"], h["site"], h["ram_mb"]) for h in hosts] == [
        ("xenka01", "KA", 4096),
        ("xenwsl01", "WSL", 4096),
    ]
    assert "ssh_key_path" not in hosts[0]
    groups = {g["name"]: g for g in helpdesk.get(reverse("api:dr-groups")).json()["results"]}
    assert (
        groups["DRG-proxy-xen01"]["source_site"] == "WSL" and groups["DRG-proxy-xen01"]["target_site"] == "KA"
    )
    assert groups["DRG-lws-xen01"]["target_array"] is None and groups["DRG-lws-xen01"]["target_site"] is None
    assert groups["DRG-proxy-xen01"]["vms"] == ["proxy-xen01"]
    profiles = {p["name"]: p for p in helpdesk.get(reverse("api:profiles")).json()["results"]}
    assert profiles["normal operation"]["lost_site"] is None
    wsl_lost = profiles["WSL lost"]
    assert wsl_lost["lost_site"] == "WSL"
    assert {a["host"] for a in wsl_lost["vm_allocations"]} == {"xenka01"}
    assert {(a["host"], a["dom0_memory_mb"]) for a in wsl_lost["host_allocations"]} == {("xenka01", 128)}


def test_capacity_gives_every_what_if_or_the_one_asked_for(reference_estate, helpdesk):
    everything = helpdesk.get(reverse("api:capacity")).json()
    assert [r["scenario"] for r in everything] == [r.scenario for r in capacity_report()]
    [wsl] = helpdesk.get(reverse("api:capacity"), {"lost_site": "WSL"}).json()
    expected = capacity_report(lost_site="WSL")[0].as_dict()
    assert wsl["lost_site"] == "WSL" and wsl["fits"] is expected["fits"]
    assert wsl["hosts"] == expected["hosts"]


def test_capacity_for_an_unknown_site_is_a_400_naming_the_parameter(helpdesk):
    response = helpdesk.get(reverse("api:capacity"), {"lost_site": "MARS"})
    assert response.status_code == 400
    assert response.json() == {"lost_site": ["no site 'MARS'"]}


def test_readiness_gives_each_sites_newest_verdict_with_its_findings_and_the_replication(
    reference_estate, helpdesk
):
    unchecked = helpdesk.get(reverse("api:readiness")).json()
    assert [(s["site"], s["verdict"], s["ready"]) for s in unchecked["sites"]] == [
        ("KA", None, False),
        ("WSL", None, False),
    ]
    record_readiness({"KA": [], "WSL": [("critical", "bridge-missing", "xenka01 has no xenbr1")]})
    record_readiness({"KA": [("warning", "never-drilled", "KA was never drilled")], "WSL": []})
    body = helpdesk.get(reverse("api:readiness")).json()
    sites = {s["site"]: s for s in body["sites"]}
    assert sites["WSL"]["verdict"] == "ready" and sites["WSL"]["findings"] == []
    assert sites["KA"]["ready"] is True
    assert sites["KA"]["findings"] == [
        {
            "severity": "warning",
            "code": "never-drilled",
            "subject": "",
            "message": "KA was never drilled",
            "fix": "",
        }
    ]
    DRGroup.objects.filter(name="DRG-proxy-xen01").update(replication_state="broken", replication_lag_s=42.0)
    groups = {g["name"]: g for g in helpdesk.get(reverse("api:readiness")).json()["groups"]}
    assert (
        groups["DRG-proxy-xen01"]["replication_state"],
        groups["DRG-proxy-xen01"]["replication_lag_s"],
    ) == (
        "broken",
        42.0,
    )
    assert groups["DRG-lws-xen01"]["target_site"] is None


@pytest.fixture
def runs(users):
    failover = build_run(user=users["mod"], per_step=1, events=3)
    drill = build_run(user=users["mod"], per_step=1, kind="drill", state="succeeded")
    return failover, drill


def test_runs_are_listed_newest_first_and_filter_by_kind_and_state(api_as, runs):
    failover, drill = runs
    client = api_as("helpdesk")
    listed = client.get(reverse("api:runs")).json()["results"]
    assert [r["id"] for r in listed] == [drill.pk, failover.pk]
    assert listed[1]["disaster"]["category"] == "power" and listed[1]["disaster"]["declared_by"] == "mod"
    assert listed[0]["disaster"] is None
    assert [r["id"] for r in client.get(reverse("api:runs"), {"kind": "drill"}).json()["results"]] == [
        drill.pk
    ]
    running = client.get(reverse("api:runs"), {"state": "running"}).json()["results"]
    assert [r["id"] for r in running] == [failover.pk]
    bad = client.get(reverse("api:runs"), {"kind": "picnic"})
    assert bad.status_code == 400 and "kind" in bad.json()


def test_a_run_is_its_summary(api_as, runs):
    failover, _ = runs
    body = api_as("helpdesk").get(reverse("api:run", args=[failover.pk])).json()
    summary = run_summary(run_id=failover.pk)
    assert body["run"] == failover.pk and body["state"] == "running"
    assert [s["key"] for s in body["steps"]] == [s["key"] for s in summary["steps"]]
    assert body["steps"][0]["actions"][0]["id"] == summary["steps"][0]["actions"][0]["id"]


def test_a_missing_run_is_a_404(api_as, users):
    client = api_as("helpdesk")
    assert client.get(reverse("api:run", args=[999999])).status_code == 404
    assert client.get(reverse("api:run-events", args=[999999])).status_code == 404


def test_events_come_after_the_number_asked_for(api_as, runs):
    failover, _ = runs
    with transaction.atomic():
        record_event(run_id=failover.pk, kind="run_paused", message="Run paused by mod")
    client = api_as("helpdesk")
    body = client.get(reverse("api:run-events", args=[failover.pk]), {"after": 2}).json()
    assert body["run"] == failover.pk and body["state"] == "running" and body["seq"] == 5
    assert [e["seq"] for e in body["events"]] == [3, 4, 5]
    assert body["events"][-1]["kind"] == "run_paused"
    everything = client.get(reverse("api:run-events", args=[failover.pk])).json()
    assert [e["seq"] for e in everything["events"]] == [1, 2, 3, 4, 5]
    bad = client.get(reverse("api:run-events", args=[failover.pk]), {"after": -1})
    assert bad.status_code == 400 and "after" in bad.json()
