"""Rehearse the loss of a site on clones, beside production, then clean up (issue 6)."""

from __future__ import annotations

import json
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from failover.choices import RunStateChoices
from failover.management.cli import add_run_arguments, command_start, command_user, report_plan, wait_for
from failover.models import Run
from failover.runs.drill import HOLD_RULE, DrillScopeError, build_drill_plan, drill_start, hold_minutes_check
from failover.runs.selectors import run_summary
from hosts.drivers.base import DriverError
from hosts.models import Site


class Command(BaseCommand):
    help = (
        "Drill the loss of a site: snapshot its replicas at the surviving site, start the VMs from the "
        "clones on the isolated drill bridge, run their functional checks, then clean everything up."
    )

    def add_arguments(self, parser):
        parser.add_argument("--site", required=True, metavar="CODE", help="the site whose loss is rehearsed")
        parser.add_argument(
            "--shrink", action="store_true", help="shrink production at the surviving site to its DR memory"
        )
        parser.add_argument(
            "--hold",
            type=float,
            default=0,
            metavar="MINUTES",
            help="keep the clones up this long for people to test",
        )
        parser.add_argument(
            "--vms",
            nargs="+",
            metavar="VM",
            help="drill only these VMs (and their DR groups): a partial drill",
        )
        add_run_arguments(parser, wait_help="wait until the drill and its cleanup end")

    def handle(self, *args, **o):
        user = command_user(o["user"])
        if not Site.objects.filter(code=o["site"]).exists():
            raise CommandError(f"--site {o['site']!r}: no such site")
        try:
            hold_minutes_check(o["hold"])
        except DrillScopeError:
            raise CommandError(f"--hold: {HOLD_RULE}") from None
        try:
            plan = build_drill_plan(site=o["site"], shrink=o["shrink"], hold_minutes=o["hold"], vms=o["vms"])
        except (ValueError, DriverError) as exc:
            raise CommandError(f"cannot plan the drill: {exc}") from exc
        out = sys.stderr if o["json"] else self.stdout
        report_plan(
            plan,
            out,
            f"drill plan: {len(plan.starts)} clone(s) to start at {plan.target_site} from {len(plan.groups)} snapshot(s)",
        )
        run = command_start(lambda: drill_start(user=user, plan=plan, override_reason=o["override"]))
        out.write(f"drill run {run.pk} started\n")
        if not o["wait"]:
            if o["json"]:
                self.stdout.write(json.dumps({"drill": run_summary(run_id=run.pk)}, indent=2))
            return
        deadline = time.monotonic() + o["timeout"]
        state = wait_for(run.pk, deadline, out)
        cleanup = None
        while time.monotonic() < deadline and cleanup is None:
            cleanup = Run.objects.filter(parent_id=run.pk, kind="cleanup").first()
            if cleanup is None:
                time.sleep(0.2)
        cleanup_state = wait_for(cleanup.pk, deadline, out) if cleanup else None
        while time.monotonic() < deadline and cleanup_state == RunStateChoices.SUCCEEDED:
            if Run.objects.filter(pk=run.pk).exclude(cleaned_up_at=None).exists():
                break
            time.sleep(0.2)
        drill = Run.objects.get(pk=run.pk)
        result = {
            "drill": run_summary(run_id=run.pk),
            "cleanup": run_summary(run_id=cleanup.pk) if cleanup else None,
            "cleaned_up_at": drill.cleaned_up_at.isoformat() if drill.cleaned_up_at else None,
        }
        if o["json"]:
            self.stdout.write(json.dumps(result, indent=2))
        else:
            self.stdout.write(f"drill run {run.pk}: {state}")
            self.stdout.write(
                f"cleanup run {cleanup.pk}: {cleanup_state}" if cleanup else "cleanup: not started (yet)"
            )
        if state != RunStateChoices.SUCCEEDED or drill.cleaned_up_at is None:
            sys.exit(1)
