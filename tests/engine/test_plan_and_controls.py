"""The plan preview's blocking problems, no split brain, and the operator's controls."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from failover.choices import ActionStateChoices, RunStateChoices
from failover.models import Action, Run, RunEvent
from failover.runs.controls import (
    action_mark_done,
    action_retry,
    action_skip,
    run_abort,
    run_pause,
    run_resume,
)
from failover.runs.failover import build_plan, disaster_declare
from hosts.models import StorageArray, VMAllocation

from .conftest import declare, lose_wsl, side_effects, wait_for_run

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_preview_lists_what_runs_already_what_shrinks_and_what_starts(lab, estate):
    lose_wsl(lab)
    plan = build_plan(lost_site="WSL")
    assert plan.blocking == []
    assert {r["vm"] for r in plan.already_running} == {"lws-xen01", "dasi-xen01", "tomcat-xen01"}
    assert [s["vm"] for s in plan.starts] == ["dns-xen01", "proxy-xen01", "rsync-xen01"]
    assert {(c["vm"], c["from_mb"], c["to_mb"]) for c in plan.memory_changes} == {
        ("dasi-xen01", 2048, 1024),
        ("tomcat-xen01", 768, 512),
        ("Domain-0", 256, 128),
    }
    assert plan.predicted_minutes == 125
    assert sorted(plan.groups) == ["DRG-dns-xen01", "DRG-proxy-xen01", "DRG-rsync-xen01"]


def test_the_plan_is_built_with_the_cyclic_collector_paused_and_left_as_found(lab, estate, monkeypatch):
    import gc

    from failover.runs import failover

    lose_wsl(lab)
    seen = []
    order_starts = failover.order_starts
    monkeypatch.setattr(
        failover, "order_starts", lambda actions: seen.append(gc.isenabled()) or order_starts(actions)
    )
    assert gc.isenabled()
    plan = build_plan(lost_site="WSL")
    assert seen == [False] and gc.isenabled()
    assert [s["vm"] for s in plan.starts] == ["dns-xen01", "proxy-xen01", "rsync-xen01"]


def test_a_capacity_shortfall_blocks_and_an_override_is_recorded_with_its_reason(lab, estate, worker):
    lose_wsl(lab)
    VMAllocation.objects.filter(profile__name="WSL lost", vm__name="dasi-xen01").update(memory_mb=1700)
    plan = build_plan(lost_site="WSL")
    assert [p.code for p in plan.blocking] == ["capacity"]
    assert "36 MB" in plan.blocking[0].message
    with pytest.raises(ValidationError) as refused:
        declare(estate["mod"])
    assert "override_reason" in refused.value.message_dict
    assert Run.objects.count() == 0
    run = declare(estate["mod"], override="storage team confirmed dasi can run lean").run
    assert run.overrides[0]["reason"] == "storage team confirmed dasi can run lean"
    assert run.overrides[0]["by"] == "mod"
    assert RunEvent.objects.filter(run=run, kind="override", message__contains="dasi can run lean").exists()


def test_a_config_file_missing_on_the_target_dom0_blocks_the_start(lab, estate):
    lose_wsl(lab)
    with lab.store.transaction() as state:
        del state["hosts"]["xenka01"]["files"]["/etc/xen/vm/proxy-xen01"]
    plan = build_plan(lost_site="WSL")
    assert [p.code for p in plan.blocking] == ["config-missing"]
    assert "/etc/xen/vm/proxy-xen01" in plan.blocking[0].message and "xenka01" in plan.blocking[0].message


def test_a_config_xl_would_start_with_parts_drportal_does_not_interpret_is_a_warning_not_a_block(lab, estate):
    lose_wsl(lab)
    with lab.store.transaction() as state:
        files = state["hosts"]["xenka01"]["files"]
        files["/etc/xen/vm/proxy-xen01"] += "shadow_memory = 64\nvif2 = [ ]\nfrobnicate = 1\n"
    plan = build_plan(lost_site="WSL")
    assert plan.blocking == []
    assert (
        "config xenka01:/etc/xen/vm/proxy-xen01: xenka01:/etc/xen/vm/proxy-xen01:14: `frobnicate' is not "
        "interpreted by drportal (xl applies it)"
    ) in plan.warnings
    assert any("`shadow_memory' is not interpreted" in w for w in plan.warnings)


def test_a_config_xl_would_refuse_blocks_naming_the_host_file_and_line(lab, estate):
    lose_wsl(lab)
    with lab.store.transaction() as state:
        state["hosts"]["xenka01"]["files"]["/etc/xen/vm/proxy-xen01"] += "memory = 1.5\n"
    plan = build_plan(lost_site="WSL")
    assert [p.code for p in plan.blocking] == ["config-unreadable"]
    assert "xenka01:/etc/xen/vm/proxy-xen01:12: config parsing error near `.5': lexical error" in (
        plan.blocking[0].message
    )


def test_a_missing_bridge_on_the_target_dom0_blocks(lab, estate):
    lose_wsl(lab)
    with lab.store.transaction() as state:
        state["hosts"]["xenka01"]["bridges"] = ["xenbr0"]
    plan = build_plan(lost_site="WSL")
    assert {p.code for p in plan.blocking} == {"bridge"}
    assert any("xenbr1" in p.message for p in plan.blocking)


def test_an_unreachable_surviving_dom0_blocks(lab, estate):
    lose_wsl(lab)
    lab.fault("xenka01", "down")
    plan = build_plan(lost_site="WSL")
    assert any(p.code == "unreachable" and "xenka01" in p.message for p in plan.blocking)


def test_losing_ka_lists_the_unrecoverable_vms(lab, estate):
    lab.fault("xenka01", "down")
    lab.fault("eva-ka", "down")
    plan = build_plan(lost_site="KA")
    assert sorted(u["vm"] for u in plan.unrecoverable) == ["dasi-xen01", "lws-xen01", "tomcat-xen01"]
    assert any("no replica" in w for w in plan.warnings)


def test_only_the_manager_on_duty_declares(lab, estate):
    lose_wsl(lab)
    with pytest.raises(PermissionDenied):
        declare(estate["helpdesk"])


def test_no_declaration_without_confirming_that_the_lost_site_is_isolated(lab, estate):
    lose_wsl(lab)
    with pytest.raises(ValidationError) as refused:
        declare(estate["mod"], confirm_isolated=False)
    assert "confirm_isolated" in refused.value.message_dict
    assert Run.objects.count() == 0


def test_no_failover_while_the_source_array_still_answers(lab, estate, worker):
    """The MoD says WSL is isolated, but its array still answers: no path to split brain."""
    lab.fault("xenwsl01", "down")  # the dom0 is gone, the array is not
    start = len(side_effects(lab))
    run = wait_for_run(declare(estate["mod"]).run.pk, states=(RunStateChoices.WAITING,), worker=worker)
    refused = run.actions.filter(kind="failover_group", state=ActionStateChoices.FAILED)
    assert refused.count() == 3
    assert all("still reachable" in a.error for a in refused)
    assert [c for c in side_effects(lab)[start:] if "FAILOVER" in c] == []
    groups = lab.store.read()["groups"]
    assert groups["DRG-proxy-xen01"]["sides"]["eva-wsl"]["role"] == "primary"
    assert groups["DRG-proxy-xen01"]["sides"]["eva-ka"]["role"] == "secondary"


def test_the_lab_array_refuses_a_second_primary_even_if_asked_directly(lab, estate):
    """Belt and braces under the engine: the array itself never stores split brain."""
    from hosts.connect import ssh_target, storage_driver
    from hosts.drivers.ssh import SSHConnection
    from hosts.drivers.storage import SplitBrainRefused

    array = StorageArray.objects.get(name="eva-ka")
    with SSHConnection(ssh_target(array)) as conn, pytest.raises(SplitBrainRefused):
        storage_driver(array, conn).promote("DRG-proxy-xen01")
    assert lab.store.read()["groups"]["DRG-proxy-xen01"]["sides"]["eva-ka"]["role"] == "secondary"


def test_a_failed_start_stops_its_dependants_until_it_is_retried(lab, estate, worker):
    lose_wsl(lab)
    with lab.store.transaction() as state:  # dns-xen01 boots a kernel xenka01 does not have now
        files = state["hosts"]["xenka01"]["files"]
        files["/etc/xen/vm/dns-xen01"] = files["/etc/xen/vm/dns-xen01"].replace(
            'bootloader = "pygrub"', "kernel = '/boot/vmlinuz-gone'"
        )
    run = wait_for_run(declare(estate["mod"]).run.pk, states=(RunStateChoices.WAITING,), worker=worker)
    dns = run.actions.get(kind="start_vm", target="dns-xen01")
    assert dns.state == ActionStateChoices.FAILED and dns.error
    dependants = run.actions.filter(kind="start_vm", target__in=["proxy-xen01", "rsync-xen01"])
    assert set(dependants.values_list("state", flat=True)) == {ActionStateChoices.PENDING}
    from hosts.lab.seed import reference_state

    with lab.store.transaction() as state:
        good = reference_state()["hosts"]["xenka01"]["files"]["/etc/xen/vm/dns-xen01"]
        state["hosts"]["xenka01"]["files"]["/etc/xen/vm/dns-xen01"] = good
    action_retry(user=estate["mod"], action_id=dns.pk)
    assert wait_for_run(run.pk, worker=worker).state == RunStateChoices.SUCCEEDED


def test_skip_needs_a_reason_and_lets_the_run_go_on(lab, estate, worker):
    lose_wsl(lab)
    with lab.store.transaction() as state:
        files = state["hosts"]["xenka01"]["files"]
        files["/etc/xen/vm/rsync-xen01"] = files["/etc/xen/vm/rsync-xen01"].replace(
            'bootloader = "pygrub"', "kernel = '/boot/vmlinuz-gone'"
        )
    run = wait_for_run(declare(estate["mod"]).run.pk, states=(RunStateChoices.WAITING,), worker=worker)
    rsync = run.actions.get(kind="start_vm", target="rsync-xen01")
    with pytest.raises(ValidationError) as refused:
        action_skip(user=estate["mod"], action_id=rsync.pk, reason=" ")
    assert "reason" in refused.value.message_dict
    with pytest.raises(PermissionDenied):
        action_skip(user=estate["helpdesk"], action_id=rsync.pk, reason="not mine to skip")
    action_skip(user=estate["mod"], action_id=rsync.pk, reason="rsync is rebuilt from backup tomorrow")
    run = wait_for_run(run.pk, worker=worker)
    assert run.state == RunStateChoices.SUCCEEDED
    rsync.refresh_from_db()
    assert (
        rsync.state == ActionStateChoices.SKIPPED and rsync.reason == "rsync is rebuilt from backup tomorrow"
    )
    event = RunEvent.objects.get(run=run, kind="action_skipped")
    assert event.user == estate["mod"] and "rebuilt from backup" in event.message


def test_a_manual_array_waits_for_a_person_to_mark_the_step_done(lab, estate, worker):
    lose_wsl(lab)
    StorageArray.objects.filter(name="eva-ka").update(kind="manual")
    run = declare(estate["mod"]).run
    run = wait_for_run(run.pk, states=(RunStateChoices.WAITING,), worker=worker)
    manual = list(run.actions.filter(state=ActionStateChoices.MANUAL))
    assert manual and all("Mark done" in a.error or "storage team" in a.error for a in manual)
    # The storage team does it by hand (here: through the lab), then the MoD confirms.
    StorageArray.objects.filter(name="eva-ka").update(kind="eva-ca")
    from hosts.connect import ssh_target, storage_driver
    from hosts.drivers.ssh import SSHConnection

    array = StorageArray.objects.get(name="eva-ka")
    with SSHConnection(ssh_target(array)) as conn:
        driver = storage_driver(array, conn)
        for group in ("DRG-dns-xen01", "DRG-proxy-xen01", "DRG-rsync-xen01"):
            driver.promote(group)
            driver.present(group, "xenka01")
    for action in manual:
        action_mark_done(
            user=estate["mod"], action_id=action.pk, reason="storage team (Meier) failed over by hand"
        )
    run = wait_for_run(run.pk, worker=worker)
    assert run.state == RunStateChoices.SUCCEEDED


def test_pause_holds_new_actions_resume_goes_on_and_abort_ends_the_run(lab, estate, worker):
    lose_wsl(lab)
    from hosts.lab import cli

    cli.lab_latency(lab.lab_dir, default_seconds=0.1)
    run = declare(estate["mod"]).run
    run_pause(user=estate["mod"], run_id=run.pk)
    import time

    time.sleep(1.5)
    assert Run.objects.get(pk=run.pk).state == RunStateChoices.PAUSED
    assert not Action.objects.filter(
        run=run, state=ActionStateChoices.SUCCEEDED, step__number__gte=2
    ).exists()
    run_resume(user=estate["mod"], run_id=run.pk)
    assert wait_for_run(run.pk, worker=worker).state == RunStateChoices.SUCCEEDED

    # WSL is failed over already: declaring again is a blocking problem, overridden here.
    second = declare(estate["mod"], override="declared twice by mistake").run
    with pytest.raises(ValidationError):
        run_abort(user=estate["mod"], run_id=second.pk, reason="")
    run_abort(user=estate["mod"], run_id=second.pk, reason="declared twice by mistake")
    second.refresh_from_db()
    assert second.state == RunStateChoices.ABORTED and second.finished_at
    assert not second.claims.filter(active=True).exists()


def test_a_declaration_while_a_run_is_active_leads_to_that_run(lab, estate):
    lose_wsl(lab)
    first = declare(estate["mod"])
    second = declare(estate["mod"])
    assert first.created and not second.created
    assert second.run.pk == first.run.pk


def test_the_reaper_marks_an_orphan_it_cannot_observe_as_needing_attention(lab, estate):
    from failover.engine import reaper as engine

    lose_wsl(lab)
    run = declare(estate["mod"]).run
    action = run.actions.get(kind="start_vm", target="dns-xen01")
    Action.objects.filter(pk=action.pk).update(
        state=ActionStateChoices.RUNNING, attempt=1, lease_expires_at=timezone.now() - dt.timedelta(seconds=5)
    )
    lab.fault("xenka01", "down")
    report = engine.reap()
    action.refresh_from_db()
    assert report["attention"] == 1
    assert action.state == ActionStateChoices.ATTENTION
    assert "cannot observe" in action.error and "xenka01" in action.error
    assert RunEvent.objects.filter(run=run, kind="action_attention").exists()


def test_a_declaration_with_a_bad_category_names_the_field(lab, estate):
    lose_wsl(lab)
    plan = build_plan(lost_site="WSL")
    with pytest.raises(ValidationError) as refused:
        disaster_declare(
            user=estate["mod"],
            lost_site="WSL",
            disaster_class=7,
            category="aliens",
            detected_at=timezone.now(),
            plan=plan,
            confirm_isolated=True,
        )
    assert {"disaster_class", "category"} <= set(refused.value.message_dict)


def test_a_start_xl_refuses_for_its_kernel_fails_with_the_tools_whole_message_and_the_run_waits(
    lab, estate, worker
):
    lose_wsl(lab)
    with lab.store.transaction() as state:
        for host in state["hosts"].values():
            path = "/etc/xen/vm/proxy-xen01"
            if path in host.get("files", {}):
                host["files"][path] = host["files"][path].replace(
                    'bootloader = "pygrub"', "kernel = '/boot/vmlinuz-gone'"
                )
    run_id = declare(estate["mod"]).run.pk
    run = wait_for_run(run_id, states=(RunStateChoices.WAITING,), timeout=90, worker=worker)
    failed = run.actions.get(state=ActionStateChoices.FAILED)
    assert failed.kind == "start_vm" and failed.target == "proxy-xen01"
    # BadKernel keeps the tool's words: libxc's panic and libxl's lines, not "no such domain".
    assert "failed to open file '/boot/vmlinuz-gone': No such file or directory" in failed.error
    assert "xc_dom_kernel_file failed" in failed.error and "invalid domain" not in failed.error
