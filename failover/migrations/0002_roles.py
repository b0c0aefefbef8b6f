"""Create the three roles and give each its permissions (hosts.permissions.role_codenames)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from hosts.permissions import ROLE_DR_ADMIN, ROLE_HELPDESK, ROLE_MOD, sync_roles


def create_roles(apps, schema_editor):
    # Permissions are normally created after migrate; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    sync_roles(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


def drop_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[ROLE_HELPDESK, ROLE_DR_ADMIN, ROLE_MOD]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("failover", "0001_initial"),
        ("hosts", "0003_vm_address_functionalcheck"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, drop_roles)]
