"""HP EVA Continuous Access through SSSU on a management host.

SSSU SYNTAX: THE ONE PLACE TO ADAPT
===================================
The real SSSU syntax for DR groups is not publicly specified (reference section 5 is
mostly UNVERIFIED), so every word drportal sends or expects is defined in this block.
A site whose SSSU differs edits the constants below (and, if needed, ``FIELD_ALIASES``)
and nothing else. The lab's simulated ``sssu`` implements exactly this design.

Invocation (one SSH command on the management host, each SSSU command one argv word)::

    sssu "SELECT MANAGER <manager> USERNAME=<user>" "SELECT SYSTEM <system>" "<COMMAND>"

No password is ever put on the command line (it would show in ``ps`` and in logs): the
management host must hold a pre-authorised Command View session / stored credential for
``<user>``. Commands:

    LS DR_GROUP                                         list the DR group names
    LS DR_GROUP "\\Data Replication\\<group>"           detail, "key ....: value" lines
    SET DR_GROUP "\\Data Replication\\<group>" FAILOVER   only on the destination; swaps roles
    SET DR_GROUP "..." FAILOVER FORCE                   failover of a broken/copying group (UNVERIFIED)
    SET DR_GROUP "..." SUSPEND | RESUME
    SET DR_GROUP "..." PRESENT HOST="\\Hosts\\<host>"
    SET DR_GROUP "..." UNPRESENT HOST="\\Hosts\\<host>"
    SET DR_GROUP "..." REVERSE                          on the source: full copy to the other array

Drill snapshots (UNVERIFIED like the rest; a snapshot of a DR group's copy on the
selected array, typically the destination, whose group is left exactly as it was)::

    ADD SNAPSHOT <name> DR_GROUP="\\Data Replication\\<group>"
    LS SNAPSHOT                                         list: one "\\Snapshots\\<name>" line each
    LS SNAPSHOT <name>                                  detail, "key ....: value" lines
    SET SNAPSHOT <name> PRESENT HOST="\\Hosts\\<host>"
    SET SNAPSHOT <name> UNPRESENT HOST="\\Hosts\\<host>"   refused while a domain there uses it
    DELETE SNAPSHOT <name>                              refused while presented

Snapshot detail fields: name, drgroup (the group's path or name), devices ("<group
device>=<snapshot device>, ..." or "none"), presentedto (comma list or "none").

Detail fields used (keys are normalised: case, spaces, dots and underscores do not
matter): name, operationalstate (good/attention/failed), sourcedestination
(source/destination), logstate (normal/logging/merging/copying), suspended (yes/no),
writemode, remotesystemname ("none" without a replica), replicationlag (seconds or
"unknown"), presentedto (comma list or "none").

Errors (UNVERIFIED): SSSU prints ``Error: <message>`` and exits non-zero. Because SSSU
is at heart an interactive tool, an ``Error:`` line is treated as failure even when the
exit status is 0.

Roles: source -> primary, destination -> secondary.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hosts.drivers.base import CommandResult, Runner
from hosts.drivers.storage import (
    GroupNotFound,
    GroupStatus,
    IntegrityReport,
    NotConsistent,
    Replication,
    Role,
    SnapshotNotFound,
    SnapshotStatus,
    SplitBrainRefused,
    StorageDriver,
    StorageError,
    check_name,
    integrity_report,
    snapshot_usable,
)

# --- the syntax block ------------------------------------------------------------------
SSSU_BINARY = "sssu"
SELECT_MANAGER = "SELECT MANAGER {manager} USERNAME={username}"
SELECT_SYSTEM = "SELECT SYSTEM {system}"
DR_GROUP_PATH = "\\Data Replication\\{group}"
HOST_PATH = "\\Hosts\\{host}"
LS_DR_GROUPS = "LS DR_GROUP"
LS_DR_GROUP = "LS DR_GROUP {path}"
LS_DR_GROUPS_FULL = "LS DR_GROUP FULL"  # every group's detail, each as LS DR_GROUP <path> prints it
SET_DR_GROUP = "SET DR_GROUP {path} {action}"
FAILOVER = "FAILOVER"
FAILOVER_FORCED = "FAILOVER FORCE"
SUSPEND = "SUSPEND"
RESUME = "RESUME"
REVERSE = "REVERSE"
PRESENT = "PRESENT HOST={host}"
UNPRESENT = "UNPRESENT HOST={host}"
SNAPSHOT_PATH = "\\Snapshots\\{name}"  # how LS SNAPSHOT lists a snapshot
ADD_SNAPSHOT = "ADD SNAPSHOT {name} DR_GROUP={path}"
LS_SNAPSHOTS = "LS SNAPSHOT"
LS_SNAPSHOT = "LS SNAPSHOT {name}"
SET_SNAPSHOT = "SET SNAPSHOT {name} {action}"
DELETE_SNAPSHOT = "DELETE SNAPSHOT {name}"
SNAPSHOT_FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "snapshotname"),
    "drgroup": ("drgroup", "sourcedrgroup", "drgroupname", "group"),
    "devices": ("devices", "snapshotdevices", "vdisks"),
    "presentedto": ("presentedto", "presentations", "presented"),
}
ERROR_LINE = re.compile(r"^\s*Error\s*:\s*(.*)$", re.IGNORECASE)
ROLE_WORDS: dict[str, Role] = {"source": "primary", "destination": "secondary"}
NO_VALUE = frozenset({"", "none", "-", "n/a", "unknown"})
# Normalised field name -> other spellings a site's SSSU might print (also normalised).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "operationalstate": ("operationalstate", "operstate", "state"),
    "sourcedestination": ("sourcedestination", "role", "drrole", "sourceordestination"),
    "logstate": ("logstate", "drlogstate"),
    "suspended": ("suspended", "suspend", "suspendstate"),
    "writemode": ("writemode",),
    "remotesystemname": ("remotesystemname", "remotesystem", "destinationsystem"),
    "replicationlag": ("replicationlag", "lag", "lagseconds", "replicationlagseconds"),
    "presentedto": ("presentedto", "presentations", "presented"),
}
# ----------------------------------------------------------------------------------------


def sssu_quote(value: str) -> str:
    """SSSU groups words with double quotes and has no escape: a quote cannot be sent."""
    if '"' in value or any(ch in value for ch in "\r\n\t"):
        raise StorageError(f"value not allowed in an SSSU command: {value!r}")
    return f'"{value}"'


def group_path(group: str) -> str:
    return sssu_quote(DR_GROUP_PATH.format(group=check_name(group, "DR group")))


def sssu_word(value: str) -> str:
    """A name as one SSSU word: quoted only when it has spaces (e.g. a system name)."""
    quoted = sssu_quote(value)
    return quoted if " " in value else value


def sssu_argv(
    *commands: str, manager: str, username: str, system: str, binary: str = SSSU_BINARY
) -> list[str]:
    """The argv for one SSSU session: select manager and system, then ``commands``."""
    return [
        binary,
        SELECT_MANAGER.format(manager=sssu_word(manager), username=sssu_word(username)),
        SELECT_SYSTEM.format(system=sssu_word(system)),
        *commands,
    ]


def set_group(group: str, action: str) -> str:
    return SET_DR_GROUP.format(path=group_path(group), action=action)


def host_word(host: str) -> str:
    return sssu_quote(HOST_PATH.format(host=check_name(host, "host name")))


def snapshot_word(name: str) -> str:
    return check_name(name, "snapshot name")  # boring by construction: no quoting needed


# --- parsers -----------------------------------------------------------------------------
_DETAIL_LINE = re.compile(r"^\s*([A-Za-z][\w .-]*?)\s*\.*\s*:\s*(.*?)\s*$")


def normalise_key(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def sssu_errors(result: CommandResult) -> list[str]:
    lines = (result.stdout + "\n" + result.stderr).splitlines()
    return [m.group(0).strip() for m in map(ERROR_LINE.match, lines) if m]


def parse_detail(text: str) -> dict[str, str]:
    """``key ....: value`` lines -> {canonical key: value}. Unknown keys are kept under their
    normalised name; the first occurrence of a key wins (later sections repeat names)."""
    raw: dict[str, str] = {}
    for line in text.splitlines():
        m = _DETAIL_LINE.match(line)
        if m and not ERROR_LINE.match(line):
            raw.setdefault(normalise_key(m.group(1)), m.group(2))
    fields = dict(raw)
    for canonical, aliases in FIELD_ALIASES.items():
        for alias in aliases:
            if alias in raw:
                fields[canonical] = raw[alias]
                break
    return fields


_DETAIL_HEADER = re.compile(r"^\s*\\Data Replication\\(?P<name>.+?) information:\s*$")


def parse_detail_blocks(text: str) -> dict[str, str]:
    """``LS DR_GROUP FULL`` -> {group name: its detail lines}: each group's section starts
    with its ``\\Data Replication\\<name> information:`` line."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        header = _DETAIL_HEADER.match(line)
        if header:
            current = blocks.setdefault(header.group("name"), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines) for name, lines in blocks.items()}


