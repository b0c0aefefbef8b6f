"""DR groups on the arrays: check a replica, fail a group over (only when its source is
fenced), check the data, and the failback's reverse, final sync and demote."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.conf import settings

from hosts.connect import ssh_target
from hosts.drivers.base import DriverError
from hosts.drivers.ssh import SSHConnectError, SSHConnection, SSHTarget, SSHTimeout
from hosts.models import StorageArray

from .base import (
    ActionFailed,
    Context,
    Handler,
    Observation,
    Outcome,
)


class CheckGroup(Handler):
    def act(self, ctx: Context) -> Outcome:
        status = ctx.storage(ctx.params["array"]).status(ctx.params["group"])
        result = {"role": status.role, "replication": status.replication, "lag_seconds": status.lag_seconds}
        if status.role != "primary" and status.replication in ("broken", "none"):
            raise ActionFailed(
                f"{status.group}: replica is not consistent ({status.replication}): {status.detail}"
            )
        return Outcome(f"{status.group}: {status.role}, {status.replication}; {status.detail}", result)


def _source_reachable(ctx: Context, array_name: str) -> tuple[bool, str]:
    """Try the lost side's array with a short timeout: in a disaster it must not answer."""
    array = StorageArray.objects.get(name=array_name)
    if array.kind == "manual":
        return False, "manual array: the storage team fences it"
    target = ssh_target(array)
    target = SSHTarget(
        name=target.name,
        address=target.address,
        port=target.port,
        user=target.user,
        key_path=target.key_path,
        fingerprint=target.fingerprint,
        connect_timeout=min(target.connect_timeout, 5.0),
        command_timeout=10.0,
    )
    try:
        with SSHConnection(target) as conn:
            conn.run(["true"])
    except (SSHConnectError, SSHTimeout) as exc:
        return False, str(exc)
    except DriverError as exc:
        return True, f"answers, but: {exc}"
    return True, f"{array_name} answers on {target.address}:{target.port}"


