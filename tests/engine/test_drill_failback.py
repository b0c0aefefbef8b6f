"""Drills and failback against the lab, with a real Celery worker (issue 6)."""

from __future__ import annotations

import json
import time

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from failover.choices import RunStateChoices
from failover.models import Run
from failover.runs.drill import build_drill_plan, drill_start
from failover.runs.failback import build_failback_plan, failback_start
from hosts import reference
from hosts.lab.journal import read_journal
from hosts.lab.store import LabStore
from hosts.models import VM
from tests.reports.conftest import pdf_text, squash

from .conftest import declare, lose_wsl, wait_for_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def drill_addresses(lab, estate, vm_drill_addresses):
    """The lab serves drill clones on a free /24 of this session; the inventory knows it."""
    with LabStore(lab.lab_dir).transaction() as state:
        for vm, address in vm_drill_addresses.items():
            state["services"][vm]["drill_address"] = address
    for vm, address in vm_drill_addresses.items():
        VM.objects.filter(name=vm).update(drill_address=address)
    return vm_drill_addresses


def lab_state(lab) -> dict:
    with LabStore(lab.lab_dir).transaction() as state:
        return json.loads(json.dumps(state))


def production(state: dict) -> dict:
    """What a drill must leave alone: every non-drill domain, every DR group and what the
    arrays present to whom (their LUN tables)."""
    return {
        "luns": {name: h.get("luns") for name, h in state["hosts"].items() if h.get("kind") == "array"},
        "domains": {
            host: sorted((d["name"], d["memory_mb"], d["domid"]) for d in h.get("domains", []))
            for host, h in state["hosts"].items()
            if h.get("kind") == "dom0"
        },
        "groups": state["groups"],
    }


def journal_since(lab, seq: int) -> list[str]:
    return [e["command"] for e in read_journal(lab.lab_dir, seq) if e.get("exit_status") == 0]


def last_seq(lab) -> int:
    entries = read_journal(lab.lab_dir, 0)
    return entries[-1]["seq"] if entries else 0


def wait_cleaned(drill_id: int, worker) -> Run:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        drill = Run.objects.get(pk=drill_id)
        if drill.cleaned_up_at:
            return drill
        time.sleep(0.2)
    cleanup = Run.objects.filter(parent_id=drill_id).first()
    events = "\n".join(f"#{e.seq} {e.kind}: {e.message}" for e in (cleanup.events.all() if cleanup else []))
    raise AssertionError(f"drill {drill_id} not cleaned up in 60 s\n{events}\n{worker.logs()}")


def assert_report(client, estate, run: Run, texts: list[str]) -> None:
    """The run's report opens as HTML and as PDF, and both hold ``texts``."""
    client.force_login(estate["helpdesk"])
    title = f"Run {run.pk}: {run.get_kind_display()} of {run.lost_site.code} to {run.target_site.code}"
    page = squash(client.get(reverse("reports:run", args=[run.pk])).content.decode())
    pdf = client.get(reverse("reports:run-pdf", args=[run.pk]))
    assert pdf["Content-Type"] == "application/pdf"
    text = pdf_text(pdf.content)
    for wanted in [title, *texts]:
        assert wanted in page, wanted
        assert wanted in text, wanted


@pytest.mark.sqlite
def test_a_partial_drill_leaves_production_untouched_and_cleanup_leaves_nothing(
    lab, estate, worker, drill_addresses, client
):
    before = lab_state(lab)
    seq = last_seq(lab)

    plan = build_drill_plan(site="WSL", vms=["dns-xen01"])
    assert plan.blocking == [], plan.blocking
    run = drill_start(user=estate["mod"], plan=plan)
    run = wait_for_run(run.pk, worker=worker)
    assert run.state == RunStateChoices.SUCCEEDED, [(a.kind, a.target, a.error) for a in run.actions.all()]

    # The clone answered its checks on the drill address, over the isolated bridge.
    checks = run.actions.filter(kind="functional_check")
    assert checks.count() == 2
    assert {a.outcome for a in checks} == {"ok"}, [(a.target, a.outcome, a.error) for a in checks]
    start = run.actions.get(kind="start_drill_vm")
    assert start.undo == {"kind": "destroy_domain", "domain": "drill-dns-xen01", "host": "xenka01"}

    drill = wait_cleaned(run.pk, worker)
    cleanup = Run.objects.get(parent=drill, kind="cleanup")
    assert cleanup.state == RunStateChoices.SUCCEEDED
    # The mark and its audit event commit together.
    assert drill.events.get(kind="cleaned_up").message == (
        f"Drill cleaned up by run {cleanup.pk}: nothing of it is left"
    )
    assert set(cleanup.actions.values_list("kind", flat=True)) == {
        "destroy_drill_domain",
        "delete_snapshot",
        "verify_drill_gone",
    }

    after = lab_state(lab)
    assert production(after) == production(before)
    assert not after.get("snapshots")
    assert not any(
        d["name"].startswith("drill-") for h in after["hosts"].values() for d in h.get("domains", [])
    )

    assert_report(client, estate, run, ["drill-dns-xen01", "DNS (53/tcp)", "xenbr-drill"])
    assert_report(client, estate, cleanup, ["xl destroy drill-dns-xen01", "DELETE VDISK"])

    commands = journal_since(lab, seq)
    changing = [
        c
        for c in commands
        if any(w in f" {c} " for w in (" create ", " mem-set ", " destroy ", " shutdown "))
    ]
    assert changing and all("drill-dns-xen01" in c for c in changing), changing
    assert not any("SET DR_GROUP" in c for c in commands), "a drill never touches a DR group"
    assert not any("127.0.1." in c or "eva-wsl" in c.lower() for c in commands)


