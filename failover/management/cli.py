"""Shared by the management commands that start runs: print a plan, wait for a run."""

from __future__ import annotations

import json
import sys
import time

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import CommandError

from failover.choices import RunStateChoices
from failover.models import Run
from failover.runs.plan import Plan
from failover.runs.selectors import run_summary

FINAL = (RunStateChoices.SUCCEEDED, RunStateChoices.FAILED, RunStateChoices.ABORTED)


def duration_text(minutes: float) -> str:
    """Minutes for people: a lab run measured in seconds does not read as "0 min"."""
    return f"{minutes * 60:.0f} s" if minutes < 1 else f"{minutes:.0f} min"


def report_plan(plan: Plan, out, headline: str) -> None:
    out.write(
        f"{headline}, predicted {duration_text(plan.predicted_minutes)} ({plan.forecast.get('detail', '')})\n"
    )
    for w in plan.warnings:
        out.write(f"warning: {w}\n")
    for p in plan.blocking:
        out.write(f"BLOCKING: {p.message}" + (f" (fix: {p.fix})" if p.fix else "") + "\n")


def wait_for(run_id: int, deadline: float, out) -> str:
    """Wait until the run ends or ``deadline`` (monotonic) passes; say once if it waits
    for a person. Returns its state."""
    told = False
    while time.monotonic() < deadline:
        state = Run.objects.values_list("state", flat=True).get(pk=run_id)
        if state in FINAL:
            return state
        if state == RunStateChoices.WAITING and not told:
            out.write(f"run {run_id} waits for a person (see the board); still waiting\n")
            told = True
        time.sleep(0.2)
    return Run.objects.values_list("state", flat=True).get(pk=run_id)


def add_run_arguments(parser, *, wait_help: str = "wait until the run ends") -> None:
    """The options every command that starts a run shares."""
    parser.add_argument("--override", default="", metavar="REASON", help="start despite blocking problems")
    parser.add_argument("--user", default="mod", help="the Manager on Duty (default: mod)")
    parser.add_argument("--wait", action="store_true", help=wait_help)
    parser.add_argument("--timeout", type=float, default=900, help="--wait gives up after this many seconds")
    parser.add_argument("--json", action="store_true")


def command_user(username: str):
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"--user {username!r}: no such user")
    return user


def command_start(start) -> Run:
    """Call ``start()``; a refusal becomes a CommandError naming the field and the reason."""
    try:
        return start()
    except PermissionDenied as exc:
        raise CommandError(str(exc)) from exc
    except ValidationError as exc:
        raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc


def command_finish(command, run: Run, options: dict, out, what: str) -> None:
    """After starting ``run``: wait if asked, print the summary (JSON or a line), and
    exit 1 when a waited-for run did not succeed."""
    state = wait_for(run.pk, time.monotonic() + options["timeout"], out) if options["wait"] else run.state
    if options["json"]:
        command.stdout.write(json.dumps(run_summary(run_id=run.pk), indent=2))
    else:
        command.stdout.write(f"{what} run {run.pk}: {state}")
    if options["wait"] and state != RunStateChoices.SUCCEEDED:
        sys.exit(1)
