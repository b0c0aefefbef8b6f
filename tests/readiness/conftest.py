"""Readiness against the lab: the reference estate in the database, pointing at a lab
served in this process. No worker: the check is called directly (the task is thin).
Tests that only read or mail verdicts write them by hand (``make_verdict``), no lab."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from failover.readiness.models import ReadinessCheck, ReadinessFinding, SiteVerdict
from failover.readiness.services import readiness_check
from hosts.models import Site
from hosts.permissions import ROLE_DR_ADMIN, ROLE_HELPDESK, ROLE_MOD, sync_roles
from tests.engine.conftest import estate, lab  # noqa: F401 (the lab, and the estate pointing at it)

MOD_MAIL = "mod@bank.example"
DRADMIN_MAIL = "dradmin@bank.example"
HELPDESK_MAIL = "helpdesk@bank.example"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The users' passwords are never checked here; Django's default hasher would spend
    a third of a second on each one."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _add_people(mod, helpdesk) -> None:
    """Mail addresses: the MoD's and a DR admin's (who get readiness mail), the
    helpdesk's (who does not), and a DR admin without one."""
    User = get_user_model()
    mod.email = MOD_MAIL
    mod.save(update_fields=["email"])
    helpdesk.email = HELPDESK_MAIL
    helpdesk.save(update_fields=["email"])
    dradmin = User.objects.create_user("dradmin", email=DRADMIN_MAIL)
    dradmin.groups.set([Group.objects.get(name=ROLE_DR_ADMIN)])
    silent = User.objects.create_user("dradmin2")
    silent.groups.set([Group.objects.get(name=ROLE_DR_ADMIN)])


@pytest.fixture
def ready(estate, settings):  # noqa: F811 (the imported fixture)
    """The reference estate on the lab, with the people who get readiness mail."""
    settings.DRPORTAL_SSH_CONNECT_TIMEOUT = 3
    settings.DRPORTAL_SSH_COMMAND_TIMEOUT = 10
    # The checks here make hosts fail on purpose; trying them again only makes each wait.
    settings.DRPORTAL_SSH_CONNECT_ATTEMPTS = 1
    _add_people(estate["mod"], estate["helpdesk"])
    return estate


@pytest.fixture
def people(db):
    """The role users without the lab (for tests that write verdicts by hand)."""
    sync_roles(Group, Permission)
    User = get_user_model()
    mod = User.objects.create_user("mod")
    mod.groups.set([Group.objects.get(name=ROLE_MOD)])
    helpdesk = User.objects.create_user("helpdesk")
    helpdesk.groups.set([Group.objects.get(name=ROLE_HELPDESK)])
    _add_people(mod, helpdesk)
    return {"mod": mod, "helpdesk": helpdesk, "dradmin": User.objects.get(username="dradmin")}


def make_verdict(
    site: str,
    verdict: str = "ready",
    *,
    findings: tuple[tuple[str, str, str], ...] = (),
    at: dt.datetime | None = None,
    changed: bool = False,
) -> SiteVerdict:
    """A verdict as a pass would write it; ``findings`` are (severity, code, message)."""
    at = at or timezone.now()
    site_row, _ = Site.objects.get_or_create(code=site, defaults={"name": f"Site {site}", "role": "primary"})
    check_row = ReadinessCheck.objects.create(started_at=at, finished_at=at)
    row = SiteVerdict.objects.create(
        readiness_check=check_row, site=site_row, verdict=verdict, checked_at=at, changed=changed
    )
    ReadinessFinding.objects.bulk_create(
        ReadinessFinding(verdict=row, severity=s, code=c, subject=site, message=m, fix=f"fix {c}")
        for s, c, m in findings
    )
    return row


def check():
    return readiness_check()


def latest(site: str) -> SiteVerdict:
    return SiteVerdict.objects.filter(site__code=site).order_by("-checked_at", "-pk").first()


def codes(site: str, severity: str | None = None) -> set[str]:
    findings = latest(site).findings.all()
    return {f.code for f in findings if severity is None or f.severity == severity}


def messages(site: str) -> str:
    return "\n".join(f"{f.severity} {f.code}: {f.message} → {f.fix}" for f in latest(site).findings.all())
