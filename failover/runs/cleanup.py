"""A drill's cleanup: a run of its own, generated from the drill's undo ledger (every action
records how to undo what it did). It starts when the drill ends (at once, or after the
hold the MoD asked for); a drill left up past ``DRPORTAL_DRILL_MAX_S`` is stopped and
cleaned up by the reaper (``followups``)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from failover.choices import CLEANUP_STEPS, RunKindChoices, RunModeChoices
from failover.choices import ActionKindChoices as K
from failover.choices import ActionStateChoices as A
from failover.choices import CleanupStep as C
from failover.choices import RunStateChoices as R
from failover.engine.journal import record_event
from failover.models import Run

from .blocks import set_memory
from .create import run_create
from .plan import Plan, PlannedAction


def _undo_of(action) -> dict | None:
    """The undo of one drill action: what its ledger says, or, if it was attempted but
    the worker died before recording, what it would have recorded."""
    if action.undo:
        return action.undo
    if action.attempt == 0 and action.state in (A.PENDING, A.SKIPPED):
        return None
    p = action.params
    if action.kind == "start_drill_vm":
        return {"kind": "destroy_domain", "domain": p["domain"], "host": action.host}
    if action.kind == "clone_group":
        return {
            "kind": "delete_snapshot",
            "snapshot": p["snapshot"],
            "array": p["array"],
            "hosts": [p["present_to"]] if p.get("present_to") else [],
        }
    return None


def cleanup_plan(drill: Run) -> Plan:
    """The cleanup of ``drill``, generated from its undo ledger, newest effect first."""
    plan = Plan(
        lost_site=drill.lost_site.code, target_site=drill.target_site.code, mode=RunModeChoices.PLANNED
    )
    plan.kind = RunKindChoices.CLEANUP
    plan.options = {"drill": drill.pk}
    plan.step_minutes = {n: float(m) for n, _k, _name, m in CLEANUP_STEPS}
    actions: list[PlannedAction] = []
    hosts, arrays, snapshots = set(), set(), []
    for action in drill.actions.order_by("-step__number", "-order"):
        undo = _undo_of(action)
        if not undo:
            continue
        if undo["kind"] == "destroy_domain":
            hosts.add(undo["host"])
            actions.append(
                PlannedAction(
                    key=f"stop:{undo['domain']}",
                    step=C.STOP,
                    kind=K.DESTROY_DRILL_DOMAIN,
                    target=undo["domain"],
                    host=undo["host"],
                    params={**undo, "of": action.pk},
                )
            )
        elif undo["kind"] == "set_memory":
            actions.append(
                set_memory(
                    key=f"memory:{undo['vm']}",
                    vm=undo["vm"],
                    host=undo["host"],
                    memory_mb=undo["memory_mb"],
                    step=C.MEMORY,
                    params={"of": action.pk},
                )
            )
        elif undo["kind"] == "delete_snapshot":
            arrays.add(undo["array"])
            snapshots.append(undo["snapshot"])
            actions.append(
                PlannedAction(
                    key=f"storage:{undo['snapshot']}",
                    step=C.STORAGE,
                    kind=K.DELETE_SNAPSHOT,
                    target=undo["snapshot"],
                    host=undo["array"],
                    params={**undo, "of": action.pk},
                )
            )
    # Prove it: no drill domain on any dom0 the drill touched, no snapshot of it on any array.
    for host in sorted(hosts | {a.host for a in drill.actions.filter(kind=K.CHECK_HOST)}):
        actions.append(
            PlannedAction(
                key=f"verify:{host}",
                step=C.VERIFY,
                kind=K.VERIFY_DRILL_GONE,
                target=host,
                host=host,
                params={"host": host},
            )
        )
    for array in sorted(arrays):
        actions.append(
            PlannedAction(
                key=f"verify:{array}",
                step=C.VERIFY,
                kind=K.VERIFY_DRILL_GONE,
                target=array,
                host=array,
                params={"array": array, "snapshots": sorted(snapshots)},
            )
        )
    plan.actions = actions
    return plan


def cleanup_create(*, drill: Run, user=None) -> Run | None:
    """Start the cleanup of ``drill`` (once: a second call, or a second reaper, gets the
    same run back)."""
    existing = drill.followups.filter(kind=RunKindChoices.CLEANUP).first()
    if existing:
        return existing
    plan = cleanup_plan(drill)
    try:
        with transaction.atomic():
            run = run_create(
                plan=plan,
                disaster=None,
                user=user or drill.created_by,
                kind=RunKindChoices.CLEANUP,
                override_reason="",
                groups=[],
                parent=drill,
            )
            record_event(
                run_id=drill.pk,
                kind="cleanup_started",
                message=f"Cleanup started as run {run.pk}: {len(plan.actions)} actions from the undo ledger",
                data={"cleanup_run": run.pk},
            )
            return run
    except IntegrityError:
        return drill.followups.filter(kind=RunKindChoices.CLEANUP).first()


def held_until(drill: Run):
    """Until when a finished drill's clones stay up for people to test: the hold the
    MoD asked for after its end, unless ended earlier."""
    if drill.hold_until is not None:
        return drill.hold_until
    minutes = float(drill.plan.get("options", {}).get("hold_minutes") or 0)
    return (drill.finished_at or drill.created_at) + timedelta(minutes=minutes)


def followups(now=None) -> dict:
    """Run by the reaper: start the cleanup of drills that ended (and are not held),
    stop and clean up drills left up past the limit, and mark drills clean when their
    cleanup succeeded."""
    now = now or timezone.now()
    limit = timedelta(seconds=float(getattr(settings, "DRPORTAL_DRILL_MAX_S", 4 * 3600)))
    done = {"cleanups": 0, "expired": 0, "cleaned": 0}
    drills = Run.objects.filter(kind=RunKindChoices.DRILL, cleaned_up_at=None).select_related(
        "lost_site", "target_site", "created_by"
    )
    for drill in drills:
        cleanup = drill.followups.filter(kind=RunKindChoices.CLEANUP).first()
        if cleanup is not None:
            if cleanup.state == R.SUCCEEDED:
                # The mark and its event commit together; of two reapers one marks it.
                with transaction.atomic():
                    if Run.objects.filter(pk=drill.pk, cleaned_up_at=None).update(
                        cleaned_up_at=cleanup.finished_at or now
                    ):
                        record_event(
                            run_id=drill.pk,
                            kind="cleaned_up",
                            message=f"Drill cleaned up by run {cleanup.pk}: nothing of it is left",
                        )
                        done["cleaned"] += 1
            continue
        expired = drill.created_at + limit <= now
        if drill.active and not expired:
            continue
        if held_until(drill) > now and drill.state == R.SUCCEEDED and not expired:
            continue
        if expired:
            with transaction.atomic():
                if Run.objects.filter(pk=drill.pk, state__in=R.active()).update(
                    state=R.ABORTED, finished_at=now
                ):
                    record_event(
                        run_id=drill.pk,
                        kind="run_aborted",
                        message=f"Drill stopped: it was up longer than the limit of {limit}",
                    )
            done["expired"] += 1
        if cleanup_create(drill=drill):
            done["cleanups"] += 1
    return done
