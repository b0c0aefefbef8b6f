"""Starting a run: its plan frozen into the Run, its Steps and Actions in one transaction,
the DR groups it claims, and the engine started after commit. Every kind of run starts
here (``run_create``); ``check_override`` is the rule all of them share: blocking
problems stop a run unless a person overrides them with a typed reason.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from drportal.twosite import current_epoch, site_status
from failover.choices import (
    RunKindChoices,
    steps_for,
)
from failover.choices import RunStateChoices as R
from failover.engine.dispatch import kick_run
from failover.engine.journal import record_event
from failover.models import Action, Disaster, Run, RunGroupClaim, Step
from hosts.models import DRGroup, Site

from .plan import Plan

PERM_DECLARE = "failover.declare_disaster"

_SCALARS = (str, int, bool)


PERM_OPERATE = "failover.operate_run"


# At most one active run of these kinds per site (drills are limited by their own rule).
ONE_ACTIVE_PER_SITE = (RunKindChoices.FAILOVER, RunKindChoices.FAILBACK, RunKindChoices.MIGRATION)


def override_needed(plan: Plan, what: str) -> str:
    return (
        f"{what} has blocking problems: "
        + "; ".join(p.message for p in plan.blocking)
        + ". Fix them, or override with a typed reason."
    )


def check_override(plan: Plan, override_reason: str, what: str) -> None:
    """Blocking problems stop a run unless a person overrides them with a typed reason;
    a hard one stops it whatever the reason."""
    hard = [p for p in plan.blocking if p.hard]
    if hard:
        raise ValidationError(
            {
                "plan": f"{what} cannot start: "
                + "; ".join(f"{p.message} — {p.fix}" if p.fix else p.message for p in hard)
                + ". This cannot be overridden."
            }
        )
    if plan.blocking and not override_reason.strip():
        raise ValidationError({"override_reason": override_needed(plan, what)})


def run_create(
    *,
    plan: Plan,
    disaster: Disaster | None,
    user,
    kind: str,
    override_reason: str,
    groups,
    parent: Run | None = None,
) -> Run:
    site = site_status()
    if not site.may_act:  # a standby, or a portal that is behind: never starts a run
        raise ValidationError(f"No run started: {site.reason}.")
    epoch = site.epoch or current_epoch()
    target = Site.objects.get(code=plan.target_site)
    run = Run.objects.create(
        epoch=epoch,
        disaster=disaster,
        kind=kind,
        mode=plan.mode,
        lost_site=Site.objects.get(code=plan.lost_site),
        target_site=target,
        plan=plan.as_dict(),
        overrides=[
            {"problem": p.message, "code": p.code, "reason": override_reason, "by": user.get_username()}
            for p in plan.blocking
        ],
        created_by=user,
        parent=parent,
    )
    # The claim: the partial unique index makes a concurrent second run fail here.
    RunGroupClaim.objects.bulk_create([RunGroupClaim(run=run, group=g) for g in groups])
    # No group to claim (nothing to fail over): one active failover per lost site.
    others = Run.objects.filter(kind=kind, lost_site=run.lost_site, state__in=R.active()).exclude(pk=run.pk)
    if not groups and kind in ONE_ACTIVE_PER_SITE and others.exists():
        raise IntegrityError("a failover for this site is already active")
    steps = {
        number: Step.objects.create(
            run=run,
            number=number,
            key=key,
            name=str(name),
            planned_minutes=plan.step_minutes.get(number, minutes),
        )
        for number, key, name, minutes in steps_for(kind)
    }
    ids = _insert_actions(run, steps, plan, epoch)
    by_key = {planned.key: pk for planned, pk in zip(plan.actions, ids, strict=True)}
    edges = [(by_key[p.key], by_key[d]) for p in plan.actions for d in p.depends_on if d in by_key]
    through = Action.depends_on.through
    if connection.vendor == "postgresql":
        _copy(through._meta.db_table, ["from_action_id", "to_action_id"], edges)
    else:
        through.objects.bulk_create(
            [through(from_action_id=a, to_action_id=b) for a, b in edges], batch_size=5000
        )
    record_event(
        run_id=run.pk,
        kind="run_started",
        message=(
            f"{run.get_kind_display()} of {plan.lost_site} to {plan.target_site} declared by {user.get_username()}: "
            f"{len(plan.actions)} actions, {len(plan.starts)} VMs to start, predicted {plan.predicted_minutes:.0f} min"
        ),
        user=user,
        data={"overrides": run.overrides},
    )
    for override in run.overrides:
        record_event(
            run_id=run.pk,
            kind="override",
            message=f"Blocking problem overridden by {override['by']}: {override['problem']} — reason: {override['reason']}",
            user=user,
        )
    transaction.on_commit(lambda: kick_run(run.pk))
    return run


def _insert_actions(run: Run, steps: dict[int, Step], plan: Plan, epoch: int) -> list[int]:
    """The plan's actions as rows, in its order; their ids. A run of 5,000 VMs has 20,000:
    on PostgreSQL one COPY (ids drawn from the table's sequence first) of rows made from
    one model's defaults, not 20,000 models built and bound one field at a time."""
    given_fields = ("step_id", "kind", "target", "host", "array", "params", "order", "tier", "optional")

    def values(order: int, planned) -> dict:
        given = (
            steps[planned.step].pk,
            planned.kind,
            planned.target,
            planned.host,
            planned.params.get("array", ""),
            planned.params,
            order,
            planned.params.get("tier", 0),
            planned.optional,
        )
        return dict(zip(given_fields, given, strict=True))

    if connection.vendor != "postgresql":
        actions = [
            Action(run=run, epoch=epoch, **values(order, planned))
            for order, planned in enumerate(plan.actions)
        ]
        return [a.pk for a in Action.objects.bulk_create(actions, batch_size=2000)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [Action._meta.db_table, len(plan.actions)],
        )
        ids = sorted(row[0] for row in cursor.fetchall())
    db = transaction.get_connection()  # the connection itself, not the proxy: asked 190,000 times
    fields = [f for f in Action._meta.concrete_fields if not f.primary_key]
    template = Action(run=run, epoch=epoch)
    defaults = [f.get_db_prep_save(f.pre_save(template, True), db) for f in fields]
    slots = [(i, f) for i, f in enumerate(fields) if f.attname in given_fields]
    # Kinds, hosts, arrays, steps, tiers repeat: a field's scalar value is prepared once.
    prepared: dict[tuple[str, type, object], object] = {}

    def prep(f, value):
        if not isinstance(value, _SCALARS):
            return f.get_db_prep_save(value, db)
        key = (f.attname, type(value), value)
        if key not in prepared:
            prepared[key] = f.get_db_prep_save(value, db)
        return prepared[key]

    def row(pk: int, order: int, planned) -> list:
        given, out = values(order, planned), [pk, *defaults]
        for i, f in slots:
            out[i + 1] = prep(f, given[f.attname])
        return out

    rows = (
        row(pk, order, planned) for pk, (order, planned) in zip(ids, enumerate(plan.actions), strict=True)
    )
    _copy(Action._meta.db_table, [Action._meta.pk.column, *(f.column for f in fields)], rows)
    return ids


def _copy(table: str, columns: list[str], rows) -> None:
    """``COPY table (columns) FROM STDIN`` of ``rows`` (PostgreSQL)."""
    quote = connection.ops.quote_name
    statement = f"COPY {quote(table)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def start_claimed_run(*, plan: Plan, user, kind: str, override_reason: str, parent: Run | None = None) -> Run:
    """Create a run (no disaster) that claims the plan's DR groups. While another run
    holds one of them, the claims' unique constraint refuses it, and the caller gets the
    field and the reason instead of a database error."""
    groups = list(DRGroup.objects.filter(name__in=plan.groups).order_by("pk"))
    try:
        with transaction.atomic():
            return run_create(
                plan=plan,
                disaster=None,
                user=user,
                kind=kind,
                override_reason=override_reason,
                groups=groups,
                parent=parent,
            )
    except IntegrityError:
        raise ValidationError({"lost_site": "a run for these DR groups is already active"}) from None
