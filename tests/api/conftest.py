"""Fixtures of the API tests: a token client per role, and the lab and the estate on it
(from the engine tests) for declaring."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from failover.readiness.models import ReadinessCheck, ReadinessFinding, SiteVerdict
from hosts.models import Site
from tests.engine.conftest import estate, flush_redis, lab  # noqa: F401 (fixtures)


def token_client(user) -> Client:
    token, _ = Token.objects.get_or_create(user=user)
    return Client(headers={"Authorization": f"Token {token.key}"})


@pytest.fixture
def api_as(users):
    """A client that sends the role's token (None: no credentials at all)."""

    def client(role: str | None) -> Client:
        return Client() if role is None else token_client(users[role])

    return client


@pytest.fixture
def clean_redis():
    """Declaring enqueues the engine; no worker takes it here, so nothing may be left for a
    later test's worker on the same Redis database."""
    flush_redis(settings.REDIS_URL)
    yield
    flush_redis(settings.REDIS_URL)


def record_readiness(verdicts: dict[str, list[tuple[str, str, str]]]) -> None:
    """One readiness pass written directly: per site code, its findings as (severity, code,
    message); a critical finding makes the site not ready, as the check judges."""
    now = timezone.now()
    check = ReadinessCheck.objects.create(started_at=now, finished_at=now)
    for code, findings in verdicts.items():
        verdict = SiteVerdict.objects.create(
            readiness_check=check,
            site=Site.objects.get(code=code),
            verdict="not-ready" if any(f[0] == "critical" for f in findings) else "ready",
            checked_at=now,
            changed=True,
        )
        ReadinessFinding.objects.bulk_create(
            ReadinessFinding(verdict=verdict, severity=severity, code=kind, subject="", message=message)
            for severity, kind, message in findings
        )
