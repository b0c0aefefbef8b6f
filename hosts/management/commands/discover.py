"""Discover a dom0's domains and bring the inventory up to date (never deletes)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from hosts.discovery import host_discover
from hosts.drivers.base import DriverError
from hosts.models import Host


class Command(BaseCommand):
    help = "List a host's domains over SSH and create or update VMs; --json for machines."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, name, json, **options):
        host = Host.objects.filter(name=name).first()
        if host is None:
            known = ", ".join(Host.objects.values_list("name", flat=True)) or "none enrolled"
            raise CommandError(f"no host {name!r} (known: {known})")
        try:
            report = host_discover(host=host)
        except DriverError as exc:
            raise CommandError(f"{name}: {exc}") from exc
        if json:
            self.stdout.write(_dumps(report.as_dict()))
            return
        self.stdout.write(f"{name}: {len(report.found)} domains found")
        for key in ("created", "updated", "unchanged"):
            if getattr(report, key):
                self.stdout.write(f"  {key}: {', '.join(getattr(report, key))}")
        if report.not_running:
            self.stdout.write(f"  not running any more (kept): {', '.join(report.not_running)}")
        if report.bridges_learned:
            self.stdout.write(f"  bridges learned: {', '.join(report.bridges_learned)}")
        for skip in report.skipped:
            self.stdout.write(f"  skipped {skip['name']}: {skip['reason']}")
        for warning in report.warnings:
            self.stdout.write(f"  warning: {warning}")


def _dumps(data) -> str:
    return json.dumps(data, indent=2)