def parse_group_list(text: str) -> tuple[str, ...]:
    """DR group names from ``LS DR_GROUP``: lines carrying the DR group path prefix."""
    prefix = DR_GROUP_PATH.format(group="")
    names = []
    for line in text.splitlines():
        if prefix in line and "DR_GROUP" not in line.upper():
            name = line.split(prefix, 1)[1].strip().strip('"').strip()
            if name and name not in names:
                names.append(name)
    return tuple(names)


def parse_lag(value: str | None) -> float | None:
    """``2``, ``2.5 s``, ``00:00:02`` -> seconds; ``unknown`` and the like -> None."""
    if value is None or value.strip().lower() in NO_VALUE:
        return None
    text = value.strip().lower()
    if re.fullmatch(r"\d+(:\d{1,2}){1,2}", text):
        seconds = 0.0
        for part in text.split(":"):
            seconds = seconds * 60 + int(part)
        return seconds
    m = re.match(r"(\d+(?:\.\d+)?)", text)
    return float(m.group(1)) if m else None


def parse_hosts(value: str | None) -> tuple[str, ...]:
    if value is None or value.strip().lower() in NO_VALUE:
        return ()
    hosts = (h.strip().strip('"').rsplit("\\", 1)[-1] for h in value.split(","))
    return tuple(h for h in hosts if h)


