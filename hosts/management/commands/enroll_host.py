"""Enroll a dom0: show its host-key fingerprint, pin it, record RAM and toolstack."""

from __future__ import annotations

import json
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from hosts.discovery import host_enroll
from hosts.drivers.base import DriverError
from hosts.drivers.ssh import fetch_host_key
from hosts.validators import validate_fingerprint, validate_host_name, validate_private_key_path


def parse_address(value: str) -> tuple[str, int | None]:
    """ADDR or ADDR:PORT; [v6]:PORT for IPv6."""
    if value.startswith("["):
        addr, _, rest = value[1:].partition("]")
        return addr, int(rest[1:]) if rest.startswith(":") else None
    if value.count(":") == 1:
        addr, port = value.split(":")
        return addr, int(port)
    return value, None


class Command(BaseCommand):
    help = "Connect to a dom0, pin its host key, and record its RAM, CPUs and toolstack."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--site", required=True, metavar="CODE")
        parser.add_argument("--address", required=True, metavar="ADDR[:PORT]")
        parser.add_argument("--user", default="root")
        parser.add_argument("--key", required=True, metavar="KEYFILE", help="private key on this machine")
        parser.add_argument("--accept-fingerprint", metavar="SHA256:...", help="pin without asking")
        parser.add_argument(
            "--bridge", action="append", dest="bridges", help="a bridge the host offers (repeat)"
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, name, site, address, user, key, accept_fingerprint, bridges, json, **options):
        try:
            validate_host_name(name)
            validate_private_key_path(key)
            if accept_fingerprint:
                validate_fingerprint(accept_fingerprint)
            addr, port = parse_address(address)
        except (ValidationError, ValueError) as exc:
            raise CommandError(f"bad argument: {' '.join(getattr(exc, 'messages', [str(exc)]))}") from exc
        port = port or 22
        try:
            seen = fetch_host_key(addr, port, timeout=10)
        except DriverError as exc:
            raise CommandError(f"cannot read the host key of {name} at {addr}:{port}: {exc}") from exc
        self.stderr.write(f"{name} ({addr}:{port}) presents a {seen.key_type} host key {seen.fingerprint}")
        if accept_fingerprint:
            if accept_fingerprint != seen.fingerprint:
                raise CommandError(
                    f"host key mismatch for {name}: expected {accept_fingerprint}, got {seen.fingerprint}; nothing pinned"
                )
        else:
            if not sys.stdin.isatty():
                raise CommandError(
                    "no terminal to ask on: pass --accept-fingerprint with the fingerprint you checked"
                )
            answer = input("Pin this fingerprint? Compare it with the host's console first. [yes/NO] ")
            if answer.strip().lower() not in {"y", "yes"}:
                raise CommandError("not pinned; nothing saved")
        try:
            result = host_enroll(
                name=name,
                site_code=site,
                address=addr,
                port=port,
                user=user,
                key_path=key,
                fingerprint=seen.fingerprint,
                bridges=bridges,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        except DriverError as exc:
            raise CommandError(f"{name}: {exc}; nothing saved") from exc
        if json:
            self.stdout.write(_dumps(result.__dict__))
        else:
            verb = "enrolled" if result.created else "re-enrolled"
            self.stdout.write(
                f"{verb} {name}: {result.toolstack}, Xen {result.xen_version}, {result.ram_mb} MB RAM "
                f"({result.free_mb} MB free), {result.cpus} CPUs; host key {result.fingerprint} pinned"
            )


def _dumps(data) -> str:
    return json.dumps(data, indent=2)
