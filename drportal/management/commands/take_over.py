"""Take over: make this standby portal the primary because the other site is lost
(issue 14; drportal/takeover.py). Exit 0 when it is the primary of a new epoch, 1 with
the reason when refused (nothing changed then)."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from drportal.takeover import TakeOverRefused, take_over

FLAGS = {"confirmation": "--confirm: ", "override_reason": "--override-reason: "}


class Command(BaseCommand):
    help = (
        "Promote this standby portal's PostgreSQL and start a new epoch, because the other site is lost. "
        'Manager on Duty only; --confirm must be exactly "<OTHER SITE> IS LOST".'
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="the Manager on Duty's user name (recorded)")
        parser.add_argument(
            "--confirm", required=True, metavar="TEXT", help='"<OTHER SITE> IS LOST", e.g. "WSL IS LOST"'
        )
        parser.add_argument(
            "--override-reason",
            default="",
            metavar="TEXT",
            help="take over although the other site's database still answers as a primary (recorded)",
        )
        parser.add_argument("--json", action="store_true", help="the result as JSON on stdout")

    def handle(self, *args, **o):
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: o["user"]})
        except User.DoesNotExist:
            raise CommandError(f"--user {o['user']!r}: no such user") from None
        try:
            result = take_over(user, o["confirm"], o["override_reason"])
        except TakeOverRefused as exc:
            where = FLAGS.get(exc.field, "")
            raise CommandError(f"take-over refused: {where}{exc}") from None
        if o["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
            return
        self.stdout.write(
            f"took over: {result.epoch.site}'s portal is the primary of epoch {result.epoch.number} "
            f"({result.seconds:.1f} s); the peer answered: {result.epoch.peer_state}"
        )
        if not result.reaper_sent:
            self.stdout.write(
                f"the reaper's task was not sent ({result.reaper_error}); beat runs it within seconds"
            )
        self.stdout.write("next: declare the disaster of the lost site (/declare/ or manage.py failover)")