def test_a_full_drill_shrinks_production_only_when_asked_and_the_ledger_gives_the_memory_back(
    lab, estate, worker, drill_addresses
):
    blocked = build_drill_plan(site="WSL")
    assert [p.code for p in blocked.blocking] == ["capacity"]
    assert "--shrink" in blocked.blocking[0].fix

    before = production(lab_state(lab))
    plan = build_drill_plan(site="WSL", shrink=True)
    assert plan.blocking == []
    run = wait_for_run(drill_start(user=estate["mod"], plan=plan).pk, worker=worker, timeout=90)
    assert run.state == RunStateChoices.SUCCEEDED
    shrunk = {a.params["vm"]: a.undo["memory_mb"] for a in run.actions.filter(kind="set_memory")}
    assert shrunk == {"dasi-xen01": 2048, "tomcat-xen01": 768, "Domain-0": 256}

    wait_cleaned(run.pk, worker)
    assert production(lab_state(lab)) == before


def test_a_drill_refuses_to_start_while_another_is_up(lab, estate, worker, drill_addresses):
    first = drill_start(
        user=estate["mod"], plan=build_drill_plan(site="WSL", vms=["dns-xen01"], hold_minutes=30)
    )
    wait_for_run(first.pk, worker=worker)
    plan = build_drill_plan(site="WSL", vms=["dns-xen01"])
    assert [p.code for p in plan.blocking] == ["drill-up"]

    with pytest.raises(ValidationError, match="still up"):
        drill_start(user=estate["mod"], plan=plan, override_reason="testing")
    # Held: no cleanup until it is ended; then the ledger cleans up.
    assert not Run.objects.filter(parent=first).exists()
    from failover.runs.drill import drill_end

    drill_end(user=estate["mod"], run_id=first.pk, reason="testers are done")
    wait_cleaned(first.pk, worker)


def test_a_drill_left_up_past_the_limit_is_cleaned_up_by_the_reaper(
    lab, estate, worker, drill_addresses, settings
):
    run = drill_start(
        user=estate["mod"], plan=build_drill_plan(site="WSL", vms=["dns-xen01"], hold_minutes=60)
    )
    wait_for_run(run.pk, worker=worker)
    # The limit is read by the reaper in the worker; pretend the drill started long ago.
    from datetime import timedelta

    Run.objects.filter(pk=run.pk).update(created_at=run.created_at - timedelta(days=1))
    drill = wait_cleaned(run.pk, worker)
    assert drill.events.filter(kind="cleanup_started").exists()
    assert not lab_state(lab).get("snapshots")


def test_the_drill_command_prints_both_runs_and_exits_0_when_clean(
    lab, estate, worker, drill_addresses, capsys
):
    call_command("drill", "--site", "WSL", "--vms", "dns-xen01", "--wait", "--json")
    out = json.loads(capsys.readouterr().out)
    assert out["drill"]["state"] == "succeeded"
    assert out["cleanup"]["state"] == "succeeded"
    assert out["cleaned_up_at"]


def test_the_next_plan_forecasts_from_the_measured_drill(lab, estate, worker, drill_addresses):
    run = drill_start(user=estate["mod"], plan=build_drill_plan(site="WSL", vms=["dns-xen01"]))
    wait_for_run(run.pk, worker=worker)
    wait_cleaned(run.pk, worker)
    from failover.runs.failover import build_plan

    lose_wsl(lab)
    plan = build_plan(lost_site="WSL")
    assert plan.forecast["source"] == "drill" and plan.forecast["run"] == run.pk
    assert plan.predicted_minutes < 5  # measured seconds, not the thesis' 125 minutes


