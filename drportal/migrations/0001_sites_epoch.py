from django.conf import settings
from django.db import migrations, models
from django.db.models import deletion
from django.utils import timezone


def first_epoch(apps, schema_editor):
    apps.get_model("drportal", "Epoch").objects.get_or_create(
        number=1, defaults={"started_at": timezone.now()}
    )


class Migration(migrations.Migration):
    initial = True

    dependencies = [migrations.swappable_dependency(settings.AUTH_USER_MODEL)]

    operations = [
        migrations.CreateModel(
            name="Epoch",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("number", models.PositiveIntegerField(unique=True, verbose_name="epoch")),
                (
                    "site",
                    models.CharField(
                        blank=True,
                        help_text="the site whose portal started it",
                        max_length=16,
                        verbose_name="site",
                    ),
                ),
                ("started_at", models.DateTimeField(verbose_name="started at")),
                (
                    "confirmation",
                    models.CharField(blank=True, max_length=200, verbose_name="typed confirmation"),
                ),
                (
                    "override_reason",
                    models.TextField(
                        blank=True,
                        help_text="typed by the Manager on Duty when the peer still answered as primary",
                        verbose_name="override reason",
                    ),
                ),
                ("peer_state", models.TextField(blank=True, verbose_name="what the peer answered")),
                (
                    "started_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="started by",
                    ),
                ),
            ],
            options={"verbose_name": "epoch", "verbose_name_plural": "epochs", "ordering": ("-number",)},
        ),
        migrations.RunPython(first_epoch, migrations.RunPython.noop),
    ]
