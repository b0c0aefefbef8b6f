"""Demo users, one per role, so the demo can be tried at once. Never for production."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from hosts.permissions import ROLE_DR_ADMIN, ROLE_HELPDESK, ROLE_MOD

DEMO_USERS = {"mod": ROLE_MOD, "helpdesk": ROLE_HELPDESK, "dradmin": ROLE_DR_ADMIN}


class Command(BaseCommand):
    help = "Create the demo users mod, helpdesk, dradmin and admin (password from --password)."

    def add_arguments(self, parser):
        parser.add_argument("--password", default="drportal-demo")

    def handle(self, *args, password: str, **options):
        if not settings.DEBUG:
            raise CommandError("refusing to create demo users with DEBUG off")
        User = get_user_model()
        for username, role in DEMO_USERS.items():
            user, _ = User.objects.get_or_create(username=username)
            user.set_password(password)
            user.save()
            user.groups.set([Group.objects.get(name=role)])
        admin, _ = User.objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True}
        )
        admin.is_staff = admin.is_superuser = True
        admin.set_password(password)
        admin.save()
        self.stdout.write(
            f"demo users: {', '.join(DEMO_USERS)} and admin, password {password!r} "
            f"({', '.join(f'{u}={r}' for u, r in DEMO_USERS.items())})"
        )
