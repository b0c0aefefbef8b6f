"""System checks of the inventory already in the database (issue 17 item 10): rows written
before the validators existed, or past them (a bulk load, SQL), are named with the field
and the reason (hosts.W010), so a DR admin can fix them in the admin.

A database check (Tags.database): `manage.py check --database default` and `migrate` run
it; a database without the tables yet has nothing to check.
"""

from __future__ import annotations

from django.core import checks
from django.core.exceptions import ValidationError
from django.db import DatabaseError

# The fields whose validators came with item 10, per model.
FIELDS = {
    "Host": ("address", "ssh_user", "ssh_key_path"),
    "VM": ("name", "vcpus", "address", "drill_address", "ssh_user"),
    "StorageArray": ("management_address",),
}


@checks.register(checks.Tags.database)
def check_inventory_rows(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    if not databases:
        return []
    from django.apps import apps

    found: list[checks.CheckMessage] = []
    for model_name, fields in FIELDS.items():
        model = apps.get_model("hosts", model_name)
        try:
            rows = list(model.objects.only("pk", *[f for f in fields if f != "name"], "name"))
        except DatabaseError:  # not migrated yet
            return found
        for row in rows:
            for name in fields:
                field = model._meta.get_field(name)
                value = getattr(row, name)
                if value in field.empty_values:
                    continue
                try:
                    field.run_validators(value)
                except ValidationError as exc:
                    found.append(
                        checks.Warning(
                            f"{model._meta.verbose_name} {row.name!r}: {field.verbose_name}: {' '.join(exc.messages)}",
                            hint="Correct it in the admin (Inventory) before the next failover.",
                            obj=row,
                            id="hosts.W010",
                        )
                    )
    return found
