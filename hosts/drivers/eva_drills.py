"""Drill snapshots of an EVA's DESTINATION copy: one snapshot virtual disk of each member
vdisk of the DR group (``ADD SNAPSHOT <name>-<n> VDISK=...``), presented with ``ADD LUN``,
taken away with ``DELETE LUN`` and deleted with ``DELETE VDISK``, as any vdisk. The words
are in the syntax block (hosts/drivers/eva_syntax.py); this is the part of EvaDriver that uses them
for drills (a mixin: it needs the driver's ``_session``, ``_vdisks`` and ``_read``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hosts.drivers import eva_syntax as syntax
from hosts.drivers.eva_output import Answer
from hosts.drivers.eva_syntax import GroupRead, Vdisk
from hosts.drivers.storage import (
    NotConsistent,
    SnapshotNotFound,
    SnapshotStatus,
    StorageError,
    check_name,
    snapshot_usable,
)


class _DriverCore(Protocol):
    """What the drill half uses of EvaDriver (hosts/drivers/eva.py), which defines it all."""

    system: str

    def _session(self, *commands: str, timeout: float | None = None) -> list[Answer]: ...

    def _vdisks(self, answers: Sequence[Answer]) -> dict[str, Vdisk]: ...

    def _read(
        self, group: str, *before: str, hint: Sequence[str] = (), timeout: float | None = None
    ) -> GroupRead: ...

    @staticmethod
    def _adds(vdisks: Sequence[str], host: str) -> list[str]: ...


@dataclass(frozen=True)
class SnapshotRead:
    """A drill snapshot: one snapshot vdisk per member of the group it was taken of."""

    status: SnapshotStatus
    vdisks: tuple[Vdisk, ...]


class EvaDrills(_DriverCore):
    """The drill half of EvaDriver."""

    def _snapshot_read(self, name: str, *before: str, parents: Sequence[str] = ()) -> SnapshotRead | None:
        check_name(name, "snapshot name")
        reads = [
            syntax.LS_SNAPSHOTS_FULL,
            *(syntax.LS_VDISK.format(vdisk=syntax.sssu_quote(p)) for p in parents),
        ]
        answers = self._session(*before, *reads)
        own = re.compile(re.escape(syntax.SNAPSHOT_VDISK_NAME.format(snapshot=name, index="")) + r"(\d+)$")
        snaps = sorted(
            (
                (int(m.group(1)), v)
                for v in self._vdisks(answers[len(before) : len(before) + 1]).values()
                if (m := own.fullmatch(syntax.last_part(v.path)))
            ),
            key=lambda item: item[0],
        )
        if not snaps:
            return None
        vdisks = self._vdisks(answers[len(before) + 1 :])
        parent_of = {v.path: v.path.rstrip("\\").rsplit("\\", 1)[0] + "\\ACTIVE" for _, v in snaps}
        missing = sorted({p for p in parent_of.values() if p.lower() not in vdisks})
        if missing:
            vdisks |= self._vdisks(
                self._session(*(syntax.LS_VDISK.format(vdisk=syntax.sssu_quote(p)) for p in missing))
            )
        parents_read = [vdisks[parent_of[v.path].lower()] for _, v in snaps]
        groups = {p.group for p in parents_read}
        if len(groups) != 1 or "" in groups:
            raise StorageError(
                f"snapshot {name} on {self.system}: its virtual disks are not of one DR group "
                f"({', '.join(sorted(g or 'none' for g in groups))})"
            )
        snap_vdisks = tuple(v for _, v in snaps)
        status = SnapshotStatus(
            name=name,
            group=groups.pop(),
            devices={p.device: v.lun_device for p, v in zip(parents_read, snap_vdisks, strict=True)},
            presented_to=tuple(sorted(set.intersection(*(v.hosts for v in snap_vdisks)))),
        )
        return SnapshotRead(status, snap_vdisks)

    def snapshot_status(self, name: str) -> SnapshotStatus | None:
        read = self._snapshot_read(name)
        return read.status if read else None

    def _require_snapshot(self, name: str) -> SnapshotRead:
        read = self._snapshot_read(name)
        if read is None:
            raise SnapshotNotFound(f"snapshot {name} does not exist on {self.system}")
        return read

    def snapshot(self, group: str, name: str) -> SnapshotStatus:
        check_name(group, "DR group")
        existing = self.snapshot_status(name)
        if existing is not None:
            if existing.group != group:
                raise StorageError(
                    f"snapshot {name} on {self.system} already exists, of DR group {existing.group}, "
                    f"not {group}: delete it or use another name"
                )
            return existing
        read = self._read(group)
        why = snapshot_usable(read.status)
        if why is None and read.fields[syntax.GROUP_STATE].lower() == "failed":
            why = "this copy is in operational state failed"
        if why is not None:
            raise NotConsistent(
                f"refusing to snapshot DR group {group} on {self.system}: {why}, so a snapshot "
                f"would not be a consistent image ({read.status.detail})"
            )
        adds = [
            syntax.ADD_SNAPSHOT.format(
                name=syntax.SNAPSHOT_VDISK_NAME.format(snapshot=name, index=i + 1),
                vdisk=syntax.sssu_quote(member.path),
            )
            for i, member in enumerate(read.members)
        ]
        created = self._snapshot_read(name, *adds, parents=read.status.members)
        if created is None:
            raise StorageError(f"SSSU accepted ADD SNAPSHOT {name} on {self.system}, but it does not list it")
        return created.status

    def list_snapshots(self) -> tuple[str, ...]:
        (answer,) = self._session(syntax.LS_SNAPSHOTS)
        own = re.compile(re.escape(syntax.SNAPSHOT_VDISK_NAME.format(snapshot="", index="")) + r"\d+$")
        names = (own.sub("", syntax.last_part(p)) for p in answer.listing(syntax.VDISK_ROOT))
        return tuple(dict.fromkeys(n for n in names if n))

    def present_snapshot(self, name: str, host: str) -> SnapshotStatus:
        check_name(host, "host name")
        current = self._require_snapshot(name)
        adds = self._adds([v.path for v in current.vdisks if host not in v.hosts], host)
        if not adds:
            return current.status
        return self._after(name, adds)

    def unpresent_snapshot(self, name: str, host: str) -> SnapshotStatus:
        check_name(host, "host name")
        current = self._require_snapshot(name)
        deletes = [
            syntax.DELETE_LUN.format(host=syntax.sssu_quote(h), lun=lun)
            for v in current.vdisks
            for h, lun in v.presentations
            if syntax.last_part(h) == host
        ]
        if not deletes:
            return current.status
        return self._after(name, deletes)

    def _after(self, name: str, actions: list[str]) -> SnapshotStatus:
        read = self._snapshot_read(name, *actions)
        if read is None:
            raise SnapshotNotFound(f"snapshot {name} is gone from {self.system}")
        return read.status

    def delete_snapshot(self, name: str) -> None:
        current = self._snapshot_read(name)
        if current is None:
            return
        if current.status.presented_to or any(v.presentations for v in current.vdisks):
            hosts = sorted(set().union(*(v.hosts for v in current.vdisks)))
            raise StorageError(
                f"refusing to delete snapshot {name} on {self.system}: it is still presented to "
                f"{', '.join(hosts)}; unpresent it first"
            )
        self._session(
            *(syntax.DELETE_SNAPSHOT.format(vdisk=syntax.sssu_quote(v.path)) for v in current.vdisks)
        )