def parse_snapshot_list(text: str) -> tuple[str, ...]:
    """Snapshot names from ``LS SNAPSHOT``: lines carrying the snapshot path prefix."""
    prefix = SNAPSHOT_PATH.format(name="")
    names = []
    for line in text.splitlines():
        entry = line.strip().strip('"')
        if entry.lower().startswith(prefix.lower()):  # not the echoed command: it has a prompt
            name = entry[len(prefix) :].strip()
            if name and name not in names:
                names.append(name)
    return tuple(names)


def parse_snapshot_devices(value: str | None) -> dict[str, str]:
    """``/dev/a=/dev/mapper/s-a, /dev/b=/dev/mapper/s-b`` -> {group device: snapshot device}."""
    if value is None or value.strip().lower() in NO_VALUE:
        return {}
    devices: dict[str, str] = {}
    for pair in value.split(","):
        source, sep, snap = pair.partition("=")
        if not sep or not source.strip() or not snap.strip():
            raise StorageError(
                f"cannot read snapshot devices {value!r}: expected 'device=snapshot device, ...'"
            )
        devices[source.strip()] = snap.strip()
    return devices


def snapshot_status_of(text: str) -> SnapshotStatus:
    """``LS SNAPSHOT <name>`` detail -> SnapshotStatus."""
    raw = parse_detail(text)
    fields = dict(raw)
    for canonical, aliases in SNAPSHOT_FIELD_ALIASES.items():
        for alias in aliases:
            if alias in raw:
                fields[canonical] = raw[alias]
                break
    missing = [key for key in ("name", "drgroup") if not fields.get(key, "").strip()]
    if missing:
        raise StorageError(f"SSSU snapshot detail has no {' or '.join(missing)} field")
    name = fields["name"].strip().strip('"').rsplit("\\", 1)[-1]
    group = fields["drgroup"].strip().strip('"').rsplit("\\", 1)[-1]
    return SnapshotStatus(
        name=name,
        group=group,
        devices=parse_snapshot_devices(fields.get("devices")),
        presented_to=parse_hosts(fields.get("presentedto")),
    )


