"""The one small interface the engine uses for storage replication, and its records.

A storage driver is bound to one copy of the replicated data: the copy at one site
(for HP EVA Continuous Access the array selected in SSSU, for DRBD the node the runner
reaches). "Primary" always means that copy is the writable source, "secondary" that it
is a replica. Every method observes first and only acts when the world is not already
in the target state, so the engine may call it again after a worker died mid-way.

Kinds: ``drbd`` (``hosts.drivers.drbd``), ``eva-ca`` (``hosts.drivers.eva``) and
``manual`` (``hosts.drivers.manual``, a person does the step and confirms it on the
board). ``ceph-rbd`` is known but not implemented yet.

Drills (test failovers that disturb nothing) use snapshots: ``snapshot`` takes a
point-in-time copy of *this* copy of a group (typically the destination/secondary one),
``present_snapshot`` lets a dom0 see its devices, the drill domains run from them, and
``unpresent_snapshot`` / ``delete_snapshot`` clean up. The group itself (roles,
presentations, replication) is never touched.
"""

from __future__ import annotations

import importlib
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hosts.drivers.base import CommandResult, DriverError, Runner

Role = Literal["primary", "secondary", "unknown"]
Replication = Literal["consistent", "syncing", "broken", "suspended", "none", "unknown"]

ROLES: tuple[Role, ...] = ("primary", "secondary", "unknown")
REPLICATIONS: tuple[Replication, ...] = ("consistent", "syncing", "broken", "suspended", "none", "unknown")

# Names reach a remote command line (quoted, but still): keep them boring so a typo or an
# injected value fails here with a clear message instead of on the array.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class GroupStatus:
    """One DR group as seen from the copy the driver is bound to.

    ``lag_seconds`` is None when unknown (DRBD does not report one; an EVA whose partner
    is unreachable cannot know it). ``presented_to`` are the hosts that may write this
    copy. ``detail`` is a one-line human summary in the tool's own vocabulary.
    ``members`` are the driver's own names of what the group holds (EVA: the paths of its
    virtual disks; empty for DRBD), so that a driver handed this status back (``current``)
    can act and read again in one call.
    """

    group: str
    role: Role
    replication: Replication
    lag_seconds: float | None
    presented_to: tuple[str, ...]
    peer_role: Role
    detail: str
    members: tuple[str, ...] = ()

    @property
    def is_primary(self) -> bool:
        return self.role == "primary"


@dataclass(frozen=True)
class SnapshotStatus:
    """One snapshot of one DR group's copy on the array the driver is bound to.

    ``devices`` maps each device of the group to the snapshot's device (what a drill
    domain's ``disk=`` names); ``presented_to`` are the hosts that can see them."""

    name: str
    group: str
    devices: dict[str, str]
    presented_to: tuple[str, ...]


@dataclass(frozen=True)
class IntegrityReport:
    """Result of runbook step 3 for one group.

    ``findings`` are lines for a person, each starting with ``problem:`` (the data on
    this copy cannot be trusted or used; makes ``ok`` False) or ``note:`` (worth knowing,
    e.g. replication to the lost site is not running, which is expected after a failover).
    """

    group: str
    ok: bool
    findings: tuple[str, ...]

    @property
    def problems(self) -> tuple[str, ...]:
        return tuple(f for f in self.findings if f.startswith("problem:"))


def integrity_report(group: str, problems: list[str], notes: list[str]) -> IntegrityReport:
    findings = tuple(f"problem: {p}" for p in problems) + tuple(f"note: {n}" for n in notes)
    return IntegrityReport(group=group, ok=not problems, findings=findings)


class StorageError(DriverError):
    """A storage command failed or its answer made no sense; the message keeps the tool's words."""


class SplitBrainRefused(StorageError):
    """Promotion refused because the other copy is still primary and reachable (or in use).
    Never retried automatically: a person must stop the writers at the other site first."""


class GroupNotFound(StorageError):
    """The DR group / DRBD resource does not exist on this array or node."""


class NotConsistent(StorageError):
    """The replica cannot be trusted (no replica, replication broken, still copying);
    promoting it anyway needs ``force=True`` and accepts data loss."""


class SnapshotNotFound(StorageError):
    """The named snapshot does not exist on this array."""


class SnapshotUnsupported(StorageError):
    """This kind of storage cannot take the drill snapshot drportal needs."""


class ManualStepRequired(DriverError):
    """A person has to do this step. Deliberately *not* a StorageError: the engine must
    not treat it as a failure but park the step until someone presses "Mark done".

    ``snapshot`` names the snapshot of a drill step; for the snapshot steps that know
    only the snapshot (present, unpresent, delete, status), ``group`` is that name too."""

    def __init__(self, instruction: str, *, group: str, action: str, snapshot: str | None = None) -> None:
        super().__init__(instruction)
        self.instruction = instruction
        self.group = group
        self.action = action
        self.snapshot = snapshot


def snapshot_usable(current: GroupStatus) -> str | None:
    """Why a snapshot of this copy would not be a consistent image (None: it would be).
    A source copy is the data itself; a replica only while its mirror is whole."""
    if current.role == "primary":
        return None
    if current.role == "secondary" and current.replication in ("consistent", "suspended"):
        return None
    return f"this copy is {current.role} with replication {current.replication}"


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise StorageError(f"invalid {what} {value!r}: use letters, digits, '.', '_' or '-' (max 63)")
    return value


def tool_message(result: CommandResult) -> str:
    """The tool's own message, stderr first: what a person needs to read."""
    text = (result.stderr.strip() or result.stdout.strip()).strip()
    return text or f"{result.argv[0]} failed with exit status {result.exit_status}"