class FenceVerdicts:
    """ "The source array is fenced" of a disaster run, per (run, source array), in this
    worker process, for at most VALID_S seconds: the storage step of 500 groups asked it
    500 times (an SSH connection that must fail, and two reads of the inventory, per
    group), where one answer per run and site is the fact the runbook needs.

    Why reusing it keeps the guarantee (no split brain): only "fenced" is kept, never
    "reachable" (a refused group is probed again on every attempt, so a Retry after
    fencing goes on at once); the MoD confirmed the isolation of the whole site for the
    run at the declaration, and that never changes within it; a lost site that comes
    back is found within VALID_S by the next probe, and meanwhile the array itself
    refuses FAILOVER while its partner answers as a healthy source (the driver's
    SplitBrainRefused). A new run, or another source array, probes again. Actions that
    ask at once wait for the one probe under way instead of probing too."""

    VALID_S = 60.0

    def __init__(self) -> None:
        self._seen: dict[tuple[int, str], tuple[float, str]] = {}
        self._probing: dict[tuple[int, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def fresh(self, run_id: int, array: str) -> str | None:
        """This process's verdict for the run's source array, if at most VALID_S old."""
        found = self._seen.get((run_id, array))
        if found is None or time.monotonic() - found[0] > self.VALID_S:
            return None
        return f"{found[1]} (found {time.monotonic() - found[0]:.0f} s ago for this run, not probed again)"

    def once(self, run_id: int, array: str, probe: Callable[[], str]) -> str:
        """A fresh verdict, else ``probe()``'s (kept; a refusal raises and is not kept).
        Of the actions that ask at once, one probes and the others wait for its verdict."""
        key = (run_id, array)
        with self._lock:
            if len(self._probing) > 1000:  # a bound, not a policy: a verdict is cheap to find again
                self._seen.clear()
                self._probing.clear()
            probing = self._probing.setdefault(key, threading.Lock())
        with probing:
            reused = self.fresh(run_id, array)
            if reused is not None:
                return reused
            verdict = probe()
            self._seen[key] = (time.monotonic(), verdict)
            return verdict


FENCED = FenceVerdicts()


class FailoverGroup(Handler):
    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        status = ctx.storage(ctx.params["array"]).status(ctx.params["group"])
        ctx.seen["status"] = status  # act() follows at once: it starts from this reading
        present_to = ctx.params.get("present_to")
        done = status.is_primary and (not present_to or present_to in status.presented_to)
        return Observation(
            done,
            f"{status.group} at {ctx.params['array']}: {status.role}, presented to "
            f"{', '.join(status.presented_to) or 'nobody'}",
            {"role": status.role, "presented_to": list(status.presented_to)},
        )

    def fence_check(self, ctx: Context) -> tuple[str, str]:
        """No split brain: fail over only when the source side is fenced. Returns how it is
        fenced and the run's mode (a disaster's verdict is reused, see FenceVerdicts)."""
        key = (ctx.action.run_id, ctx.params["source_array"])
        reused = FENCED.fresh(*key)
        if reused is not None:  # only a disaster's verdicts are kept
            return reused, "disaster"
        if ctx.run.mode == "disaster":
            return FENCED.once(*key, lambda: self._isolated(ctx)), "disaster"
        return self._demoted(ctx), ctx.run.mode

    def _isolated(self, ctx: Context) -> str:
        run = ctx.run
        group = ctx.params["group"]
        disaster = run.disaster
        if disaster is None or disaster.isolation_confirmed_at is None:
            raise ActionFailed(
                f"refusing to fail over {group}: nobody has confirmed that {run.lost_site.code} is isolated "
                "(the MoD confirms isolation on the declaration)"
            )
        reachable, how = _source_reachable(ctx, ctx.params["source_array"])
        if reachable:
            raise ActionFailed(
                f"refusing to fail over {group}: the source array {ctx.params['source_array']} is still "
                f"reachable ({how}); fence it (power it off or cut its links) first, then Retry"
            )
        return (
            f"source fenced: isolation confirmed by {disaster.isolation_confirmed_by} at "
            f"{disaster.isolation_confirmed_at:%Y-%m-%d %H:%M}; {ctx.params['source_array']} unreachable ({how})"
        )

    def _demoted(self, ctx: Context) -> str:
        """A planned hand-over: each group's own source copy must be demoted (never kept)."""
        group = ctx.params["group"]
        source = ctx.storage(ctx.params["source_array"]).status(group)
        if source.is_primary and source.presented_to:
            raise ActionFailed(
                f"refusing a planned failover of {group}: the source copy is still presented to "
                f"{', '.join(source.presented_to)}; shut the VMs down and demote it first"
            )
        return f"source demoted: {source.detail}"

    def act(self, ctx: Context) -> Outcome:
        group, array = ctx.params["group"], ctx.params["array"]
        driver = ctx.storage(array)
        status = ctx.seen.pop("status", None) or driver.status(group)
        present_to = ctx.params.get("present_to")
        if not status.is_primary:
            fenced, mode = self.fence_check(ctx)
            ctx.note(fenced)
            force = mode == "disaster" and driver.kind == "drbd"
            if present_to:
                status = driver.promote_and_present(group, present_to, force=force, current=status)
            else:
                status = driver.promote(group, force=force, current=status)
        if present_to and present_to not in status.presented_to:
            status = driver.present(group, present_to, current=status)
        return Outcome(
            f"{group} is primary at {array} and presented to {', '.join(status.presented_to)}",
            {"role": status.role, "presented_to": list(status.presented_to)},
            undo={
                "kind": "reverse_group",
                "group": group,
                "array": array,
                "source_array": ctx.params["source_array"],
            },
        )


class IntegrityCheck(Handler):
    def act(self, ctx: Context) -> Outcome:
        report = ctx.storage(ctx.params["array"]).integrity_check(ctx.params["group"])
        findings = list(report.findings)
        host = ctx.params.get("host")
        missing = []
        if host:
            conn = ctx.conn(ssh_target(ctx.host(host)))
            for device in ctx.params.get("devices", ()):
                if conn.run(["test", "-b", device]).exit_status != 0:
                    missing.append(device)
        if missing:
            findings.append(f"problem: {host} does not see block device(s) {', '.join(missing)}")
        if not report.ok or missing:
            raise ActionFailed("; ".join(f for f in findings if f.startswith("problem:")))
        return Outcome("; ".join(findings) or "consistent", {"findings": findings})


class ReverseGroup(Handler):
    """At the array that is primary now: replicate back toward the old source (a full
    copy when the old source's copy diverged)."""

    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        status = ctx.storage(ctx.params["array"]).status(ctx.params["group"])
        if not status.is_primary:
            return Observation(
                None, f"{status.group} is {status.role} at {ctx.params['array']}, not the source"
            )
        return Observation(
            status.replication in ("consistent", "syncing"),
            f"{status.group} at {ctx.params['array']}: replication {status.replication}; {status.detail}",
        )

    def act(self, ctx: Context) -> Outcome:
        before = self.observe(ctx)
        if before.done is None:
            raise ActionFailed(before.detail)
        status = ctx.storage(ctx.params["array"]).reverse(ctx.params["group"])
        return Outcome(
            f"{status.group}: replicating from {ctx.params['array']} to {ctx.params['source_array']} "
            f"({status.replication})",
            {"replication": status.replication},
        )


class WaitConsistent(Handler):
    """Read-only: the mirror is consistent (after a reverse, or as the final sync before
    a planned role swap), polled up to DRPORTAL_SYNC_WAIT_S."""

    def act(self, ctx: Context) -> Outcome:
        driver = ctx.storage(ctx.params["array"])
        deadline = time.monotonic() + float(getattr(settings, "DRPORTAL_SYNC_WAIT_S", 600))
        while True:
            status = driver.status(ctx.params["group"])
            if status.replication == "consistent":
                return Outcome(
                    f"{status.group}: consistent; {status.detail}", {"lag_seconds": status.lag_seconds}
                )
            if status.replication in ("broken", "none"):
                raise ActionFailed(f"{status.group}: replication {status.replication}: {status.detail}")
            if time.monotonic() >= deadline:
                raise ActionFailed(
                    f"{status.group} is still {status.replication} ({status.detail}); Retry when the copy is done"
                )
            time.sleep(0.5)


class DemoteGroup(Handler):
    """At the current source array: unpresent the group from every host (the VMs are
    shut down), so the other site can take over without split brain."""

    side_effects = True

    def observe(self, ctx: Context) -> Observation:
        status = ctx.storage(ctx.params["array"]).status(ctx.params["group"])
        return Observation(
            not (status.is_primary and status.presented_to),
            f"{status.group} at {ctx.params['array']}: {status.role}, presented to "
            f"{', '.join(status.presented_to) or 'nobody'}",
            {"presented_to": list(status.presented_to)},
        )

    def act(self, ctx: Context) -> Outcome:
        before = self.observe(ctx)
        status = ctx.storage(ctx.params["array"]).demote(ctx.params["group"])
        if status.is_primary and status.presented_to:
            raise ActionFailed(f"{status.group} is still presented to {', '.join(status.presented_to)}")
        return Outcome(
            f"{status.group} demoted at {ctx.params['array']} (unpresented from "
            f"{', '.join(before.facts.get('presented_to', [])) or 'nobody'})",
            undo={
                "kind": "present_group",
                "group": ctx.params["group"],
                "array": ctx.params["array"],
                "hosts": before.facts.get("presented_to", []),
            },
        )
