"""The run's journal: every state change of a run is a RunEvent, numbered per run and
written in the caller's transaction; after commit the doorbell rings (``failover.events``)."""

from __future__ import annotations

import json

from django.db import transaction
from django.utils import timezone

from failover import events
from failover.models import RunEvent

from . import sql


def record_event(
    *, run_id: int, kind: str, message: str, action_id: int | None = None, user=None, data: dict | None = None
) -> RunEvent:
    """Append one event. Must run inside a transaction: the counter UPDATE takes the
    run's row lock, so concurrent writers number their events without gaps or twins."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("record_event needs a transaction (the counter and the row commit together)")
    fields = {"run_id": run_id, "kind": kind, "message": message, "action_id": action_id, "user": user}
    fields["data"] = data or {}
    if connection.vendor == "postgresql":
        # One statement numbers and writes the event (see sql.number_and_insert_event).
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(
                sql.number_and_insert_event(),
                [
                    run_id,
                    now,
                    kind,
                    message,
                    action_id,
                    user.pk if user else None,
                    json.dumps(fields["data"]),
                ],
            )
            row = cursor.fetchone()
        if row is None:
            raise RuntimeError(f"run {run_id} does not exist")
        event = RunEvent(id=row[0], seq=row[1], created_at=now, **fields)
        event._state.adding = False
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql.next_event_seq(), [run_id])
            row = cursor.fetchone()
        if row is None:
            raise RuntimeError(f"run {run_id} does not exist")
        event = RunEvent.objects.create(seq=row[0], **fields)
    seq = event.seq
    transaction.on_commit(lambda: events.ring_doorbell(run_id, seq))
    return event
