"""Reads of runs for the board, the CLI and the API."""

from __future__ import annotations

import itertools

from django.utils import timezone

from failover.models import Run, RunEvent


def run_summary(*, run_id: int) -> dict:
    """The run as the CLI's --json and the board's header show it: id, state, and per
    step and action their state, attempts and minutes."""
    run = Run.objects.select_related("disaster", "lost_site", "target_site").get(pk=run_id)
    steps = list(run.steps.order_by("number"))
    actions = list(run.actions.order_by("step__number", "order", "pk"))
    now = timezone.now()

    def minutes(start, end) -> float | None:
        if start is None:
            return None
        return round(((end or now) - start).total_seconds() / 60, 4)

    return {
        "run": run.pk,
        "kind": run.kind,
        "mode": run.mode,
        "state": run.state,
        "lost_site": run.lost_site.code,
        "target_site": run.target_site.code,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "deadline": run.disaster.deadline.isoformat() if run.disaster else None,
        "recovery_seconds": run.summary.get("recovery_seconds"),
        "run_seconds": run.summary.get("run_seconds"),
        "overrides": run.overrides,
        "steps": [
            {
                "number": s.number,
                "key": s.key,
                "name": s.name,
                "state": s.state,
                "planned_minutes": s.planned_minutes,
                "actual_minutes": minutes(s.started_at, s.finished_at),
                "actions": [
                    {
                        "id": a.pk,
                        "kind": a.kind,
                        "target": a.target,
                        "host": a.host,
                        "state": a.state,
                        "attempts": a.attempt,
                        "minutes": minutes(a.started_at, a.finished_at),
                        "outcome": a.outcome,
                        "error": a.error,
                        "reason": a.reason,
                    }
                    for a in actions
                    if a.step_id == s.pk
                ],
            }
            for s in steps
        ],
    }


def drill_history(site_code: str, *, limit: int = 10, kind: str = "drill") -> list[dict]:
    """The successful drills (or runs of ``kind``) of a site, newest first: per run its
    measured step times and how much slower (in %) it was than the one before it."""
    runs = list(
        Run.objects.filter(kind=kind, lost_site__code=site_code, state="succeeded")
        .exclude(finished_at=None)
        .order_by("-finished_at", "-pk")[: limit + 1]
    )
    rows = [
        {
            "run": run.pk,
            "finished_at": run.finished_at.isoformat(),  # type: ignore[union-attr]  # excluded None above
            "minutes": (run.summary.get("run_seconds") or 0) / 60,
            "steps": run.summary.get("steps", []),
            "previous_run": None,
            "slower_pct": None,
        }
        for run in runs
    ]
    for row, before in itertools.pairwise(rows):
        row["previous_run"] = before["run"]
        if before["minutes"] > 0:
            row["slower_pct"] = round((row["minutes"] / before["minutes"] - 1) * 100, 1)
    return rows[:limit]


def events_after(*, run_id: int, after: int, limit: int = 500) -> tuple[list[dict], str | None, int]:
    """RunEvents with seq > ``after``, oldest first, and the run's state and counter (state
    None: no such run). State and counter are read first: a final state means the event
    that ended the run is committed, so it is among the events read after."""
    run = Run.objects.filter(pk=run_id).values("state", "event_seq").first()
    if run is None:
        return [], None, 0
    rows = list(
        RunEvent.objects.filter(run_id=run_id, seq__gt=after)
        .order_by("seq")
        .values("seq", "kind", "message", "created_at", "action_id", "user__username", "data")[:limit]
    )
    events = [
        {
            "seq": r["seq"],
            "kind": r["kind"],
            "message": r["message"],
            "at": r["created_at"].isoformat(),
            "action": r["action_id"],
            "user": r["user__username"],
            "step": r["data"].get("step") if isinstance(r["data"], dict) else None,
        }
        for r in rows
    ]
    return events, run["state"], run["event_seq"]
