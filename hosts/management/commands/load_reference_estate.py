"""Load the thesis' reference estate. Idempotent: a second run changes nothing."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from hosts import reference
from hosts.services import estate_load_reference


class Command(BaseCommand):
    help = "Load the reference estate (two sites, two dom0s, six VMs, DR groups, memory profiles)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--address",
            action="append",
            default=[],
            metavar="NAME=ADDR",
            help="Point a host or array somewhere else than the lab (repeatable), e.g. xenka01=10.96.180.11",
        )
        parser.add_argument(
            "--port", type=int, default=None, help=f"SSH port (default {reference.LAB_PORT}, the lab's)"
        )
        parser.add_argument(
            "--no-lab-keys",
            action="store_true",
            help="Do not pin the lab's host keys nor use the lab's client key.",
        )

    def handle(self, *args, address, port, no_lab_keys, **options):
        known = {h["name"] for h in reference.HOSTS} | {a["name"] for a in reference.ARRAYS}
        addresses = {}
        for item in address:
            name, sep, addr = item.partition("=")
            if not sep or not addr:
                raise CommandError(f"--address {item!r}: expected NAME=ADDRESS")
            if name not in known:
                raise CommandError(
                    f"--address {item!r}: unknown name {name!r}; known: {', '.join(sorted(known))}"
                )
            addresses[name] = addr
        fingerprints: dict[str, str] = {}
        key_path = ""
        if not no_lab_keys:
            from hosts.lab.keys import ensure_keys
            from hosts.lab.keys import fingerprints as lab_fingerprints
            from hosts.lab.vm_services import vm_fingerprints

            lab_dir = settings.DRPORTAL_LAB_DIR
            key_path = str(ensure_keys(lab_dir))
            fingerprints = {name: fp for name, fp in lab_fingerprints(lab_dir).items() if name in known}
            fingerprints |= vm_fingerprints(lab_dir)  # the VMs' own SSH, for functional checks
        report = estate_load_reference(
            addresses=addresses, ssh_port=port, ssh_key_path=key_path, fingerprints=fingerprints
        )
        self.stdout.write(
            f"reference estate: {report.created} created, {report.updated} updated, {report.unchanged} unchanged"
        )
