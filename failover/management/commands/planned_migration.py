"""Move a site's VMs to the other site while both are up (maintenance), planned."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from failover.choices import RunKindChoices, RunModeChoices
from failover.management.cli import (
    add_run_arguments,
    command_finish,
    command_start,
    command_user,
    report_plan,
)
from failover.runs.failover import build_plan
from failover.runs.migration import migration_start
from hosts.drivers.base import DriverError
from hosts.models import Site


class Command(BaseCommand):
    help = (
        "Planned migration: shut the VMs of a site down, final sync, demote its DR groups, promote them at "
        "the other site and start the VMs there with their disaster memory — stopping on any error."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="site", required=True, metavar="CODE", help="the site to empty")
        add_run_arguments(parser, wait_help="wait until the migration ends")

    def handle(self, *args, **o):
        user = command_user(o["user"])
        if not Site.objects.filter(code=o["site"]).exists():
            raise CommandError(f"--from {o['site']!r}: no such site")
        try:
            plan = build_plan(lost_site=o["site"], mode=RunModeChoices.PLANNED)
        except (ValueError, DriverError) as exc:
            raise CommandError(f"cannot plan the migration: {exc}") from exc
        plan.kind = RunKindChoices.MIGRATION
        out = sys.stderr if o["json"] else self.stdout
        report_plan(
            plan,
            out,
            f"migration plan: {len(plan.starts)} VM(s) and {len(plan.groups)} DR group(s) to {plan.target_site}",
        )
        run = command_start(lambda: migration_start(user=user, plan=plan, override_reason=o["override"]))
        out.write(f"migration run {run.pk} started\n")
        command_finish(self, run, o, out, "migration")
