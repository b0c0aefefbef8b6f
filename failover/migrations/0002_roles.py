"""Create the three roles and give each its permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

HOSTS_MODELS = (
    "site",
    "storagearray",
    "host",
    "vm",
    "vminterface",
    "vmdisk",
    "drgroup",
    "memoryprofile",
    "vmallocation",
    "hostallocation",
    "functionalcheck",
)
FAILOVER_MODELS = ("disaster", "run", "step", "action", "runevent")


def create_roles(apps, schema_editor):
    # Permissions are normally created after migrate; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def perms(app_label, codenames):
        found = list(Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames))
        missing = set(codenames) - {p.codename for p in found}
        if missing:
            raise RuntimeError(f"permissions missing: {sorted(missing)}")
        return found

    view_all = perms("hosts", [f"view_{m}" for m in HOSTS_MODELS]) + perms(
        "failover", [f"view_{m}" for m in FAILOVER_MODELS]
    )
    edit_inventory = perms(
        "hosts", [f"{verb}_{m}" for m in HOSTS_MODELS for verb in ("add", "change", "delete")]
    )
    declare = perms("failover", ["declare_disaster", "operate_run", "add_disaster"])

    roles = {
        "Helpdesk": view_all,
        "DR admin": view_all + edit_inventory,
        "Manager on Duty": view_all + declare,
    }
    for name, permissions in roles.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(permissions)


def drop_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=["Helpdesk", "DR admin", "Manager on Duty"]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("failover", "0001_initial"),
        ("hosts", "0003_vm_address_functionalcheck"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, drop_roles)]
