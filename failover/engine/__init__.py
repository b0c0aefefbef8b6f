"""The runbook engine: a state machine in the database, driven by short Celery tasks.

- ``advance``: one pass over a run queues every action that may start now and finishes
  steps and the run (passes over one run are serialised).
- ``execute``: a worker claims one queued action, acts over SSH *outside* any
  transaction while a heartbeat renews its lease, and records the result guarded by the
  attempt number.
- ``reaper``: Celery beat re-sends lost messages and observes the actions of dead
  workers (finish, retry only if the effect provably did not happen, or "needs attention").
- ``journal``: every state change is a numbered RunEvent in the same transaction.
- ``sql``: every raw statement of the hot path; ``dispatch``: the one way to the tasks.

Imports point down: runs -> engine -> actions -> hosts.drivers.
"""
