"""Every raw SQL statement of drportal, in one room.

The engine's hot path runs thousands of statements per run (every action claims, loads
and records itself and writes two events), and the board's stream reads a run's events
on every doorbell. The ORM took longer to *build* those statements (select_related, a
filter across a join) than PostgreSQL took to run them, on the same two cores the
workers need. So they are written here once: table and column names come from the
models' ``_meta``, quoted with ``connection.ops.quote_name``; every value is a ``%s``
parameter, in the order each statement's docstring gives. Each statement is built on
first use (after Django's setup) and kept: the engine and the stream use the default
database only. The rows they return become model instances with the converters the
ORM applies (JSON, and SQLite's dates): ``from_row``.

Statements that only PostgreSQL has (advisory locks, ``FOR KEY SHARE``, ``LATERAL``,
jsonb) say so; their callers take the portable path elsewhere (the demo's SQLite).
"""

from __future__ import annotations

from functools import cache

from django.contrib.auth import get_user_model
from django.db import connection, models

from drportal.models import Epoch
from failover.models import Action, Run, RunEvent


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _table(model: type[models.Model]) -> str:
    return _q(model._meta.db_table)


def _col(model: type[models.Model], field: str) -> str:
    found = model._meta.get_field(field)
    assert isinstance(found, models.Field) and found.column, f"{model.__name__}.{field} has no column"
    return _q(found.column)


_DEPENDS = Action.depends_on.through


@cache
def column_list(model: type[models.Model]) -> str:
    """The qualified columns of every concrete field, in the order ``from_row`` expects."""
    return ", ".join(f"{_table(model)}.{_q(f.column)}" for f in model._meta.concrete_fields)


# -- loading model rows -------------------------------------------------------------------------


@cache
def select_by(model: type[models.Model], field: str) -> str:
    """Every column of ``model`` where the unique ``field`` = %s."""
    return f"SELECT {column_list(model)} FROM {_table(model)} WHERE {_col(model, field)} = %s"  # nosec B608  # names from _meta, quoted; the value is a parameter


def get(model: type[models.Model], field: str, value):
    """``model.objects.get(<field>=value)`` for a unique ``field``, as one plain SELECT;
    raises the model's DoesNotExist like the ORM does."""
    with connection.cursor() as cursor:
        cursor.execute(select_by(model, field), [value])
        row = cursor.fetchone()
    if row is None:
        raise model.DoesNotExist(  # type: ignore[attr-defined]  # every concrete model has it
            f"{model._meta.object_name} matching {field}={value!r} does not exist"
        )
    return from_row(model, row)


def from_row(model: type[models.Model], values):
    """A model instance from the values of ``column_list(model)``, converted as the ORM
    converts them (so a JSONField holds its dict, not the text the driver returned)."""
    converted = list(values)
    attnames = _attnames(model)
    if len(converted) != len(attnames):
        raise ValueError(f"{len(converted)} values for the {len(attnames)} columns of {model.__name__}")
    # Only the fields that have converters (an Action has two JSONFields among its ~30).
    for index, expression, converters in _converters(model, connection.vendor):
        value = converted[index]
        for convert in converters:
            value = convert(value, expression, connection)
        converted[index] = value
    return model.from_db(connection.alias, attnames, converted)


