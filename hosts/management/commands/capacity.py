"""Print the no-swap capacity proof for every memory profile and site-loss what-if."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from hosts.capacity import CapacityResult
from hosts.models import Site
from hosts.selectors import capacity_report


class Command(BaseCommand):
    help = "Check that every scenario fits in RAM without swapping; --json for machines."

    def add_arguments(self, parser):
        parser.add_argument("--lost-site", metavar="CODE", help="Only the scenarios that lose this site.")
        parser.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args, lost_site, json: bool, **options):
        if lost_site and not Site.objects.filter(code=lost_site).exists():
            codes = ", ".join(Site.objects.values_list("code", flat=True)) or "none loaded"
            raise CommandError(f"--lost-site {lost_site!r}: no such site (known: {codes})")
        results = capacity_report(lost_site=lost_site)
        if json:
            self.stdout.write(_dumps([r.as_dict() for r in results]))
            return
        for r in results:
            self.stdout.write(f"{r.scenario}: {verdict(r)}")
            for h in r.hosts:
                vms = ", ".join(f"{vm} {mb}" for vm, mb in h.placed)
                self.stdout.write(f"  {h.host}: {h.used_mb} of {h.ram_mb} MB (dom0 {h.dom0_mb}; {vms})")
            for u in r.unrecoverable:
                self.stdout.write(f"  unrecoverable: {u.vm}: {u.reason}")
            if r.shed:
                self.stdout.write(f"  shed to fit: {', '.join(r.shed)}")


def verdict(r: CapacityResult) -> str:
    """Whether the scenario fits, and for which VMs: a scenario whose lost VMs cannot all
    be recovered fits only for the others, and says which ones it cannot bring back."""
    said = "fits" if r.fits else f"DOES NOT FIT ({r.shortfall_mb} MB short)"
    if not r.unrecoverable:
        return said
    placed = sum(len(h.placed) for h in r.hosts)
    lost = ", ".join(u.vm for u in r.unrecoverable)
    return f"{said} for the {placed} VMs that can be recovered; {len(r.unrecoverable)} cannot: {lost}"


def _dumps(data) -> str:
    return json.dumps(data, indent=2)
