"""Move the estate home after a disaster, planned, from the failover's undo ledger."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from failover.management.cli import (
    add_run_arguments,
    command_finish,
    command_start,
    command_user,
    report_plan,
)
from failover.models import Run
from failover.runs.failback import build_failback_plan, failback_start
from hosts.drivers.base import DriverError


class Command(BaseCommand):
    help = (
        "Fail a finished failover back: reverse replication, shut the VMs down at the surviving site, "
        "fail the DR groups back, start the VMs at home, restore the normal memory profile."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--run", required=True, type=int, metavar="ID", help="the failover run to fail back"
        )
        add_run_arguments(parser, wait_help="wait until the failback ends")

    def handle(self, *args, **o):
        user = command_user(o["user"])
        failover = Run.objects.filter(pk=o["run"]).first()
        if failover is None:
            raise CommandError(f"--run {o['run']}: no such run")
        try:
            plan = build_failback_plan(failover=failover)
        except DriverError as exc:
            raise CommandError(f"cannot plan the failback: {exc}") from exc
        out = sys.stderr if o["json"] else self.stdout
        report_plan(
            plan,
            out,
            f"failback plan: {len(plan.groups)} DR group(s) and {len(plan.starts)} VM(s) back from "
            f"{plan.lost_site} to {plan.target_site}",
        )
        run = command_start(
            lambda: failback_start(
                user=user, failover_id=failover.pk, plan=plan, override_reason=o["override"]
            )
        )
        out.write(f"failback run {run.pk} started\n")
        command_finish(self, run, o, out, "failback")