def _word(fields: dict[str, str], key: str) -> str:
    return fields.get(key, "").strip().lower()


def replication_of(fields: dict[str, str]) -> Replication:
    if _word(fields, "remotesystemname") in NO_VALUE and "remotesystemname" in fields:
        return "none"
    if _word(fields, "suspended") in ("yes", "true", "suspended"):
        return "suspended"
    operational, log = _word(fields, "operationalstate"), _word(fields, "logstate")
    if operational == "failed":
        return "broken"
    if log in ("copying", "merging", "fullcopy"):
        return "syncing"
    if log == "logging":
        return "broken"  # writes are being logged, not replicated: link down or partner gone
    if log == "normal" and operational in ("good", "attention"):
        return "consistent"
    return "unknown"


def group_status(group: str, system: str, fields: dict[str, str]) -> GroupStatus:
    role = next((r for word, r in ROLE_WORDS.items() if word in _word(fields, "sourcedestination")), None)
    role = role or "unknown"
    replication = replication_of(fields)
    peer_role: Role = "unknown"
    if replication != "none" and role != "unknown":
        peer_role = "secondary" if role == "primary" else "primary"  # a DR group is a pair
    remote = fields.get("remotesystemname", "?")
    detail = (
        f"{system}: {fields.get('sourcedestination', '?')}, operationalstate {fields.get('operationalstate', '?')}, "
        f"logstate {fields.get('logstate', '?')}, suspended {fields.get('suspended', '?')}, "
        f"writemode {fields.get('writemode', '?')}, remote {remote}, lag {fields.get('replicationlag', '?')}"
    )
    return GroupStatus(
        group=group,
        role=role,
        replication=replication,
        lag_seconds=parse_lag(fields.get("replicationlag")),
        presented_to=parse_hosts(fields.get("presentedto")),
        peer_role=peer_role,
        detail=detail,
    )


