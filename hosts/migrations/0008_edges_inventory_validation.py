# Inventory validation (issue 17 item 10): reserved VM names, vCPUs >= 1, addresses, SSH users, key directories.

import django.core.validators
from django.db import migrations, models

import hosts.validators


class Migration(migrations.Migration):
    dependencies = [
        ("hosts", "0007_array_sssu_login_file"),
    ]

    operations = [
        migrations.AlterField(
            model_name="host",
            name="address",
            field=models.CharField(
                max_length=255, validators=[hosts.validators.validate_address], verbose_name="address"
            ),
        ),
        migrations.AlterField(
            model_name="host",
            name="ssh_key_path",
            field=models.CharField(
                blank=True,
                help_text="Path of the private key on the workers (never the key itself).",
                max_length=255,
                validators=[
                    hosts.validators.validate_private_key_path,
                    hosts.validators.validate_key_path_in_dir,
                ],
                verbose_name="private key",
            ),
        ),
        migrations.AlterField(
            model_name="host",
            name="ssh_user",
            field=models.CharField(
                default="root",
                max_length=32,
                validators=[hosts.validators.validate_ssh_user],
                verbose_name="SSH user",
            ),
        ),
        migrations.AlterField(
            model_name="storagearray",
            name="management_address",
            field=models.CharField(
                blank=True,
                max_length=255,
                validators=[hosts.validators.validate_address],
                verbose_name="management address",
            ),
        ),
        migrations.AlterField(
            model_name="vm",
            name="address",
            field=models.CharField(
                blank=True,
                help_text="Where its functional checks reach it (IP or DNS name).",
                max_length=255,
                validators=[hosts.validators.validate_address],
                verbose_name="service address",
            ),
        ),
        migrations.AlterField(
            model_name="vm",
            name="drill_address",
            field=models.CharField(
                blank=True,
                help_text="Where its drill clone answers on the isolated drill network (IP or DNS name); without one, a drill records its checks as 'note'.",
                max_length=255,
                validators=[hosts.validators.validate_address],
                verbose_name="drill address",
            ),
        ),
        migrations.AlterField(
            model_name="vm",
            name="name",
            field=models.CharField(
                max_length=64,
                unique=True,
                validators=[
                    hosts.validators.validate_domain_name,
                    hosts.validators.validate_vm_name_not_reserved,
                ],
                verbose_name="domain name",
            ),
        ),
        migrations.AlterField(
            model_name="vm",
            name="ssh_user",
            field=models.CharField(
                default="root",
                max_length=32,
                validators=[hosts.validators.validate_ssh_user],
                verbose_name="SSH user",
            ),
        ),
        migrations.AlterField(
            model_name="vm",
            name="vcpus",
            field=models.PositiveSmallIntegerField(
                default=1, validators=[django.core.validators.MinValueValidator(1)], verbose_name="vCPUs"
            ),
        ),
    ]
