"""``manage.py lab up|status|reset|fault|latency|journal|fingerprints|synthetic`` (see hosts/lab/cli.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from hosts.lab import cli


class Command(BaseCommand):
    help = "The lab: a simulated estate (dom0s, arrays) served over SSH on loopback addresses."
    # The lab is a separate world: it needs neither the database nor the system checks.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        cli.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        if not options.get("lab_dir"):
            options["lab_dir"] = getattr(settings, "DRPORTAL_LAB_DIR", None)
        code, text = cli.dispatch(options, out=self._announce)
        if code != 0:
            raise CommandError(text.rstrip("\n"), returncode=code)
        self.stdout.write(text, ending="")

    def _announce(self, line: str) -> None:
        # `lab up` prints "lab ready ..." while it serves; scripts wait for that line.
        self.stdout.write(line)
        self.stdout.flush()
