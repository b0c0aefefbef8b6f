"""The take-over (issue 14): the Manager on Duty makes this standby portal the primary
because the other site is lost. One service for both ways in, ``manage.py take_over`` and
the page /site/take-over/.

Never automatic: with two sites and no witness a portal cannot tell a lost peer from a
cut link, so a person who knows types "<PEER> IS LOST". If the peer's PostgreSQL still
answers as a primary the take-over is refused (that is a split brain in the making),
unless the Manager on Duty types why it must happen anyway; the reason is recorded in the
new epoch's row with what the peer answered.

Then: ``pg_promote()`` of the local PostgreSQL (waiting until it left recovery), a new
``Epoch`` row (every run and action from here on carries it; the lost portal, should it
come back, sees a newer epoch and fences itself), and one pass of the reaper sent to
this site's workers, which adopts at once what the lost portal's workers had claimed and
reconciles it from the estate (failover/engine/reaper.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from hosts.permissions import PERM_DECLARE

from . import twosite
from .models import Epoch

log = logging.getLogger(__name__)

PROMOTE_WAIT_S = 60


class TakeOverRefused(Exception):
    """Nothing was changed; ``str()`` says why and what to do. ``field`` names the input
    at fault ("" when none is)."""

    field = ""


class NotManagerOnDuty(TakeOverRefused):
    pass


class NotAStandby(TakeOverRefused):
    pass


class WrongConfirmation(TakeOverRefused):
    field = "confirmation"


class PeerIsPrimary(TakeOverRefused):
    field = "override_reason"


class PromoteFailed(TakeOverRefused):
    pass


@dataclass(frozen=True)
class TakeOver:
    epoch: Epoch
    peer: twosite.Peer
    seconds: float  # from the call to the new epoch written
    reaper_sent: bool
    reaper_error: str = ""

    def as_dict(self) -> dict:
        return {
            "epoch": self.epoch.number,
            "site": self.epoch.site,
            "started_by": self.epoch.started_by.get_username() if self.epoch.started_by else "",
            "peer_state": self.epoch.peer_state,
            "override_reason": self.epoch.override_reason,
            "seconds": round(self.seconds, 3),
            "reaper_sent": self.reaper_sent,
            "reaper_error": self.reaper_error,
        }


def expected_confirmation(peer_site: str) -> str:
    return f"{peer_site} IS LOST"


def take_over(user, confirmation: str, override_reason: str = "") -> TakeOver:
    """Promote this standby portal; see the module docstring. Raises a TakeOverRefused
    (one subclass per reason) before anything was changed."""
    started = time.monotonic()
    twosite.clear_cache()
    status = twosite.site_status()
    if user is None or not user.is_active or not user.has_perm(PERM_DECLARE):
        raise NotManagerOnDuty(_("Only the Manager on Duty may take over: nothing was changed."))
    if status.mode == twosite.STANDALONE:
        raise NotAStandby(_("This portal is standalone (DRPORTAL_SITE is not set): there is no other site."))
    if status.mode == twosite.PRIMARY:
        raise NotAStandby(
            _("This portal is already primary since epoch %(epoch)s: nothing to take over.")
            % {"epoch": status.epoch}
        )
    if status.mode == twosite.BEHIND:
        raise NotAStandby(
            _("This portal is behind (%(reason)s); rejoin it as the standby first: %(command)s")
            % {"reason": status.reason, "command": status.rejoin_command}
        )
    peer_site = status.peer_site or "PEER"
    expected = expected_confirmation(peer_site)
    typed = (confirmation or "").strip()
    if typed != expected:
        raise WrongConfirmation(
            _(
                'Confirmation: type exactly "%(expected)s" (capitals) to say that %(peer)s is lost; you typed "%(typed)s".'
            )
            % {"expected": expected, "peer": peer_site, "typed": typed}
        )
    override = (override_reason or "").strip()
    peer = twosite.peer_probe()
    if peer.is_primary and not override:
        raise PeerIsPrimary(
            _(
                "Refused: %(peer)s's database still answers as a primary (%(state)s). Two primaries "
                "would drive one estate. Make sure %(peer)s's portal is stopped, or type the override "
                "reason if you know it cannot act (it is recorded)."
            )
            % {"peer": peer_site, "state": peer.describe()}
        )
    _promote()
    with transaction.atomic():
        number = (
            Epoch.objects.select_for_update().order_by("-number").values_list("number", flat=True).first()
            or 1
        ) + 1
        epoch = Epoch.objects.create(
            number=number,
            site=status.site,
            started_at=timezone.now(),
            started_by=user,
            confirmation=typed,
            override_reason=override,
            peer_state=peer.describe(),
        )
    seconds = time.monotonic() - started
    twosite.clear_cache()
    sent, error = _kick_reaper()
    log.warning(
        "take-over: %s's portal is the primary now, epoch %s, by %s (peer: %s%s) in %.1f s",
        status.site,
        number,
        user.get_username(),
        epoch.peer_state,
        f"; override: {override}" if override else "",
        seconds,
    )
    return TakeOver(epoch=epoch, peer=peer, seconds=seconds, reaper_sent=sent, reaper_error=error)


def _promote() -> None:
    """pg_promote() of this portal's PostgreSQL, then wait until it left recovery and
    CHECKPOINT (the new timeline in the control file: the status page and pg_rewind of the
    old primary read it there)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_promote(wait => true, wait_seconds => %s)", [PROMOTE_WAIT_S])
            promoted = cursor.fetchone()[0]
            deadline = time.monotonic() + PROMOTE_WAIT_S
            while True:
                cursor.execute("SELECT pg_is_in_recovery()")
                if not cursor.fetchone()[0]:
                    break
                if time.monotonic() > deadline:
                    promoted = False
                    break
                time.sleep(0.1)
            if not promoted:
                raise PromoteFailed(
                    _(
                        "PostgreSQL did not finish its promotion within %(s)s s: nothing was recorded. "
                        "Look at its log, then try again."
                    )
                    % {"s": PROMOTE_WAIT_S}
                )
            cursor.execute("CHECKPOINT")
    except DatabaseError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "recovery is not in progress" in first:
            twosite.clear_cache()
            raise NotAStandby(
                _("This portal is already primary since epoch %(epoch)s: nothing to take over.")
                % {"epoch": twosite.current_epoch()}
            ) from exc
        raise PromoteFailed(
            _("PostgreSQL refused the promotion: %(error)s. Nothing was recorded.") % {"error": first}
        ) from exc


def _kick_reaper() -> tuple[bool, str]:
    """One pass of the reaper now, on this site's workers (beat would run it within
    DRPORTAL_REAPER_INTERVAL_S anyway: a Redis that does not answer is said, not fatal)."""
    from .celery import app

    try:
        app.send_task("failover.tasks.reap", retry=False)
    except Exception as exc:  # any broker error: the take-over itself is done
        log.warning("take-over: could not send the reaper its task: %s", exc)
        return False, str(exc)
    return True, ""
