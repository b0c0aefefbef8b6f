"""The manual storage driver: a person does the storage step and confirms it on the board.

For arrays drportal cannot drive (no SSSU access, another vendor, a storage team that
keeps the keys). ``status`` cannot observe anything, so it says what to check; every
action raises ``ManualStepRequired`` carrying the instruction, and the engine turns that
into a step waiting for someone to press "Mark done".
"""

from __future__ import annotations

from hosts.drivers.base import Runner
from hosts.drivers.storage import (
    GroupStatus,
    IntegrityReport,
    ManualStepRequired,
    SnapshotStatus,
    StorageDriver,
    check_name,
)

DONE = "then press 'Mark done' on the board."


class ManualDriver(StorageDriver):
    """``array`` names the copy this driver stands for (the target array of a failover);
    ``team`` is who the person should ask; ``host`` (optional) is the dom0 a promoted
    group should be presented to, so one instruction covers both."""

    kind = "manual"

    def __init__(
        self,
        runner: Runner | None = None,
        *,
        array: str = "the target array",
        team: str = "the storage team",
        host: str | None = None,
    ) -> None:
        self.runner = runner  # unused: nothing is run, kept for the common factory signature
        self.array = array
        self.team = team
        self.host = check_name(host, "host name") if host is not None else None

    def _ask(self, group: str, action: str, text: str) -> ManualStepRequired:
        check_name(group, "DR group")
        return ManualStepRequired(f"Ask {self.team} to {text}; {DONE}", group=group, action=action)

    def status(self, group: str) -> GroupStatus:
        check_name(group, "DR group")
        return GroupStatus(
            group=group,
            role="unknown",
            replication="unknown",
            lag_seconds=None,
            presented_to=(),
            peer_role="unknown",
            detail=(
                f"drportal cannot see DR group {group}: check with {self.team} (or the array's "
                f"management console) whether the copy on {self.array} is source or destination, "
                "whether the mirror is consistent, its lag, and which hosts it is presented to."
            ),
        )

    def promote(self, group: str, *, force: bool = False, current: GroupStatus | None = None) -> GroupStatus:
        how = " even though the mirror is not consistent (accepting data loss)" if force else ""
        present = f" and present it to host {self.host}" if self.host else ""
        raise self._ask(
            group,
            "promote",
            f"fail over DR group {group} to {self.array}{how}{present} (nothing at the other site may "
            "still write to it)",
        )

    def present(self, group: str, host: str, *, current: GroupStatus | None = None) -> GroupStatus:
        check_name(host, "host name")
        raise self._ask(group, "present", f"present DR group {group} on {self.array} to host {host}")

    def demote(self, group: str) -> GroupStatus:
        raise self._ask(
            group,
            "demote",
            f"stop every host writing DR group {group} on {self.array} (unpresent it) so the other "
            "site can take it over",
        )

    def reverse(self, group: str) -> GroupStatus:
        raise self._ask(
            group,
            "reverse",
            f"reverse the replication of DR group {group} so that the copy on {self.array} is the "
            "source and the other array's copy is resynchronised from it",
        )

    def integrity_check(self, group: str) -> IntegrityReport:
        raise self._ask(
            group,
            "integrity_check",
            f"confirm that DR group {group} on {self.array} is the source, in a good state and "
            "complete (no copy or merge still running)",
        )

    # -- drills: the storage team takes, presents and removes the snapshot ------------------

    def _ask_snapshot(
        self, name: str, action: str, text: str, *, group: str | None = None
    ) -> ManualStepRequired:
        check_name(name, "snapshot name")
        if group is not None:
            check_name(group, "DR group")
        return ManualStepRequired(
            f"Ask {self.team} to {text}; {DONE}", group=group or name, action=action, snapshot=name
        )

    def snapshot(self, group: str, name: str) -> SnapshotStatus:
        raise self._ask_snapshot(
            name,
            "snapshot",
            f"take a snapshot named {name} of the copy of DR group {group} on {self.array} (for a DR "
            "drill: the replication, roles and presentations of the group must stay exactly as they "
            "are; only if that copy is consistent, i.e. the mirror is in sync) and tell you the "
            "snapshot device of each of the group's devices",
            group=group,
        )

    def snapshot_status(self, name: str) -> SnapshotStatus | None:
        raise self._ask_snapshot(
            name,
            "snapshot_status",
            f"tell you whether snapshot {name} exists on {self.array}, of which DR group, its devices "
            "and the hosts it is presented to",
        )

    def present_snapshot(self, name: str, host: str) -> SnapshotStatus:
        check_name(host, "host name")
        raise self._ask_snapshot(
            name, "present_snapshot", f"present snapshot {name} on {self.array} to host {host}"
        )

    def unpresent_snapshot(self, name: str, host: str) -> SnapshotStatus:
        check_name(host, "host name")
        raise self._ask_snapshot(
            name,
            "unpresent_snapshot",
            f"unpresent snapshot {name} on {self.array} from host {host} (only after the drill "
            f"domains on {host} have been destroyed)",
        )

    def delete_snapshot(self, name: str) -> None:
        raise self._ask_snapshot(
            name,
            "delete_snapshot",
            f"delete snapshot {name} on {self.array} (after it is unpresented from every host; "
            "the DR group itself must not be touched)",
        )

    def list_snapshots(self) -> tuple[str, ...]:
        raise ManualStepRequired(
            f"Ask {self.team} to list the snapshots on {self.array}; {DONE}",
            group="",
            action="list_snapshots",
        )
