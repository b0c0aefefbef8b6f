"""The SSSU syntax block: every word drportal sends to HP Command View EVA's SSSU and every
output field it reads. The ONE place a site adapts (see hosts/drivers/eva.py for the why of
each word; tests/storage/test_sssu_syntax.py checks each word against the real SSSU 8.0
keyword table). Also the small helpers that build paths and read a virtual disk, which both
the driver (eva.py) and its drill half (eva_drills.py) use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hosts.drivers.eva_output import Answer, Block, SssuAnswerError, need
from hosts.drivers.storage import GroupStatus, Role, StorageError, check_name

# --- the syntax block: the ONE place a site adapts ------------------------------------------
SSSU_BINARY = "sssu"
# SSSU's FILE keyword runs the login script. UNVERIFIED: that the session (the manager
# selected in the file) carries on with the next argv command, and the quoting of the path.
LOGIN = 'FILE "{login_file}"'
# Stop at the first error. UNVERIFIED grammar: check_eva.sssu writes
# `set option on_error=continue`; the 8.0 table has OPTIONS, ON_ERROR and EXIT_ON_ERROR.
ON_ERROR = "SET OPTIONS ON_ERROR=EXIT_ON_ERROR"
SELECT_SYSTEM = 'SELECT SYSTEM "{system}"'  # check_eva.py, hpeva_api.py: select SYSTEM "<name>"
LS_DR_GROUPS = "LS DR_GROUP"  # UNVERIFIED: the plain list's layout (one path a line is read)
LS_DR_GROUPS_FULL = "LS DR_GROUP FULL"  # like `ls vdisk full` / `ls system full` (check_eva, opensvc)
# One group's detail. The EVA Cluster Extension guide (T3667-96045) says "use the SSSU
# command show DR_GROUP full-path/dr-group-name"; SHOW is in the table too, LS is what the
# public scripts use for a detail (LS VDISK <name>, LS ... FULL).
LS_DR_GROUP = 'LS DR_GROUP "{group}"'
LS_VDISKS_FULL = "LS VDISK FULL"  # opensvc array/eva.py (with XML), StorageLX (`ls vdisk full`)
LS_VDISK = 'LS VDISK "{vdisk}"'  # Riverbed hpeva handoff: `ls vdisk <name>` -> wwlunid, hostname, lunnumber
LS_SNAPSHOTS = "LS SNAPSHOT"  # UNVERIFIED like LS_DR_GROUPS
LS_SNAPSHOTS_FULL = "LS SNAPSHOT FULL"  # StorageLX: `ls snap full` -> objectname, wwlunid, lunnumber
FAILOVER = 'SET DR_GROUP "{group}" FAILOVER'  # UNVERIFIED: the form SET DR_GROUP <path> <word>
SUSPEND = 'SET DR_GROUP "{group}" SUSPEND'
RESUME = 'SET DR_GROUP "{group}" NOSUSPEND'
FULL_COPY = 'SET DR_GROUP "{group}" FORCEFULLCOPY'
DESTINATION_ACCESS = 'SET DR_GROUP "{group}" ACCESSMODE={mode}'  # UNVERIFIED: KEY=value form
# What a destination copy's hosts get once the copy back starts (the table also has
# READONLY and PRESENTONLY; the binary's handlers _access_read_only, _access_present_only, _noaccess).
NO_HOST_ACCESS = "DISABLE"
# LUN 0: the array picks the next free LUN (StorageLX: "if [the starting LUN] returns null,
# then EVA picks LUN"; Riverbed hpeva handoff sends `ADD LUN 0 VDISK=<snapshot> HOST=<host>`).
ADD_LUN = 'ADD LUN 0 VDISK="{vdisk}" HOST="{host}"'
DELETE_LUN = 'DELETE LUN "{host}\\{lun}"'  # opensvc evasnap: delete lun "<host path>\<lun>"
ADD_SNAPSHOT = 'ADD SNAPSHOT {name} VDISK="{vdisk}" ALLOCATION_POLICY=DEMAND'  # Riverbed, opensvc
DELETE_SNAPSHOT = 'DELETE VDISK "{vdisk}" WAIT_FOR_COMPLETION'  # opensvc evasnap
GROUP_PATH = "\\Data Replication\\{group}"
HOST_PATH = "\\Hosts\\{host}"
VDISK_ROOT = "\\Virtual Disks\\"
# One snapshot vdisk per member vdisk, numbered from 1 in the group's member order; it
# lives in its parent's family folder (\Virtual Disks\<family>\<name>, as StorageLX reads it).
SNAPSHOT_VDISK_NAME = "{snapshot}-{index}"
PROMPT_NO_SYSTEM = "NoSystemSelected"
ERROR_LINE = re.compile(r"^\s*Error\b\s*:?\s*(.*)$")  # check_eva/opensvc: any "Error" line is a failure
# Output fields (keys as SSSU prints them). From the facts: accessmode, writemode,
# suspendstate, failsafe, drmlogsize, operationalstate (DR group), drmmode (vdisk);
# objectname, wwlunid, comments, hostname, lunnumber from public parsers. UNVERIFIED:
# logstate (normal / logging / merging / fullcopy / overflow, the CA guide's states),
# remotesystemname, replicationlag (seconds), the DR group's member list ("member"
# records with objectname) and the vdisk's drmgroupname.
GROUP_STATE, GROUP_LOG, GROUP_SUSPEND = "operationalstate", "logstate", "suspendstate"
GROUP_MEMBER = "member"
VDISK_NAME, VDISK_WWID, VDISK_DRM, VDISK_GROUP = "objectname", "wwlunid", "drmmode", "drmgroupname"
VDISK_COMMENT, PRESENTATION, PRESENTED_HOST, PRESENTED_LUN = (
    "comments",
    "presentation",
    "hostname",
    "lunnumber",
)
ROLE_WORDS: dict[str, Role] = {"source": "primary", "destination": "secondary"}
SUSPENDED_WORDS = frozenset({"suspended", "yes", "true"})
COPYING_WORDS = frozenset({"merging", "fullcopy", "copying", "normalizing"})
LOGGING_WORDS = frozenset({"logging", "overflow"})
OVERFLOW_WORD = "overflow"  # the log overflowed: the array waits for a full copy
# Site convention (not SSSU's): a member vdisk's comment names the dom0 device its VMs use,
# "device=/dev/vg_proxy01/lvol1"; without one, and for snapshots, the dom0 sees the LUN as
# dm-multipath names it: "3" + the WWID (StorageLX maps wwlunid to multipath that way).
DEVICE_COMMENT = re.compile(r"(?:^|\s)device=(/\S+)")
DOM0_DEVICE = "/dev/mapper/3{wwid}"
NO_VALUE = frozenset({"", "none", "-", "n/a", "unknown"})
# --- end of the syntax block ---------------------------------------------------------------


def sssu_quote(value: str) -> str:
    """SSSU groups words with double quotes and has no escape: a quote cannot be sent."""
    if '"' in value or any(ch in value for ch in "\r\n\t"):
        raise StorageError(f"value not allowed in an SSSU command: {value!r}")
    return value


def group_path(group: str) -> str:
    return GROUP_PATH.format(group=check_name(group, "DR group"))


def last_part(path: str) -> str:
    return path.rstrip("\\").rsplit("\\", 1)[-1]


@dataclass(frozen=True)
class Vdisk:
    """One virtual disk as SSSU described it."""

    path: str
    wwid: str
    drm: str
    group: str  # the DR group's name, "" if none
    comment: str
    presentations: tuple[tuple[str, str], ...]  # (host path, LUN number)

    @property
    def hosts(self) -> set[str]:
        return {last_part(host) for host, _ in self.presentations}

    @property
    def lun_device(self) -> str:
        return DOM0_DEVICE.format(wwid=self.wwid.replace("-", "").lower())

    @property
    def device(self) -> str:
        found = DEVICE_COMMENT.search(self.comment)
        return found.group(1) if found else self.lun_device


def vdisk_of(block: Block, answer: Answer) -> Vdisk:
    path = need(block, VDISK_NAME, answer, "the virtual disk's path")
    presentations = []
    for record in block.records.get(PRESENTATION, ()):
        host, lun = record.get(PRESENTED_HOST, "").strip(), record.get(PRESENTED_LUN, "").strip()
        if not host or not lun.isdigit():
            raise SssuAnswerError(
                f"{answer.system}: the answer to {answer.command!r} (line {block.line}, {path}) has a "
                f"presentation without {PRESENTED_HOST} and a numeric {PRESENTED_LUN}: expected both"
            )
        presentations.append((host, lun))
    group = block.fields.get(VDISK_GROUP, "").strip()
    return Vdisk(
        path=path,
        wwid=need(block, VDISK_WWID, answer, "its LUN WWID, like 6005-08b4-..."),
        drm=block.fields.get(VDISK_DRM, "").strip().lower(),
        group=last_part(group) if group.lower() not in NO_VALUE else "",
        comment=block.fields.get(VDISK_COMMENT, ""),
        presentations=tuple(presentations),
    )


@dataclass(frozen=True)
class GroupRead:
    fields: dict[str, str]
    members: tuple[Vdisk, ...]
    status: GroupStatus
