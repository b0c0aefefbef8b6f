# The runs' mark for the reports (issue 17 item 6): counted, an exercise, bad data.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("failover", "0007_merge_wave2"),
    ]

    operations = [
        migrations.CreateModel(
            name="RunReportMark",
            fields=[],
            options={
                "verbose_name": "run's mark for the reports",
                "verbose_name_plural": "runs' marks for the reports",
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("failover.run",),
        ),
        migrations.AddField(
            model_name="run",
            name="report_exclusion",
            field=models.CharField(
                blank=True,
                choices=[("", "counted"), ("exercise", "an exercise"), ("bad-data", "bad data")],
                default="",
                help_text="an exercise or bad data (an implausible time): listed, but not counted in the recovery times and test figures",
                max_length=16,
                verbose_name="left out of the reports",
            ),
        ),
    ]
