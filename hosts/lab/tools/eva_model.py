"""The lab's model of what an HP EVA holds: virtual disks, LUN presentations, DR group
membership, snapshots (which are virtual disks). Shared by the simulated sssu
(sssu_tool.py), the seeds (hosts/lab/seed.py) and what a dom0 sees (base.visible_devices).

State (schema in base.py):
- a DR group member vdisk lives in its group's side: ``group["sides"][array]["vdisks"]`` is
  one ``{"name", "wwid"}`` per entry of ``group["devices"]`` (same order; the device is what
  the dom0 sees of it once presented: the lab stands in for the dom0's LVM on the LUN);
- a group with one side is no DR group on the array: its vdisks are plain virtual disks;
- a snapshot vdisk is ``state["snapshots"][name] = {"array", "parent", "group", "device",
  "wwid", "created_at"}`` (``device``: the parent's device, what the snapshot copies);
- presentations are the array's LUN table, the one truth about who sees what:
  ``state["hosts"][array]["luns"][dom0][lun number as text] = vdisk name``.

The dom0 side of a presentation is the dm-multipath device of the LUN's WWID,
``/dev/mapper/3<wwid, 32 hex digits>`` (multipath names a device by its SCSI WWID, "3" for
NAA, when user_friendly_names is off; the public StorageLX EVA module maps SSSU's
``wwlunid`` to multipath the same way). A member vdisk also shows as its group device.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

GROUP_ROOT = "\\Data Replication\\"
VDISK_ROOT = "\\Virtual Disks\\"
HOST_ROOT = "\\Hosts\\"
ACTIVE = "ACTIVE"
ACCESS_MODES = ("disable", "readonly", "presentonly")


def wwid(array: str, name: str) -> str:
    """A stable, unique LUN WWID in SSSU's ``wwlunid`` form (8 groups of 4 hex digits; EVA
    WWIDs are NAA type 6 with HP's company id, so they start 6005-08b4)."""
    digest = hashlib.sha256(f"{array}/{name}".encode()).hexdigest()
    hexid = "600508b4" + digest[:24]
    return "-".join(hexid[i : i + 4] for i in range(0, 32, 4))


def mapper_device(lun_wwid: str) -> str:
    return "/dev/mapper/3" + lun_wwid.replace("-", "").lower()


def member_name(group: str, index: int) -> str:
    return f"{group}-{index + 1}"


def vdisk_path(family: str, leaf: str = ACTIVE) -> str:
    return f"{VDISK_ROOT}{family}\\{leaf}"


def eva_side(array: str, group: str, devices: list[str], role: str) -> dict:
    """A fresh side of an EVA group: one vdisk per device, nothing presented."""
    names = [member_name(group, i) for i in range(len(devices))]
    return {
        "role": role,
        "disk_state": "UpToDate",
        "vdisks": [{"name": name, "wwid": wwid(array, name)} for name in names],
    }


def eva_group(*, devices: list[str], sides: dict[str, str], group: str, mode: str = "async") -> dict:
    """An EVA group for a seed: ``sides`` maps each array to its role (one side: no replica)."""
    replicated = len(sides) > 1
    return {
        "kind": "eva-ca",
        "mode": mode,
        "devices": list(devices),
        "sides": {array: eva_side(array, group, devices, role) for array, role in sides.items()},
        "replication": "consistent" if replicated else "none",
        "lag_seconds": 2.0 if replicated else None,
        "accessmode": "disable",
    }


def luns_of(state: dict, array: str) -> dict[str, dict[str, str]]:
    return state["hosts"][array].setdefault("luns", {})


def add_lun(state: dict, array: str, host: str, vdisk: str, lun: int = 0) -> int:
    """Present ``vdisk`` to ``host`` as LUN ``lun`` (0: the lowest free number from 1)."""
    table = luns_of(state, array).setdefault(host, {})
    if lun == 0:
        lun = next(n for n in range(1, len(table) + 2) if str(n) not in table)
    table[str(lun)] = vdisk
    return lun


_T = TypeVar("_T")


@dataclass(frozen=True)
class Vdisk:
    """One virtual disk of one array, as the lab knows it."""

    name: str
    array: str
    wwid: str
    group: str | None = None  # the lab group it belongs to (a DR group if replicated)
    index: int = 0  # position in the group's devices
    snapshot: dict | None = None  # the snapshot record, for a snapshot vdisk

    @property
    def path(self) -> str:
        if self.snapshot is not None:
            return vdisk_path(self.snapshot["parent"], self.name)
        return vdisk_path(self.name)


