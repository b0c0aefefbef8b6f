"""Readiness mail: to the MoD and DR admins with an address, only when a verdict changes."""

from __future__ import annotations

from smtplib import SMTPException

import pytest
from django.core.mail.backends.base import BaseEmailBackend

from failover.readiness.models import SiteVerdict
from failover.readiness.notify import readiness_notify

from .conftest import DRADMIN_MAIL, MOD_MAIL, check, latest, make_verdict


def _break_bridge(lab, present: bool) -> None:
    with lab.store.transaction() as state:
        bridges = state["hosts"]["xenka01"]["bridges"]
        if present:
            bridges.append("xenbr1")
        else:
            bridges.remove("xenbr1")


@pytest.mark.django_db(transaction=True)
def test_it_mails_once_when_a_site_turns_bad_and_once_when_it_recovers(ready, lab, mailoutbox):
    check()
    assert [m.subject for m in mailoutbox if "WSL" in m.subject] == []  # ready from the start: no news

    _break_bridge(lab, present=False)
    check()
    check()  # still bad: no second mail
    wsl = [m for m in mailoutbox if "WSL" in m.subject]
    assert [m.subject for m in wsl] == ["[drportal] WSL NOT READY for failover: 1 critical finding(s)"]
    assert sorted(wsl[0].to) == [DRADMIN_MAIL, MOD_MAIL]  # not the helpdesk, not a user without address
    assert "xenka01 lacks bridge(s) xenbr1" in wsl[0].body
    assert "What to do: Create xenbr1 on xenka01" in wsl[0].body
    assert "/readiness/" in wsl[0].body

    _break_bridge(lab, present=True)
    check()
    check()  # still fine: no second mail
    wsl = [m for m in mailoutbox if "WSL" in m.subject]
    assert [m.subject for m in wsl][1:] == ["[drportal] WSL ready for failover again"]
    assert SiteVerdict.objects.filter(site__code="WSL", changed=True, notified_at__isnull=False).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_site_that_is_not_ready_at_its_first_check_is_mailed_once(ready, mailoutbox):
    check()
    check()
    ka = [m for m in mailoutbox if "KA" in m.subject]
    assert [m.subject for m in ka] == ["[drportal] KA NOT READY for failover: 3 critical finding(s)"]
    assert "lws-xen01 cannot be recovered if KA is lost" in ka[0].body
    assert latest("KA").notified_at is None  # the second pass was no news
    assert SiteVerdict.objects.get(site__code="KA", changed=True).notified_at is not None


class RefusingBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        raise SMTPException("relay access denied")


@pytest.mark.django_db
def test_a_mail_that_cannot_be_sent_is_kept_on_the_verdict(people, settings):
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"
    verdict = make_verdict(
        "WSL", "not-ready", findings=(("critical", "bridge-missing", "no xenbr1"),), changed=True
    )
    readiness_notify(verdict_ids=[verdict.pk])
    verdict.refresh_from_db()
    assert (verdict.notified_at, verdict.notify_error) == (None, "relay access denied")


@pytest.mark.django_db
def test_a_change_nobody_can_be_mailed_about_says_so_on_the_verdict(people, mailoutbox):
    people["mod"].groups.clear()
    people["dradmin"].groups.clear()
    verdict = make_verdict("WSL", "not-ready", changed=True)
    readiness_notify(verdict_ids=[verdict.pk])
    verdict.refresh_from_db()
    assert mailoutbox == []
    assert "no Manager on Duty or DR admin has an e-mail address" in verdict.notify_error
