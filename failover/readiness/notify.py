"""E-mail to the Manager on Duty and the DR admins when a site's readiness verdict changes.

Called after the verdicts are committed. A mail that cannot be sent is logged and kept
on its verdict (``notify_error``, shown on the readiness page); it is not retried, since
the next change sends a new one and the page always shows the current verdict.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.urls import reverse
from django.utils import timezone

from hosts.permissions import ROLE_DR_ADMIN, ROLE_MOD

from .choices import SeverityChoices, VerdictChoices
from .models import SiteVerdict

log = logging.getLogger(__name__)


def readiness_recipients() -> list[str]:
    """The addresses of active MoD and DR admin users (sorted, each once)."""
    return sorted(
        set(
            get_user_model()
            .objects.filter(is_active=True, groups__name__in=(ROLE_MOD, ROLE_DR_ADMIN))
            .exclude(email="")
            .values_list("email", flat=True)
        )
    )


def readiness_message(verdict: SiteVerdict, *, to: list[str]) -> EmailMessage:
    site = verdict.site
    when = timezone.localtime(verdict.checked_at)
    findings = list(verdict.findings.all())
    critical = [f for f in findings if f.severity == SeverityChoices.CRITICAL]
    warnings = [f for f in findings if f.severity == SeverityChoices.WARNING]
    if verdict.verdict == VerdictChoices.NOT_READY:
        subject = f"[drportal] {site.code} NOT READY for failover: {len(critical)} critical finding(s)"
        lead = (
            f"The readiness check of {when:%Y-%m-%d %H:%M %Z} found that losing "
            f"{site.code} ({site.name}) could not be recovered as planned today."
        )
    else:
        subject = f"[drportal] {site.code} ready for failover again"
        lead = (
            f"The readiness check of {when:%Y-%m-%d %H:%M %Z} found no critical problem "
            f"for losing {site.code} ({site.name}) any more."
        )
    lines = [lead, ""]
    for title, items in (("Critical (must be fixed)", critical), ("Warnings", warnings)):
        if items:
            lines.append(f"{title}:")
            for f in items:
                lines.append(f"- [{f.code}] {f.message}")
                if f.fix:
                    lines.append(f"  What to do: {f.fix}")
            lines.append("")
    lines += [
        f"Details: {settings.DRPORTAL_BASE_URL}{reverse('reports:readiness')}",
        "",
        "You receive this as Manager on Duty or DR admin. drportal mails when a site's verdict "
        "changes (turns bad or recovers), not on every check.",
    ]
    return EmailMessage(subject=subject, body="\n".join(lines), to=to)


def readiness_notify(*, verdict_ids: list[int]) -> None:
    verdicts = list(
        SiteVerdict.objects.filter(pk__in=verdict_ids).select_related("site").prefetch_related("findings")
    )
    recipients = readiness_recipients()
    if not recipients:
        log.warning(
            "readiness changed for %s but no MoD or DR admin has an e-mail address",
            [v.site.code for v in verdicts],
        )
        SiteVerdict.objects.filter(pk__in=verdict_ids).update(
            notify_error="no Manager on Duty or DR admin has an e-mail address"
        )
        return
    # An SMTP server has many ways to fail; none of them may fail the check that found the news.
    connection = get_connection()
    try:
        connection.open()
    except Exception as exc:
        log.warning("readiness mail not sent, no connection: %s", exc)
        SiteVerdict.objects.filter(pk__in=verdict_ids).update(notify_error=str(exc)[:2000])
        return
    try:
        for verdict in verdicts:
            message = readiness_message(verdict, to=recipients)
            message.connection = connection
            try:
                message.send()
            except Exception as exc:
                log.warning("readiness mail for %s not sent: %s", verdict.site.code, exc)
                SiteVerdict.objects.filter(pk=verdict.pk).update(notify_error=str(exc)[:2000])
            else:
                SiteVerdict.objects.filter(pk=verdict.pk).update(notified_at=timezone.now())
    finally:
        connection.close()