def test_failback_moves_the_estate_home_and_restores_the_normal_profile(lab, estate, worker, client):
    lose_wsl(lab)
    lab.fault("xenwsl01", "crash")  # the power cut: the dom0 comes back without its VMs
    failover = wait_for_run(declare(estate["mod"]).run.pk, worker=worker, timeout=90)
    assert failover.state == RunStateChoices.SUCCEEDED
    lab.fault("xenwsl01", "up")
    lab.fault("eva-wsl", "up")
    time.sleep(1)  # the lab reopens a host's listener within 0.2 s of "up"

    plan = build_failback_plan(failover=failover)
    assert plan.blocking == [], plan.blocking
    assert sorted(plan.groups) == sorted(
        reference.dr_group_name(v) for v in ("proxy-xen01", "dns-xen01", "rsync-xen01")
    )
    seq = last_seq(lab)
    run = failback_start(user=estate["mod"], failover_id=failover.pk, plan=plan)
    # A second start while the first holds the DR groups is refused with the reason.
    with pytest.raises(ValidationError) as refused:
        failback_start(user=estate["mod"], failover_id=failover.pk, plan=plan)
    assert "already active" in str(refused.value.message_dict["lost_site"])
    run = wait_for_run(run.pk, worker=worker, timeout=120)
    assert run.state == RunStateChoices.SUCCEEDED, [
        (a.kind, a.target, a.state, a.error) for a in run.actions.all()
    ]

    state = lab_state(lab)
    memory = {
        host: {d["name"]: d["memory_mb"] for d in h["domains"]}
        for host, h in state["hosts"].items()
        if h.get("kind") == "dom0"
    }
    normal = {v["name"]: v["normal_mb"] for v in reference.VMS}
    home = {v["name"]: v["home"] for v in reference.VMS}
    for vm, mb in normal.items():
        assert memory[home[vm]].get(vm) == mb, (vm, memory)
    assert set(memory["xenwsl01"]) - {"Domain-0"} == {"proxy-xen01", "dns-xen01", "rsync-xen01"}
    for group in plan.groups:
        sides = state["groups"][group]["sides"]
        assert sides["eva-wsl"]["role"] == "primary" and sides["eva-ka"]["role"] == "secondary"
    assert_report(client, estate, run, ["FAILOVER", "xl shutdown -w proxy-xen01", "proxy-xen01"])
    commands = journal_since(lab, seq)
    # EVA has no REVERSE: the arrays copied back by themselves once eva-wsl answered again
    # (a full copy: the old sources diverged), and the failback waited for it.
    assert not any("REVERSE" in c for c in commands)
    assert any("shutdown" in c and "proxy-xen01" in c for c in commands)
    handover = [c for c in commands if "FAILOVER" in c]
    assert len(handover) == 3 and all('SELECT SYSTEM "EVA-WSL"' in c for c in handover)


def test_a_planned_migration_shuts_down_syncs_demotes_and_promotes_without_force(lab, estate, worker):
    from failover.runs.failover import build_plan
    from failover.runs.migration import migration_start

    plan = build_plan(lost_site="WSL", mode="planned")
    plan.kind = "migration"
    assert plan.blocking == [], plan.blocking
    seq = last_seq(lab)
    run = wait_for_run(migration_start(user=estate["mod"], plan=plan).pk, worker=worker, timeout=120)
    assert run.state == RunStateChoices.SUCCEEDED, [
        (a.kind, a.target, a.state, a.error) for a in run.actions.all()
    ]

    state = lab_state(lab)
    assert {d["name"] for d in state["hosts"]["xenwsl01"]["domains"]} == {"Domain-0"}
    ka = {d["name"]: d["memory_mb"] for d in state["hosts"]["xenka01"]["domains"]}
    assert {vm: ka[vm] for vm in ("proxy-xen01", "dns-xen01", "rsync-xen01")} == {
        "proxy-xen01": 512,
        "dns-xen01": 256,
        "rsync-xen01": 512,
    }
    for group in plan.groups:
        g = state["groups"][group]
        assert g["sides"]["eva-ka"]["role"] == "primary" and g["sides"]["eva-wsl"]["role"] == "secondary"
        assert g["replication"] == "consistent"  # a clean handover: nothing to resync
    commands = journal_since(lab, seq)
    assert not any("FORCE" in c for c in commands)
    group = reference.dr_group_name("proxy-xen01")
    shutdown = next(i for i, c in enumerate(commands) if "shutdown" in c and "proxy-xen01" in c)
    handover = next(i for i, c in enumerate(commands) if "FAILOVER" in c and group in c)
    assert shutdown < handover
