"""Run the readiness check once, now (beat runs it every DRPORTAL_READINESS_INTERVAL_S)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from failover.readiness.selectors import readiness_latest
from failover.readiness.services import readiness_check


class Command(BaseCommand):
    help = "Check now whether each site could be lost (and mail the MoD and DR admins if a verdict changed)."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the verdicts and findings as JSON")

    def handle(self, *args, **options):
        result = readiness_check()
        sites = readiness_latest()
        if options["json"]:
            self.stdout.write(
                json.dumps({**result.as_dict(), "sites": [s.as_dict() for s in sites]}, indent=2)
            )
            return
        for s in sites:
            self.stdout.write(f"{s.site.code}: {s.label}")
            for f in s.findings:
                self.stdout.write(f"  {f.severity}: {f.message}")
                if f.fix:
                    self.stdout.write(f"    → {f.fix}")
