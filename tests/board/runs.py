"""Runs of any size for the board's tests, written like the engine writes them."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from failover.choices import STEPS
from failover.choices import ActionStateChoices as A
from failover.choices import StepStateChoices as S
from failover.engine.journal import record_event
from failover.models import Action, Disaster, Run, Step
from failover.runs.deadline import recovery_deadline
from tests.factories import SiteFactory


def build_run(
    *,
    user,
    per_step: int = 2,
    events: int = 0,
    state: str = "running",
    kind: str = "failover",
    step_states: dict[int, str] | None = None,
    action_state: str = A.PENDING,
    checks: int = 0,
    detected_at: dt.datetime | None = None,
) -> Run:
    """A run with ``per_step`` actions in each of the seven steps (and ``checks`` functional
    tests in step 6) and ``events`` RunEvents after the first, written like the engine
    writes them (record_event in a transaction, so the doorbell rings)."""
    wsl = SiteFactory(code="WSL", name="Wiesloch")
    ka = SiteFactory(code="KA", name="Karlsruhe", role="alternate")
    now = timezone.now()
    detected = detected_at or now - dt.timedelta(minutes=30)
    with transaction.atomic():
        disaster = None
        if kind == "failover":
            disaster = Disaster.objects.create(
                lost_site=wsl,
                disaster_class=2,
                category="power",
                detected_at=detected,
                declared_at=now - dt.timedelta(minutes=5),
                declared_by=user,
                isolation_confirmed_by=user,
                isolation_confirmed_at=now,
                deadline=recovery_deadline(detected),
            )
        run = Run.objects.create(
            disaster=disaster,
            kind=kind,
            mode="disaster",
            state=state,
            lost_site=wsl,
            target_site=ka,
            created_by=user,
        )
        step_states = step_states or {}
        steps = [
            Step(
                run=run,
                number=number,
                key=key,
                name=str(name),
                planned_minutes=minutes,
                state=step_states.get(number, S.PENDING),
                started_at=now if step_states.get(number, S.PENDING) != S.PENDING else None,
                finished_at=now if step_states.get(number) == S.DONE else None,
            )
            for number, key, name, minutes in STEPS
        ]
        Step.objects.bulk_create(steps)
        actions = []
        for step in steps:
            for i in range(per_step):
                actions.append(
                    Action(
                        run=run,
                        step=step,
                        kind="check_host",
                        target=f"{step.key}-{i}",
                        host="xenka01",
                        order=len(actions),
                        state=action_state,
                        output=f"[xenka01] $ xl list  -> exit 0\n    line {i}",
                    )
                )
        for i in range(checks):
            actions.append(
                Action(
                    run=run,
                    step=steps[6],
                    kind="functional_check",
                    target=f"vm-{i}: http",
                    host="xenka01",
                    order=len(actions),
                    optional=True,
                    state=A.SUCCEEDED if i % 2 == 0 else A.FAILED,
                    outcome="ok" if i % 2 == 0 else "down",
                    error="" if i % 2 == 0 else "connection refused",
                    params={"vm": f"vm-{i}", "check": "http"},
                    output=f"http check 'http': {'ok: 200' if i % 2 == 0 else 'down'}",
                )
            )
        Action.objects.bulk_create(actions)
        record_event(run_id=run.pk, kind="run_started", message=f"Failover declared by {user}", user=user)
        for i in range(events):
            record_event(run_id=run.pk, kind="action_started", message=f"event {i}", action_id=actions[0].pk)
    return run


def failback_of(failover: Run, *, state: str) -> Run:
    """A failback as failback_start makes it: from the surviving site back home."""
    return Run.objects.create(
        kind="failback",
        mode="planned",
        state=state,
        lost_site=failover.target_site,
        target_site=failover.lost_site,
        created_by=failover.created_by,
        parent=failover,
    )
