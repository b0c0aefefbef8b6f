"""Declare a disaster and recover from the command line (automation, tests, the bench)."""

from __future__ import annotations

import json
import sys
import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from failover.choices import EventCategoryChoices, RunStateChoices
from failover.management.cli import command_user, duration_text
from failover.models import Run
from failover.runs.failover import build_plan, disaster_declare
from failover.runs.selectors import run_summary
from hosts.drivers.base import DriverError

FINAL = (RunStateChoices.SUCCEEDED, RunStateChoices.FAILED, RunStateChoices.ABORTED)


class Command(BaseCommand):
    help = "Declare the loss of a site and fail its DR groups and VMs over to the surviving site."

    def add_arguments(self, parser):
        parser.add_argument("--lost-site", required=True, metavar="CODE")
        parser.add_argument("--disaster-class", required=True, type=int, choices=(1, 2, 3))
        parser.add_argument("--category", required=True, choices=EventCategoryChoices.values)
        parser.add_argument("--detected-at", help="ISO time the event was noticed (default: now)")
        parser.add_argument("--confirm-isolated", action="store_true", help="the lost site is fenced")
        parser.add_argument(
            "--confirm-detected-at",
            action="store_true",
            help="--detected-at is right though more than DRPORTAL_DETECTED_MAX_AGE_H hours ago",
        )
        parser.add_argument(
            "--override", default="", metavar="REASON", help="start despite blocking problems"
        )
        parser.add_argument("--user", default="mod", help="the Manager on Duty declaring (default: mod)")
        parser.add_argument("--notes", default="")
        parser.add_argument("--yes", action="store_true", help="do not ask before starting")
        parser.add_argument("--wait", action="store_true", help="wait until the run ends")
        parser.add_argument(
            "--timeout", type=float, default=900, help="--wait gives up after this many seconds"
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **o):
        user = command_user(o["user"])
        detected = timezone.now()
        if o["detected_at"]:
            detected = parse_datetime(o["detected_at"])
            if detected is None:
                raise CommandError(f"--detected-at {o['detected_at']!r}: not an ISO date and time")
            if timezone.is_naive(detected):
                detected = timezone.make_aware(detected)
        try:
            plan = build_plan(lost_site=o["lost_site"])
        except (ValueError, DriverError) as exc:
            raise CommandError(f"cannot plan: {exc}") from exc
        except Exception as exc:
            if type(exc).__name__ == "DoesNotExist":
                raise CommandError(f"--lost-site {o['lost_site']!r}: no such site") from exc
            raise
        out = sys.stderr if o["json"] else self.stdout
        out.write(
            f"plan: {len(plan.starts)} VM(s) to start, {len(plan.already_running)} already running at "
            f"{plan.target_site}, {len(plan.groups)} DR group(s) to fail over, predicted {duration_text(plan.predicted_minutes)} ({plan.forecast.get('detail', '')})\n"
        )
        for w in plan.warnings:
            out.write(f"warning: {w}\n")
        for p in plan.blocking:
            out.write(f"BLOCKING: {p.message}" + (f" (fix: {p.fix})" if p.fix else "") + "\n")
        if not o["yes"]:
            if not sys.stdin.isatty():
                raise CommandError("not starting without --yes (no terminal to ask on)")
            if input("Start the failover? [yes/NO] ").strip().lower() not in {"y", "yes"}:
                raise CommandError("not started")
        try:
            declaration = disaster_declare(
                user=user,
                lost_site=o["lost_site"],
                disaster_class=o["disaster_class"],
                category=o["category"],
                detected_at=detected,
                plan=plan,
                override_reason=o["override"],
                confirm_isolated=o["confirm_isolated"],
                confirm_detected_at=o["confirm_detected_at"],
                notes=o["notes"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        run = declaration.run
        if not declaration.created:
            out.write(f"a failover is already running for these DR groups: run {run.pk}\n")
        else:
            out.write(f"run {run.pk} started\n")
        if not o["wait"]:
            if o["json"]:
                self.stdout.write(json.dumps(run_summary(run_id=run.pk), indent=2))
            return
        deadline = time.monotonic() + o["timeout"]
        told_waiting = False
        while time.monotonic() < deadline:
            state = Run.objects.values_list("state", flat=True).get(pk=run.pk)
            if state in FINAL:
                break
            if state == RunStateChoices.WAITING and not told_waiting:
                out.write(f"run {run.pk} waits for a person (see the board); still waiting\n")
                told_waiting = True
            time.sleep(0.2)
        summary = run_summary(run_id=run.pk)
        if o["json"]:
            self.stdout.write(json.dumps(summary, indent=2))
        else:
            self.stdout.write(f"run {run.pk}: {summary['state']}")
            for step in summary["steps"]:
                self.stdout.write(
                    f"  {step['number']} {step['key']:<10} {step['state']:<8} "
                    f"planned {step['planned_minutes']:.0f} min, actual {step['actual_minutes'] or 0:.2f} min"
                )
        if summary["state"] != RunStateChoices.SUCCEEDED:
            sys.exit(1)