class ArrayIndex:
    """The vdisks of one array by name, and its presentations per vdisk.

    Built per command, so it costs little: ``vdisks`` is the groups' layout cache itself
    when the array holds no snapshot (READ-ONLY, like everything here), and the
    presentations are read from the LUN table when asked: ``presentations(name)`` scans it
    for one vdisk, ``presented`` (every vdisk's) is built on first use."""

    def __init__(self, state: dict, array: str) -> None:
        self.state, self.array = state, array
        vdisks = _layout(
            state.get("groups", {}), ("vdisks", array), lambda groups: _group_vdisks(groups, array)
        )
        snapshots = [
            (name, snap) for name, snap in state.get("snapshots", {}).items() if snap.get("array") == array
        ]
        if snapshots:
            vdisks = dict(vdisks)
            for name, snap in snapshots:
                vdisks[name] = Vdisk(name, array, snap["wwid"], snap.get("group"), snapshot=snap)
        self.vdisks: Mapping[str, Vdisk] = vdisks
        self._presented: dict[str, list[tuple[str, int]]] | None = None

    def _luns(self) -> dict[str, dict[str, str]]:
        return self.state["hosts"][self.array].get("luns", {})

    @property
    def presented(self) -> dict[str, list[tuple[str, int]]]:
        """{vdisk: [(host, LUN), ...] by host, then LUN}, as the LUN table was when first asked."""
        if self._presented is None:
            presented: dict[str, list[tuple[str, int]]] = {}
            for host, table in sorted(self._luns().items()):
                for lun, name in sorted(table.items(), key=lambda item: int(item[0])):
                    presented.setdefault(name, []).append((host, int(lun)))
            self._presented = presented
        return self._presented

    def presentations(self, name: str) -> list[tuple[str, int]]:
        """``presented.get(name, [])`` without indexing every vdisk of the array."""
        if self._presented is not None:
            return self._presented.get(name, [])
        return sorted(
            (host, int(lun))
            for host, table in self._luns().items()
            for lun, vdisk in table.items()
            if vdisk == name
        )

    def by_path(self, path: str) -> Vdisk | None:
        """A vdisk by its SSSU path (``\\Virtual Disks\\<family>\\ACTIVE`` or ``\\<snapshot>``)."""
        if not path.lower().startswith(VDISK_ROOT.lower()):
            return None
        family, _, leaf = path[len(VDISK_ROOT) :].rstrip("\\").rpartition("\\")
        found = self.vdisks.get(leaf) if leaf.upper() != ACTIVE else self.vdisks.get(family)
        if found is None or found.path.lower() != path.rstrip("\\").lower():
            return None
        return found

    def devices(self, vdisk: Vdisk) -> set[str]:
        """What a dom0 the vdisk is presented to sees of it."""
        seen = {mapper_device(vdisk.wwid)}
        if vdisk.snapshot is None and vdisk.group is not None:
            seen.add(self.state["groups"][vdisk.group]["devices"][vdisk.index])
        return seen

    def host_can_see(self, vdisk: Vdisk) -> bool:
        """A snapshot or a source copy is seen by the hosts it is presented to; a destination
        copy only while its DR group's access mode is READONLY."""
        if vdisk.snapshot is not None or vdisk.group is None:
            return True
        group = self.state["groups"][vdisk.group]
        side = group["sides"][self.array]
        return side["role"] == "primary" or group.get("accessmode") == "readonly"


def _group_vdisks(groups: dict, array: str) -> dict[str, Vdisk]:
    found: dict[str, Vdisk] = {}
    for group_name, group in dict.items(groups):  # read only: see _layout
        side = group["sides"].get(array)
        if group.get("kind") != "eva-ca" or side is None:
            continue
        for index, vdisk in enumerate(side.get("vdisks", ())):
            found[vdisk["name"]] = Vdisk(vdisk["name"], array, vdisk["wwid"], group_name, index)
    return found


def _group_arrays(groups: dict) -> frozenset[str]:
    seen: set[str] = set()
    for group in dict.values(groups):  # read only: see _layout
        if group.get("kind") == "eva-ca":
            seen.update(group["sides"])
    return frozenset(seen)


def _layout(groups: dict, key: tuple, build: Callable[[dict], _T]) -> _T:
    """What the groups' layout says (which arrays hold which vdisks of which group): fixed
    when a group is made, and no lab command changes it. The lab store's groups section
    keeps it (``layout_cache``; the store empties it when a commit changes a group's
    layout, and a section read again from disk starts empty), so a command does not walk
    all 500 groups (and make the store compare them all) to find one vdisk. Anything
    else (a plain dict) is walked every time."""
    cache = getattr(groups, "layout_cache", None)
    if cache is None:
        return build(groups)
    full_key = (*key, dict.__len__(groups))
    if full_key not in cache:
        cache[full_key] = build(groups)
    return cache[full_key]


def drbd_group_names(groups: dict) -> list[str]:
    """The groups that are not EVA groups (DRBD's), in the section's order."""
    return _layout(
        groups, ("drbd",), lambda section: [n for n, g in dict.items(section) if g.get("kind") != "eva-ca"]
    )


def eva_arrays(state: dict) -> Iterator[str]:
    """The arrays holding an EVA group or a snapshot. Found through the groups, not by
    reading every host: a dom0 command must not make the store compare every host."""
    seen: set[str] = set(_layout(state.get("groups", {}), ("arrays",), _group_arrays))
    seen.update(snap["array"] for snap in state.get("snapshots", {}).values())
    return iter(sorted(seen))


def presented_hosts(state: dict, group_name: str, array: str) -> list[str]:
    """The dom0s that see every vdisk of the group's copy on ``array``."""
    index = ArrayIndex(state, array)
    names = [v["name"] for v in state["groups"][group_name]["sides"][array].get("vdisks", ())]
    if not names:
        return []
    per_vdisk = [{host for host, _ in index.presentations(name)} for name in names]
    return sorted(set.intersection(*per_vdisk))


def eva_visible_devices(state: dict, host: str) -> set[str]:
    seen: set[str] = set()
    for array in eva_arrays(state):
        table = state["hosts"][array].get("luns", {}).get(host)
        if not table:
            continue
        index = ArrayIndex(state, array)
        for name in table.values():
            vdisk = index.vdisks.get(name)
            if vdisk is not None and index.host_can_see(vdisk):
                seen |= index.devices(vdisk)
    return seen