class StorageDriver(ABC):
    """What the engine may do with a DR group. See the module docstring for the binding."""

    kind: str = ""

    @abstractmethod
    def status(self, group: str) -> GroupStatus:
        """Observe only."""

    def statuses(
        self, groups: Sequence[str], *, errors: dict[str, StorageError] | None = None
    ) -> dict[str, GroupStatus]:
        """Observe several groups; raises like ``status`` for the first that fails, or,
        given ``errors``, puts each group's StorageError there and goes on (a connection
        that fails still raises). One by one here; a driver whose tool reports every group
        in one call overrides this (a plan preview of 500 groups must not cost 500 calls
        of seconds each)."""
        found = {}
        for group in groups:
            try:
                found[group] = self.status(group)
            except StorageError as exc:
                if errors is None:
                    raise
                errors[group] = exc
        return found

    #: True when ``statuses`` asks the array once, however many groups.
    bulk_status = False

    @abstractmethod
    def promote(self, group: str, *, force: bool = False, current: GroupStatus | None = None) -> GroupStatus:
        """Make this copy the writable source (fail over to this site). Refuses with
        SplitBrainRefused while the other copy is primary and reachable/in use, and with
        NotConsistent when the replica is not trustworthy unless ``force``.

        ``current``: the status the caller has just read, so the driver need not ask the
        array again before acting (on a real array every SSSU call costs seconds). The
        result is always read after acting."""

    @abstractmethod
    def present(self, group: str, host: str, *, current: GroupStatus | None = None) -> GroupStatus:
        """Let ``host`` write this copy. Only a primary copy can be presented. ``current``
        as for ``promote``."""

    def promote_and_present(
        self, group: str, host: str, *, force: bool = False, current: GroupStatus | None = None
    ) -> GroupStatus:
        """``promote``, then ``present`` to ``host`` (a failover's two changes). Here one
        after the other; a driver whose tool does both in one call overrides this (on a
        real EVA every SSSU call logs in to Command View: seconds)."""
        status = self.promote(group, force=force, current=current)
        return status if host in status.presented_to else self.present(group, host, current=status)

    def remember_members(self, group: str, members: Sequence[str]) -> None:
        """What the group held when someone last read it (``GroupStatus.members``, e.g. the
        plan preview's bulk read): a hint that lets the next read of the group be one
        call. Only a hint: every read checks the group's own list. Ignored here."""
        return None

    @abstractmethod
    def demote(self, group: str) -> GroupStatus:
        """First half of a planned hand-over: stop this copy being written here, so the
        other site can be promoted without split brain."""

    @abstractmethod
    def reverse(self, group: str) -> GroupStatus:
        """After a failover, make the old source a replica of this (new) source again,
        copying from here (failback preparation). This copy must be primary."""

    @abstractmethod
    def integrity_check(self, group: str) -> IntegrityReport:
        """Can the data on this copy be used (runbook step 3)?"""

    # -- drills ---------------------------------------------------------------------------

    @abstractmethod
    def snapshot(self, group: str, name: str) -> SnapshotStatus:
        """Snapshot this copy of ``group`` as ``name`` (works on a destination copy: that
        is the point). Idempotent: an existing snapshot ``name`` of ``group`` is returned;
        one of another group is a StorageError. Refuses (NotConsistent) a copy that is not
        consistent (replication broken or still copying, disk not up to date). The group's
        roles, presentations and replication stay exactly as they were."""

    @abstractmethod
    def snapshot_status(self, name: str) -> SnapshotStatus | None:
        """Observe only; None when there is no snapshot ``name`` on this array."""

    @abstractmethod
    def present_snapshot(self, name: str, host: str) -> SnapshotStatus:
        """Let ``host`` see the snapshot's devices (idempotent). SnapshotNotFound if missing."""

    @abstractmethod
    def unpresent_snapshot(self, name: str, host: str) -> SnapshotStatus:
        """Take the snapshot's devices away from ``host`` (idempotent). The array refuses
        while a domain on ``host`` uses one of them. SnapshotNotFound if missing."""

    @abstractmethod
    def delete_snapshot(self, name: str) -> None:
        """Delete the snapshot (idempotent: a missing one is fine). Refused while it is
        presented to any host."""

    @abstractmethod
    def list_snapshots(self) -> tuple[str, ...]:
        """Names of the snapshots on this array."""


# The driver of each array kind, by dotted path, resolved on use (as Celery names its
# result backends): the driver modules import this one for the interface, so this one
# names them instead of importing them.
DRIVERS: dict[str, str] = {
    "drbd": "hosts.drivers.drbd.DrbdDriver",
    "eva-ca": "hosts.drivers.eva.EvaDriver",
    "manual": "hosts.drivers.manual.ManualDriver",
}
NOT_YET = {"ceph-rbd": "ceph-rbd driver not available yet"}


def driver_class(kind: str) -> type[StorageDriver]:
    """The driver class of an array kind (its capabilities, e.g. ``bulk_status``)."""
    if kind in NOT_YET:
        raise StorageError(NOT_YET[kind])
    path = DRIVERS.get(kind)
    if path is None:
        raise StorageError(f"unknown storage driver kind {kind!r} (known: {', '.join(DRIVERS)})")
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def get_driver(kind: str, runner: Runner | None, **options: Any) -> StorageDriver:
    """The factory the engine uses; ``options`` come from the array's inventory record."""
    cls = driver_class(kind)
    return cls(runner if kind == "manual" else _need_runner(kind, runner), **options)


def _need_runner(kind: str, runner: Runner | None) -> Runner:
    if runner is None:
        raise StorageError(f"the {kind} driver needs a runner for the host it talks to")
    return runner
