"""Model rows for the engine's hot path, without the ORM's query compiler.

Every action claims, loads and records itself: thousands of statements per run. The
ORM took longer to build those statements (select_related, a filter across a join) than
PostgreSQL took to run them, on the same two cores the workers need. So the hot path
writes its SQL once and turns the rows it gets back into model instances here, with the
same converters the ORM applies (JSON, and SQLite's dates)."""

from __future__ import annotations

from functools import cache

from django.db import models


@cache
def column_list(model: type[models.Model]) -> str:
    """The quoted columns of every concrete field, in the order ``from_row`` expects."""
    from django.db import connection

    quote = connection.ops.quote_name
    return ", ".join(f"{quote(model._meta.db_table)}.{quote(f.column)}" for f in model._meta.concrete_fields)


def from_row(model: type[models.Model], values, connection):
    """A model instance from the values of ``column_list(model)``, converted as the ORM
    converts them (so a JSONField holds its dict, not the text the driver returned)."""
    converted = []
    for value, (expression, converters) in zip(values, _converters(model, connection.vendor), strict=True):
        for convert in converters:
            value = convert(value, expression, connection)
        converted.append(value)
    return model.from_db(connection.alias, _attnames(model), converted)


@cache
def _attnames(model: type[models.Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields]


@cache
def _converters(model: type[models.Model], vendor: str) -> list[tuple]:
    """Per concrete field: its column expression and the converters the ORM would apply
    (the backend's, then the field's), found once per model and database backend
    (``vendor`` keys the cache; the engine uses the default database only)."""
    from django.db import connection

    assert connection.vendor == vendor
    table = model._meta.db_table
    found = []
    for field in model._meta.concrete_fields:
        expression = field.get_col(table)
        found.append(
            (
                expression,
                (*connection.ops.get_db_converters(expression), *expression.get_db_converters(connection)),
            )
        )
    return found


def get(model: type[models.Model], field: str, value):
    """``model.objects.get(<field>=value)`` for a unique ``field``, as one plain SELECT;
    raises the model's DoesNotExist like the ORM does."""
    from django.db import connection

    column = connection.ops.quote_name(model._meta.get_field(field).column)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column_list(model)} FROM {table} WHERE {column} = %s", [value])  # nosec B608
        row = cursor.fetchone()
    if row is None:
        raise model.DoesNotExist(f"{model._meta.object_name} matching {field}={value!r} does not exist")
    return from_row(model, row, connection)