# --- the driver --------------------------------------------------------------------------
class EvaDriver(StorageDriver):
    """Bound to one array (``system``) through SSSU on the management host ``runner`` reaches."""

    kind = "eva-ca"

    def __init__(
        self,
        runner: Runner,
        *,
        system: str,
        manager: str = "localhost",
        username: str = "drportal",
        sssu: str = SSSU_BINARY,
        timeout: float = 120.0,
        failover_timeout: float = 900.0,
    ) -> None:
        self.runner = runner
        self.system = system
        self.manager = manager
        self.username = username
        self.sssu = sssu
        self.timeout = timeout
        self.failover_timeout = failover_timeout

    def _run(self, command: str, *, timeout: float | None = None) -> CommandResult:
        argv = sssu_argv(
            command, manager=self.manager, username=self.username, system=self.system, binary=self.sssu
        )
        result = self.runner.run(argv, timeout=timeout or self.timeout)
        errors = sssu_errors(result)
        if errors or not result.ok:
            message = "; ".join(errors) or (
                result.stderr.strip() or f"sssu failed with exit status {result.exit_status}"
            )
            raise StorageError(message, result=result)
        return result

    def list_groups(self) -> tuple[str, ...]:
        return parse_group_list(self._run(LS_DR_GROUPS).stdout)

    def _fields(self, group: str) -> dict[str, str]:
        command = LS_DR_GROUP.format(path=group_path(group))  # refuses a bad name before any command
        try:
            result = self._run(command)
        except StorageError as exc:
            # The wording of "no such group" is unknown: ask the list instead.
            try:
                known = self.list_groups()
            except StorageError:
                raise exc from None
            if group not in known:
                raise GroupNotFound(
                    f"DR group {group} not found on {self.system}: {exc}", result=exc.result
                ) from exc
            raise
        fields = parse_detail(result.stdout)
        if "sourcedestination" not in fields:
            raise StorageError(f"SSSU detail of {group} has no source/destination field", result=result)
        return fields

    def status(self, group: str) -> GroupStatus:
        return group_status(group, self.system, self._fields(group))

    bulk_status = True

    def statuses(self, groups: Sequence[str]) -> dict[str, GroupStatus]:
        """One ``LS DR_GROUP FULL`` for all of them; a group it does not show is asked on
        its own (which says "not found" the way ``status`` does)."""
        found = {}
        for name, block in parse_detail_blocks(self._run(LS_DR_GROUPS_FULL).stdout).items():
            fields = parse_detail(block)
            if "sourcedestination" in fields:
                found[name] = group_status(name, self.system, fields)
        return {group: found[group] if group in found else self.status(group) for group in groups}

    def promote(self, group: str, *, force: bool = False, current: GroupStatus | None = None) -> GroupStatus:
        current = current or self.status(group)
        if current.role == "primary":
            return current
        if not force and current.replication in ("broken", "none", "syncing", "unknown"):
            raise NotConsistent(
                f"DR group {group} on {self.system} is not a trustworthy replica "
                f"(replication {current.replication}: {current.detail}); failing over needs force"
            )
        try:
            self._run(set_group(group, FAILOVER_FORCED if force else FAILOVER), timeout=self.failover_timeout)
        except StorageError as exc:
            fields = self._fields(group)
            after = group_status(group, self.system, fields)
            # The array's wording is UNVERIFIED, so classify by state, not text: the pre-check
            # above ruled out an untrustworthy replica, so a refusal while the partner still
            # answers as a healthy source is the split-brain guard (source in use).
            if after.role == "secondary" and _word(fields, "operationalstate") == "good":
                raise SplitBrainRefused(
                    f"{exc.message} (DR group {group}: the source copy is still active; "
                    "stop its writers before failing over)",
                    result=exc.result,
                ) from None
            raise
        return self.status(group)

    def present(self, group: str, host: str, *, current: GroupStatus | None = None) -> GroupStatus:
        check_name(host, "host name")
        current = current or self.status(group)
        if host in current.presented_to:
            return current
        if current.role != "primary":
            raise StorageError(
                f"refusing to present DR group {group} on {self.system} to {host}: "
                f"this copy is {current.role}, fail over first"
            )
        self._run(set_group(group, PRESENT.format(host=host_word(host))))
        return self.status(group)

    def demote(self, group: str) -> GroupStatus:
        """EVA swaps roles in one coordinated FAILOVER at the destination, so there is no
        separate demote: this fences the local source instead (unpresents it from every
        host). The role changes when the other site is promoted."""
        current = self.status(group)
        if current.role != "primary":
            return current
        for host in current.presented_to:
            self._run(set_group(group, UNPRESENT.format(host=host_word(host))))
        return self.status(group)

    def suspend(self, group: str) -> GroupStatus:
        if self.status(group).replication != "suspended":
            self._run(set_group(group, SUSPEND))
        return self.status(group)

    def resume(self, group: str) -> GroupStatus:
        if self.status(group).replication == "suspended":
            self._run(set_group(group, RESUME))
        return self.status(group)

    def reverse(self, group: str) -> GroupStatus:
        current = self.status(group)
        if current.role != "primary":
            raise StorageError(
                f"reverse DR group {group} from the source: the copy on {self.system} is {current.role}"
            )
        if current.replication in ("consistent", "syncing"):
            return current
        if current.replication == "none":
            raise StorageError(f"DR group {group} has no replica to reverse to")
        self._run(set_group(group, REVERSE), timeout=self.failover_timeout)
        return self.status(group)

    def integrity_check(self, group: str) -> IntegrityReport:
        fields = self._fields(group)
        current = group_status(group, self.system, fields)
        problems: list[str] = []
        notes: list[str] = [current.detail]
        if current.role != "primary":
            problems.append(f"the copy of {group} on {self.system} is {current.role}, not the source")
        if _word(fields, "operationalstate") == "failed":
            problems.append(f"DR group {group} on {self.system} is in operational state failed")
        if current.replication == "broken":
            notes.append(
                f"replication to {fields.get('remotesystemname', 'the partner')} is not running; "
                "reverse it once the partner is back (failback)"
            )
        if not current.presented_to:
            notes.append(f"{group} is not presented to any host on {self.system}")
        return integrity_report(group, problems, notes)

    # -- drills -------------------------------------------------------------------------

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
        fields = self._fields(group)
        current = group_status(group, self.system, fields)
        why = snapshot_usable(current)
        if why is None and _word(fields, "operationalstate") == "failed":
            why = "this copy is in operational state failed"
        if why is not None:
            raise NotConsistent(
                f"refusing to snapshot DR group {group} on {self.system}: {why}, so a snapshot "
                f"would not be a consistent image ({current.detail})"
            )
        self._run(ADD_SNAPSHOT.format(name=snapshot_word(name), path=group_path(group)))
        created = self.snapshot_status(name)
        if created is None:
            raise StorageError(f"SSSU accepted ADD SNAPSHOT {name} on {self.system}, but it does not list it")
        return created

    def list_snapshots(self) -> tuple[str, ...]:
        return parse_snapshot_list(self._run(LS_SNAPSHOTS).stdout)

    def snapshot_status(self, name: str) -> SnapshotStatus | None:
        command = LS_SNAPSHOT.format(name=snapshot_word(name))
        try:
            result = self._run(command)
        except StorageError as exc:
            # As for groups, the wording of "no such snapshot" is unknown: ask the list.
            try:
                known = self.list_snapshots()
            except StorageError:
                raise exc from None
            if name not in known:
                return None
            raise
        try:
            return snapshot_status_of(result.stdout)
        except StorageError as exc:
            raise StorageError(f"snapshot {name} on {self.system}: {exc.message}", result=result) from None

    def _require_snapshot(self, name: str) -> SnapshotStatus:
        current = self.snapshot_status(name)
        if current is None:
            raise SnapshotNotFound(f"snapshot {name} does not exist on {self.system}")
        return current

    def present_snapshot(self, name: str, host: str) -> SnapshotStatus:
        check_name(host, "host name")
        current = self._require_snapshot(name)
        if host in current.presented_to:
            return current
        self._run(SET_SNAPSHOT.format(name=snapshot_word(name), action=PRESENT.format(host=host_word(host))))
        return self._require_snapshot(name)

    def unpresent_snapshot(self, name: str, host: str) -> SnapshotStatus:
        check_name(host, "host name")
        current = self._require_snapshot(name)
        if host not in current.presented_to:
            return current
        self._run(
            SET_SNAPSHOT.format(name=snapshot_word(name), action=UNPRESENT.format(host=host_word(host)))
        )
        return self._require_snapshot(name)

    def delete_snapshot(self, name: str) -> None:
        current = self.snapshot_status(name)
        if current is None:
            return
        if current.presented_to:
            raise StorageError(
                f"refusing to delete snapshot {name} on {self.system}: it is still presented to "
                f"{', '.join(current.presented_to)}; unpresent it first"
            )
        self._run(DELETE_SNAPSHOT.format(name=snapshot_word(name)))