@cache
def _attnames(model: type[models.Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields]


@cache
def _converters(model: type[models.Model], vendor: str) -> list[tuple]:
    """The concrete fields the ORM converts: their position, column expression and
    converters (the backend's, then the field's), found once per model and database
    backend. A field without converters is not listed: its value is used as it is."""
    assert connection.vendor == vendor
    table = model._meta.db_table
    found = []
    for index, field in enumerate(model._meta.concrete_fields):
        expression = field.get_col(table)
        converters = (
            *connection.ops.get_db_converters(expression),
            *expression.get_db_converters(connection),
        )
        if converters:
            found.append((index, expression, converters))
    return found


# -- a pass over a run (engine.advance) ---------------------------------------------------------

# PostgreSQL: a pass does no I/O but the database's, so waiting longer than this for the
# lock means something is stuck: the task fails and the reaper advances the run later.
RUN_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '30s'"
# PostgreSQL: (the lock's first key, the run id).
RUN_ADVISORY_LOCK = "SELECT pg_advisory_xact_lock(%s::int4, %s::int4)"


@cache
def run_key_share() -> str:
    """PostgreSQL: hold the run row (run id) against pause and abort, not against the
    event writers' UPDATE of its counter."""
    return f"SELECT 1 FROM {_table(Run)} WHERE {_col(Run, 'id')} = %s FOR KEY SHARE"  # nosec B608  # names from _meta


# -- claiming and recording an action (engine.execute) ------------------------------------------


@cache
def claim_action() -> str:
    """Claim a queued action of a running (or waiting) run and load it, in one statement,
    in the epoch the worker believes current (two sites), and only if the database agrees
    (a standalone portal passes NULL: whatever the database says). Parameters: running,
    lease expiry, worker, now, epoch, action id, queued, epoch, and the two run states.
    Returns the action's columns and whether other actions of its step and tier depend on
    it (a dependent in a later step or tier waits for the barrier's pass anyway)."""
    action, run, depends = _table(Action), _table(Run), _table(_DEPENDS)
    current = f"COALESCE((SELECT MAX({_col(Epoch, 'number')}) FROM {_table(Epoch)}), 1)"  # nosec B608  # names from _meta
    a = {name: _col(Action, name) for name in ("id", "state", "attempt", "lease_expires_at", "run")}
    return (
        f"UPDATE {action} SET {a['state']} = %s, {a['attempt']} = {a['attempt']} + 1,"  # nosec B608  # names from _meta
        f" {a['lease_expires_at']} = %s, {_col(Action, 'claimed_by')} = %s, {_col(Action, 'started_at')} = %s,"
        f" {_col(Action, 'error')} = '', {_col(Action, 'epoch')} = COALESCE(%s, {current})"
        f" WHERE {a['id']} = %s AND {a['state']} = %s AND {current} = COALESCE(%s, {current})"
        f" AND {a['run']} IN (SELECT {_col(Run, 'id')} FROM {run} WHERE {_col(Run, 'state')} IN (%s, %s))"
        f" RETURNING {column_list(Action)},"
        f" EXISTS (SELECT 1 FROM {depends} d JOIN {action} b ON b.{a['id']} = d.{_col(_DEPENDS, 'from_action')}"
        f" WHERE d.{_col(_DEPENDS, 'to_action')} = {action}.{a['id']}"
        f" AND b.{_col(Action, 'step')} = {action}.{_col(Action, 'step')}"
        f" AND b.{_col(Action, 'tier')} = {action}.{_col(Action, 'tier')}) AS awaited"
    )


@cache
def claim_and_start() -> str:
    """PostgreSQL: ``claim_action`` and its "started" event in one statement (so in one
    transaction, and without one of its own): the event is numbered and written only if
    the claim took the action. Parameters: those of ``claim_action``, then created at and
    the event's kind. Returns the claim's row, then the event's number."""
    run_id, seq = _col(Run, "id"), _col(Run, "event_seq")
    columns = ", ".join(_col(RunEvent, f) for f in EVENT_FIELDS)
    c = {f: f"c.{_col(Action, f)}" for f in ("id", "run", "target", "kind", "attempt", "claimed_by")}
    message = (
        f"{c['target']} || ': ' || replace({c['kind']}, '_', ' ') || ' (attempt ' || {c['attempt']} || ')'"
    )
    return (
        f"WITH c AS ({claim_action()}),"  # nosec B608  # names from _meta, values are parameters
        f" n AS (UPDATE {_table(Run)} SET {seq} = {seq} + 1 WHERE {run_id} = (SELECT {c['run']} FROM c)"
        f" RETURNING {run_id}, {seq}),"
        f" e AS (INSERT INTO {_table(RunEvent)} ({columns})"
        f" SELECT n.{run_id}, n.{seq}, %s, %s, {message}, {c['id']}, NULL,"
        f" jsonb_build_object('attempt', {c['attempt']}, 'worker', {c['claimed_by']}) FROM n, c"
        f" RETURNING {_col(RunEvent, 'seq')})"
        f" SELECT c.*, e.{_col(RunEvent, 'seq')} FROM c, e"
    )


@cache
def finish_action() -> str:
    """Store an attempt's result. Parameters: state, finished at, result, undo, outcome,
    output, error, and the guard: action id, attempt, running."""
    fields = ("state", "finished_at", "result", "undo", "outcome", "output", "error")
    sets = ", ".join(f"{_col(Action, f)} = %s" for f in fields)
    return (
        f"UPDATE {_table(Action)} SET {sets}, {_col(Action, 'lease_expires_at')} = NULL"  # nosec B608  # names from _meta
        f" WHERE {_col(Action, 'id')} = %s AND {_col(Action, 'attempt')} = %s AND {_col(Action, 'state')} = %s"
    )


@cache
def hand_on(*, not_ok: int, skip_locked: bool) -> str:
    """If the run is running or waiting, queue the next pending action of a host, step and
    tier whose dependencies are done, in the pass's order, and return its id. Parameters:
    run id, queued, now, pending, the two run states, run id, step id, tier, host, array,
    pending, then the ``not_ok`` states a dependency must not be in. Only an action of the
    same storage array (or of none, like the finished one) takes the slot: the per-array
    count stays what it was.
    ``skip_locked`` (PostgreSQL): the run row is held FOR KEY SHARE, as a pass holds it (a
    pause or an abort waits for it, and one that went first is seen: a lock reads the
    row's latest version), before any action row is locked (the join yields no action row
    before it has the run's, so locks are taken in the order a pause takes them); and an
    action row another transaction holds is not this one's to take."""
    action, depends = _table(Action), _table(_DEPENDS)
    state, a_id = _col(Action, "state"), _col(Action, "id")
    return (
        f"WITH r AS (SELECT {_col(Run, 'state')} AS state FROM {_table(Run)} WHERE {_col(Run, 'id')} = %s"  # nosec B608  # names from _meta
        + (" FOR KEY SHARE" if skip_locked else "")
        + ")"  # nosec B608  # names from _meta, values are parameters
        f" UPDATE {action} SET {state} = %s, {_col(Action, 'queued_at')} = %s"
        f" WHERE {state} = %s AND {a_id} = ("
        f"SELECT a.{a_id} FROM r JOIN {action} a ON r.state IN (%s, %s)"
        f" WHERE a.{_col(Action, 'run')} = %s AND a.{_col(Action, 'step')} = %s"
        f" AND a.{_col(Action, 'tier')} = %s AND a.{_col(Action, 'host')} = %s"
        f" AND a.{_col(Action, 'array')} = %s AND a.{state} = %s"
        f" AND NOT EXISTS (SELECT 1 FROM {depends} d JOIN {action} b ON b.{a_id} = d.{_col(_DEPENDS, 'to_action')}"
        f" WHERE d.{_col(_DEPENDS, 'from_action')} = a.{a_id} AND b.{state} IN ({', '.join(['%s'] * not_ok)}))"
        f" ORDER BY a.{_col(Action, 'order')}, a.{a_id} LIMIT 1"
        + (" FOR UPDATE OF a SKIP LOCKED" if skip_locked else "")
        + f") RETURNING {a_id}"
    )


@cache
def finish_and_claim_next(*, not_ok: int) -> str:
    """PostgreSQL: ``finish_action`` with its event, ``hand_on``, and ``claim_and_start``
    of the action the slot went to, as one statement (so one transaction and one round
    trip between one action's last command and the next one's first: on an array of four
    sessions that gap is paid 125 times in a row per step). Named parameters: the result
    (state, now, result, undo, outcome, output, error) and its guard (id, attempt,
    running); the hand-on's (run, step, tier, host, array, pending, run_running,
    run_waiting, not_ok0...); the claim's (lease, worker, epoch); the finished action's
    event (kind, message, data as JSON text) and the kind of the "started" event.

    The same choice as ``hand_on``, with its locks in its order (the finished row, the
    run row FOR KEY SHARE, the next row, the run row's counter), made only if the result
    was stored. Every sub-statement reads one snapshot, so a dependency on the finished
    action is judged by the state this statement gives it, as ``hand_on`` after
    ``finish_action`` judges it. The claim is ``claim_action``'s (epoch, attempt, lease);
    the finished action's event is numbered before the claimed one's "started". Returns
    one row if the result was stored: the last event's number, then the claimed action's
    columns and ``awaited`` (NULL when nothing was handed on)."""
    action, run, depends = _table(Action), _table(Run), _table(_DEPENDS)
    state, a_id, attempt = _col(Action, "state"), _col(Action, "id"), _col(Action, "attempt")
    run_id, seq = _col(Run, "id"), _col(Run, "event_seq")
    current = f"COALESCE((SELECT MAX({_col(Epoch, 'number')}) FROM {_table(Epoch)}), 1)"  # nosec B608  # names from _meta
    results = ("result", "undo", "outcome", "output", "error")
    sets = ", ".join(f"{_col(Action, f)} = %({f})s" for f in results)
    not_ok_states = ", ".join(f"%(not_ok{i})s" for i in range(not_ok))
    columns = ", ".join(_col(RunEvent, f) for f in EVENT_FIELDS)
    h = {f: f"h.{_col(Action, f)}" for f in ("id", "target", "kind", "attempt", "claimed_by")}
    started = (
        f"{h['target']} || ': ' || replace({h['kind']}, '_', ' ') || ' (attempt ' || {h['attempt']} || ')'"
    )
    claimed = "(SELECT count(*) FROM h)"
    return (
        f"WITH f AS (UPDATE {action} SET {state} = %(state)s, {_col(Action, 'finished_at')} = %(now)s,"  # nosec B608  # names from _meta, values are parameters
        f" {sets}, {_col(Action, 'lease_expires_at')} = NULL"
        f" WHERE {a_id} = %(id)s AND {attempt} = %(attempt)s AND {state} = %(running)s"
        f" RETURNING {a_id}),"
        f" r AS (SELECT {_col(Run, 'state')} AS state FROM {run} WHERE {run_id} = %(run)s"
        " AND EXISTS (SELECT 1 FROM f) FOR KEY SHARE),"
        f" h AS (UPDATE {action} SET {state} = %(running)s, {attempt} = {attempt} + 1,"
        f" {_col(Action, 'lease_expires_at')} = %(lease)s, {_col(Action, 'claimed_by')} = %(worker)s,"
        f" {_col(Action, 'started_at')} = %(now)s, {_col(Action, 'queued_at')} = %(now)s,"
        f" {_col(Action, 'error')} = '', {_col(Action, 'epoch')} = COALESCE(%(epoch)s, {current})"
        f" WHERE {state} = %(pending)s AND {current} = COALESCE(%(epoch)s, {current}) AND {a_id} = ("
        f"SELECT a.{a_id} FROM r JOIN {action} a ON r.state IN (%(run_running)s, %(run_waiting)s)"
        f" WHERE a.{_col(Action, 'run')} = %(run)s AND a.{_col(Action, 'step')} = %(step)s"
        f" AND a.{_col(Action, 'tier')} = %(tier)s AND a.{_col(Action, 'host')} = %(host)s"
        f" AND a.{_col(Action, 'array')} = %(array)s AND a.{state} = %(pending)s"
        f" AND NOT EXISTS (SELECT 1 FROM {depends} d JOIN {action} b ON b.{a_id} = d.{_col(_DEPENDS, 'to_action')}"
        f" WHERE d.{_col(_DEPENDS, 'from_action')} = a.{a_id}"
        f" AND (CASE WHEN b.{a_id} = %(id)s THEN %(state)s ELSE b.{state} END) IN ({not_ok_states}))"
        f" ORDER BY a.{_col(Action, 'order')}, a.{a_id} LIMIT 1 FOR UPDATE OF a SKIP LOCKED)"
        f" RETURNING {column_list(Action)},"
        f" EXISTS (SELECT 1 FROM {depends} d JOIN {action} b ON b.{a_id} = d.{_col(_DEPENDS, 'from_action')}"
        f" WHERE d.{_col(_DEPENDS, 'to_action')} = {action}.{a_id}"
        f" AND b.{_col(Action, 'step')} = {action}.{_col(Action, 'step')}"
        f" AND b.{_col(Action, 'tier')} = {action}.{_col(Action, 'tier')}) AS awaited),"
        f" n AS (UPDATE {run} SET {seq} = {seq} + 1 + {claimed} WHERE {run_id} = %(run)s"
        f" AND EXISTS (SELECT 1 FROM f) RETURNING {run_id}, {seq}),"
        f" e AS (INSERT INTO {_table(RunEvent)} ({columns})"
        f" SELECT n.{run_id}, n.{seq} - {claimed}, %(now)s, %(kind)s, %(message)s, %(id)s, NULL, %(data)s::jsonb"
        " FROM n),"
        f" s AS (INSERT INTO {_table(RunEvent)} ({columns})"
        f" SELECT n.{run_id}, n.{seq}, %(now)s, %(started)s, {started}, {h['id']}, NULL,"
        f" jsonb_build_object('attempt', {h['attempt']}, 'worker', {h['claimed_by']}) FROM n, h)"
        f" SELECT (SELECT n.{seq} FROM n), h.* FROM f LEFT JOIN h ON true"
    )


@cache
def pass_can_wait() -> str:
    """After a chain of actions ended (nothing handed on), committed: may the pass wait for
    a later chain end? Yes while the run is running, another action of the same step and
    tier is queued or running (its own chain end comes later and sees this one's commit)
    and no pending action of that step and tier could take a slot this one freed (one of
    its host, or of its storage array). Parameters: run id, running, then run id, step id,
    tier, action id, the two active states, then run id, step id, tier, pending, host,
    array."""
    action, run = _table(Action), _table(Run)
    a = {f: _col(Action, f) for f in ("id", "run", "step", "tier", "state", "host", "array")}
    same = f"{a['run']} = %s AND {a['step']} = %s AND {a['tier']} = %s"
    return (
        f"SELECT EXISTS (SELECT 1 FROM {run} WHERE {_col(Run, 'id')} = %s AND {_col(Run, 'state')} = %s)"  # nosec B608  # names from _meta
        f" AND EXISTS (SELECT 1 FROM {action} WHERE {same} AND {a['id']} <> %s AND {a['state']} IN (%s, %s))"
        f" AND NOT EXISTS (SELECT 1 FROM {action} WHERE {same} AND {a['state']} = %s"
        f" AND ({a['host']} = %s OR ({a['array']} <> '' AND {a['array']} = %s)))"
    )


# -- the journal (engine.journal) ---------------------------------------------------------------

EVENT_FIELDS = ("run", "seq", "created_at", "kind", "message", "action", "user", "data")


@cache
def next_event_seq() -> str:
    """Number the run's next event (run id); returns the number. RETURNING: SQLite has
    it since 3.35."""
    seq = _col(Run, "event_seq")
    return f"UPDATE {_table(Run)} SET {seq} = {seq} + 1 WHERE {_col(Run, 'id')} = %s RETURNING {seq}"  # nosec B608  # names from _meta


@cache
def number_and_insert_event() -> str:
    """PostgreSQL: number and write an event in one statement, so the run row stays locked
    (which keeps the numbers in commit order) for one round trip and the commit. Parameters:
    run id, then created at, kind, message, action id, user id and data (JSON text).
    Returns the event's id and number."""
    run_id, seq = _col(Run, "id"), _col(Run, "event_seq")
    columns = ", ".join(_col(RunEvent, f) for f in EVENT_FIELDS)
    return (
        f"WITH n AS (UPDATE {_table(Run)} SET {seq} = {seq} + 1 WHERE {run_id} = %s RETURNING {run_id}, {seq})"  # nosec B608  # names from _meta
        f" INSERT INTO {_table(RunEvent)} ({columns})"
        f" SELECT n.{run_id}, n.{seq}, %s, %s, %s, %s, %s, %s::jsonb FROM n"
        f" RETURNING {_col(RunEvent, 'id')}, {_col(RunEvent, 'seq')}"
    )


# -- the board's stream (board.stream) ----------------------------------------------------------


@cache
def events_after() -> str:
    """PostgreSQL: a run's state and counter and its events after a number, from one
    snapshot. Parameters: after, limit, run id. One row per event (or one row of NULL
    event columns when there is none): state, counter, seq, kind, message, created at,
    action id, user name, the data's "step" as JSON text."""
    user = get_user_model()
    e = {
        f: _col(RunEvent, f)
        for f in ("run", "seq", "kind", "message", "created_at", "action", "user", "data")
    }
    return (
        f"SELECT r.{_col(Run, 'state')}, r.{_col(Run, 'event_seq')}, e.{e['seq']}, e.{e['kind']},"  # nosec B608  # names from _meta, values are parameters
        f" e.{e['message']}, e.{e['created_at']}, e.{e['action']}, u.{_q(user.USERNAME_FIELD)},"
        f" (e.{e['data']} -> 'step')::text"
        f" FROM {_table(Run)} r"
        " LEFT JOIN LATERAL ("
        f"  SELECT * FROM {_table(RunEvent)} WHERE {e['run']} = r.{_col(Run, 'id')} AND {e['seq']} > %s"
        f"  ORDER BY {e['seq']} LIMIT %s"
        " ) e ON true"
        f" LEFT JOIN {_table(user)} u ON u.{_q(user._meta.pk.column)} = e.{e['user']}"
        f" WHERE r.{_col(Run, 'id')} = %s ORDER BY e.{e['seq']}"
    )
