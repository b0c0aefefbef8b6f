"""Step 6: the functional checks of a VM (HTTP(S), TCP, command over SSH), asked again while a
VM this run started is still booting."""

from __future__ import annotations

import time

from django.conf import settings
from django.utils import timezone

from hosts.models import FunctionalCheck

from .base import (
    CheckDown,
    Context,
    Handler,
    Outcome,
    lend_back_connection,
)
from .checks import run_check


def check_pauses(poll: float, first: float = 0.25):
    """The pauses between a check's answers: doubling from ``first`` up to ``poll``, so a
    service that opens a moment after its VM started is seen a moment later, while one
    that takes minutes to boot is asked every ``poll`` seconds."""
    pause = min(first, poll)
    while True:
        yield pause
        pause = min(pause * 2, poll)


class FunctionalCheckHandler(Handler):
    """A VM this run started needs time to boot: a "down" answer is asked again until
    DRPORTAL_CHECK_SETTLE_S after its start (at most every DRPORTAL_CHECK_POLL_S, sooner
    at first: see ``check_pauses``); a VM that was running already, and a "note", get one
    answer."""

    def act(self, ctx: Context) -> Outcome:
        check = FunctionalCheck.objects.select_related("vm").get(pk=ctx.params["check_id"])
        started = (
            ctx.action.depends_on.filter(kind__in=("start_vm", "start_drill_vm"))
            .exclude(finished_at=None)
            .values_list("finished_at", flat=True)
            .first()
        )
        settle = float(getattr(settings, "DRPORTAL_CHECK_SETTLE_S", 120))
        until = time.monotonic() + (
            max(0.0, settle - (timezone.now() - started).total_seconds()) if started else 0.0
        )
        lend_back_connection()  # checks wait on the network, and between answers
        tries = 0
        pauses = check_pauses(float(getattr(settings, "DRPORTAL_CHECK_POLL_S", 2)))
        while True:
            tries += 1
            verdict = run_check(check, pool=ctx.pool, drill=bool(ctx.params.get("drill")))
            if verdict.outcome != "down" or time.monotonic() >= until:
                break
            time.sleep(max(0.0, min(next(pauses), until - time.monotonic())))
        ctx.note(
            f"{check.kind} check '{check.name}': {verdict.outcome}: {verdict.detail}"
            + (f" (answer {tries}; the VM was started by this run)" if tries > 1 else "")
        )
        if verdict.outcome != "ok":
            raise CheckDown(verdict.outcome, verdict.detail)
        return Outcome(verdict.detail, {"outcome": verdict.outcome}, outcome=verdict.outcome)
