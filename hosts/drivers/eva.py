"""HP EVA Continuous Access through SSSU (HP Command View EVA) on a management host.

The words drportal sends and the fields it reads are in hosts/drivers/eva_syntax.py (the
syntax block, the one place a site adapts); the drill snapshots in eva_drills.py; this
module says why each word and runs them. Every word is a word of the real SSSU 8.0 keyword table
(hosts/lab/data/sssu-8.0-keywords.txt; tests/storage/test_sssu_syntax.py fails otherwise).
Where a word's grammar or an output field is not confirmed by a public source it is
marked UNVERIFIED below; a site whose SSSU differs edits this block and nothing else.

Invocation: one SSH command on the management host, each SSSU command one argv word:

    sssu 'FILE "<login file>"' 'SET OPTIONS ON_ERROR=EXIT_ON_ERROR' 'SELECT SYSTEM "<system>"' <commands>

Credentials: SSSU needs ``PASSWORD=`` on ``SELECT MANAGER`` (every public script passes it
there: check_eva.sssu, check_eva.py, opensvc). drportal never holds the password. The
management host keeps a root-only (0600) SSSU script per array, named in the inventory
(StorageArray.sssu_login_file), with the one line
``SELECT MANAGER <manager> USERNAME=<user> PASSWORD=<password>``; drportal runs it with
SSSU's ``FILE`` command, so the password is on no command line, in no ``ps`` and in no
log of drportal's (the public StorageLX module runs its SSSU scripts the same way,
``sssu "file <script>"``). Should SSSU echo the file's lines, the SSH layer masks any
``PASSWORD=`` before a result reaches a log or the engine (hosts/drivers/base.py).

What the words do (HP Continuous Access EVA Administrator Guide T3687-96043; the
handler names of the SSSU binary: set_dr_group_failover, _suspend, _nosuspend,
_forcefullcopy, _access_read_only, _access_present_only, _noaccess):
- FAILOVER, sent to the destination array, makes it the source and the old source the
  destination (planned, or unplanned while the source array is gone: the same word).
  There is no forced failover: a destination whose full copy runs cannot fail over.
- There is no REVERSE: the failover reversed the direction; once the link is up the
  array merges its log to the new destination or full-copies a diverged one by itself.
  ``reverse()`` checks that this happens, resumes a suspended group (NOSUSPEND) and
  starts a full copy (FORCEFULLCOPY) where the array waits for one.
- Presentation is per virtual disk: ADD LUN ... VDISK= HOST= and DELETE LUN. A
  destination copy is no host's to write; its host access is the group's ACCESSMODE.
- Drill snapshots are snapshots of the DESTINATION's virtual disks (ADD SNAPSHOT ...
  VDISK=); a snapshot is a virtual disk, presented and deleted as one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hosts.drivers.base import CommandResult, Runner, redact_secrets
from hosts.drivers.eva_drills import EvaDrills
from hosts.drivers.eva_output import Answer, Block, SssuAnswerError, need, split_answers
from hosts.drivers.eva_syntax import (  # noqa: F401  (the block, re-exported: sites and tests read eva.NAME)
    ADD_LUN,
    ADD_SNAPSHOT,
    COPYING_WORDS,
    DELETE_LUN,
    DELETE_SNAPSHOT,
    DESTINATION_ACCESS,
    DEVICE_COMMENT,
    DOM0_DEVICE,
    ERROR_LINE,
    FAILOVER,
    FULL_COPY,
    GROUP_LOG,
    GROUP_MEMBER,
    GROUP_PATH,
    GROUP_STATE,
    GROUP_SUSPEND,
    HOST_PATH,
    LOGGING_WORDS,
    LOGIN,
    LS_DR_GROUP,
    LS_DR_GROUPS,
    LS_DR_GROUPS_FULL,
    LS_SNAPSHOTS,
    LS_SNAPSHOTS_FULL,
    LS_VDISK,
    LS_VDISKS_FULL,
    NO_HOST_ACCESS,
    NO_VALUE,
    ON_ERROR,
    OVERFLOW_WORD,
    PRESENTATION,
    PRESENTED_HOST,
    PRESENTED_LUN,
    PROMPT_NO_SYSTEM,
    RESUME,
    ROLE_WORDS,
    SELECT_SYSTEM,
    SNAPSHOT_VDISK_NAME,
    SSSU_BINARY,
    SUSPEND,
    SUSPENDED_WORDS,
    VDISK_COMMENT,
    VDISK_DRM,
    VDISK_GROUP,
    VDISK_NAME,
    VDISK_ROOT,
    VDISK_WWID,
    GroupRead,
    Vdisk,
    group_path,
    last_part,
    sssu_quote,
    vdisk_of,
)
from hosts.drivers.storage import (
    GroupNotFound,
    GroupStatus,
    IntegrityReport,
    NotConsistent,
    Replication,
    Role,
    SplitBrainRefused,
    StorageDriver,
    StorageError,
    check_name,
    integrity_report,
)

# Member vdisks seen per (management host, system, group), to read them in the same SSSU
# call as the group. Only a hint: the group's own member list is checked on every read.
_MEMBER_HINTS: dict[tuple[str, str, str], tuple[str, ...]] = {}


def forget_hints() -> None:
    _MEMBER_HINTS.clear()


PEER_ROLE: dict[Role, Role] = {"primary": "secondary", "secondary": "primary", "unknown": "unknown"}


def replication_of(fields: dict[str, str]) -> Replication:
    if fields[GROUP_SUSPEND].lower() in SUSPENDED_WORDS:
        return "suspended"
    operational, log = fields[GROUP_STATE].lower(), fields[GROUP_LOG].lower()
    if operational == "failed":
        return "broken"
    if log in COPYING_WORDS:
        return "syncing"
    if log in LOGGING_WORDS:
        return "broken"  # writes are logged, not replicated: link down or partner gone
    if log == "normal" and operational in ("good", "attention"):
        return "consistent"
    return "unknown"


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
    found = re.match(r"(\d+(?:\.\d+)?)", text)
    return float(found.group(1)) if found else None


def group_read(group: str, system: str, block: Block, answer: Answer, vdisks: dict[str, Vdisk]) -> GroupRead:
    """A DR group from its block and its members' blocks (``vdisks`` by lower-case path)."""
    for key, what in (
        (GROUP_STATE, "good, attention or failed"),
        (GROUP_LOG, "normal, logging, merging, fullcopy or overflow"),
        (GROUP_SUSPEND, "suspended or notsuspended"),
    ):
        need(block, key, answer, what)
    paths = [record.get(VDISK_NAME, "").strip() for record in block.records.get(GROUP_MEMBER, ())]
    if not paths or not all(paths):
        raise SssuAnswerError(
            f"{system}: the answer to {answer.command!r} (line {block.line}, {block.path}) lists no "
            f"{GROUP_MEMBER} records with an {VDISK_NAME}: expected the group's virtual disks"
        )
    members = tuple(vdisks[p.lower()] for p in paths)
    modes = {m.drm for m in members}
    role: Role = "unknown"
    if len(modes) == 1 and next(iter(modes)) in ROLE_WORDS:
        role = ROLE_WORDS[next(iter(modes))]
    elif len(modes) > 1:
        raise StorageError(
            f"DR group {group} on {system}: its virtual disks disagree on drmmode ({sorted(modes)})"
        )
    fields = block.fields
    replication = replication_of(fields)
    presented = set.intersection(*(m.hosts for m in members))
    partial = set.union(*(m.hosts for m in members)) - presented
    detail = (
        f"{system}: {members[0].drm or '?'}, operationalstate {fields[GROUP_STATE]}, logstate {fields[GROUP_LOG]}, "
        f"suspendstate {fields[GROUP_SUSPEND]}, writemode {fields.get('writemode', '?')}, "
        f"accessmode {fields.get('accessmode', '?')}, remote {fields.get('remotesystemname', '?')}, "
        f"lag {fields.get('replicationlag', '?')}, {len(members)} vdisk(s)"
        + (f", partly presented to {', '.join(sorted(partial))}" if partial else "")
    )
    status = GroupStatus(
        group=group,
        role=role,
        replication=replication,
        lag_seconds=parse_lag(fields.get("replicationlag")),
        presented_to=tuple(sorted(presented)),
        peer_role=PEER_ROLE[role],  # a DR group is a pair
        detail=detail,
        members=tuple(m.path for m in members),
    )
    return GroupRead(fields, members, status)


# --- the driver ------------------------------------------------------------------------------


class EvaDriver(EvaDrills, StorageDriver):
    """Bound to one array (``system``) through SSSU on the management host ``runner`` reaches."""

    kind = "eva-ca"
    bulk_status = True

    def __init__(
        self,
        runner: Runner,
        *,
        system: str,
        login_file: str,
        sssu: str = SSSU_BINARY,
        timeout: float = 120.0,
        failover_timeout: float = 900.0,
    ) -> None:
        if not login_file or not login_file.startswith("/"):
            raise StorageError(
                f"array {system}: no SSSU login file (inventory field sssu_login_file): give the absolute "
                "path, on the management host, of the root-only script holding SELECT MANAGER ... PASSWORD=..."
            )
        self.runner = runner
        self.system = sssu_quote(system)
        self.login_file = sssu_quote(login_file)
        self.sssu = sssu
        self.timeout = timeout
        self.failover_timeout = failover_timeout

    # -- one SSSU call ------------------------------------------------------------------

    def _session(self, *commands: str, timeout: float | None = None) -> list[Answer]:
        """Run ``commands`` in one SSSU call; the answer to each, or a StorageError naming
        the array, the command and SSSU's words."""
        head = [LOGIN.format(login_file=self.login_file), ON_ERROR, SELECT_SYSTEM.format(system=self.system)]
        argv = [self.sssu, *head, *commands]
        result = self.runner.run(argv, timeout=timeout or self.timeout)
        text = redact_secrets(result.stdout)
        # Every line is looked at only in a text that has the word (a listing of 5,000 groups
        # is 165,000 lines).
        errors = (
            [m.group(0).strip() for m in map(ERROR_LINE.match, text.splitlines()) if m]
            if "Error" in text
            else []
        )
        errors += [line.strip() for line in redact_secrets(result.stderr).splitlines() if line.strip()]
        if errors or not result.ok:
            raise StorageError(self._failure(text, commands, errors, result), result=result)
        return split_answers(text, list(commands), self.system, (PROMPT_NO_SYSTEM, self.system))

    def _failure(self, text: str, commands: Sequence[str], errors: list[str], result: CommandResult) -> str:
        """SSSU's words, after the command they answer (the last echo before the first error)."""
        prompts = "|".join(re.escape(p) for p in (PROMPT_NO_SYSTEM, self.system))
        prompt = re.compile(rf"^(?:{prompts})> ?(.*)$")
        last = None
        for line in text.splitlines():
            echo = prompt.match(line)
            if echo:
                last = echo.group(1).strip()
            elif ERROR_LINE.match(line):
                break
        said = "; ".join(errors) or f"sssu exited with status {result.exit_status}"
        return f"{self.system}: {last}: {said}" if last else f"{self.system}: {said}"

    def _vdisks(self, answers: Sequence[Answer]) -> dict[str, Vdisk]:
        found = {}
        for answer in answers:
            for block in answer.blocks():
                vdisk = vdisk_of(block, answer)
                found[vdisk.path.lower()] = vdisk
        return found

    # -- groups ---------------------------------------------------------------------------

    def _hint_key(self, group: str) -> tuple[str, str, str]:
        return (getattr(self.runner, "name", ""), self.system, group)

    def _read(
        self, group: str, *before: str, hint: Sequence[str] = (), timeout: float | None = None
    ) -> GroupRead:
        """``before`` (actions) and then the group and its vdisks, in one SSSU call when the
        member vdisks are known (``hint``, or seen before), else two."""
        path = group_path(group)
        hint = tuple(hint) or _MEMBER_HINTS.get(self._hint_key(group), ())
        reads = [LS_DR_GROUP.format(group=path), *(LS_VDISK.format(vdisk=sssu_quote(p)) for p in hint)]
        try:
            answers = self._session(*before, *reads, timeout=timeout)
        except StorageError as exc:
            if not before:
                self._not_found(group, exc)
            raise
        answer = answers[len(before)]
        blocks = [b for b in answer.blocks() if b.path.lower() == path.lower()]
        if len(blocks) != 1:
            raise SssuAnswerError(
                f"{self.system}: the answer to {answer.command!r} has no block {path} information:"
            )
        vdisks = self._vdisks(answers[len(before) + 1 :])
        members = [r.get(VDISK_NAME, "").strip() for r in blocks[0].records.get(GROUP_MEMBER, ())]
        missing = [m for m in members if m and m.lower() not in vdisks]
        if missing:
            vdisks |= self._vdisks(self._session(*(LS_VDISK.format(vdisk=sssu_quote(m)) for m in missing)))
        read = group_read(group, self.system, blocks[0], answer, vdisks)
        _MEMBER_HINTS[self._hint_key(group)] = read.status.members
        if len(_MEMBER_HINTS) > 20000:  # a bound, not a policy: hints are cheap to relearn
            _MEMBER_HINTS.clear()
        return read

    def _not_found(self, group: str, exc: StorageError) -> None:
        """The wording of "no such group" is unknown: ask the list instead."""
        try:
            known = self.list_groups()
        except StorageError:
            return
        if group not in known:
            raise GroupNotFound(
                f"DR group {group} not found on {self.system}: {exc}", result=exc.result
            ) from exc

    def list_groups(self) -> tuple[str, ...]:
        (answer,) = self._session(LS_DR_GROUPS)
        return tuple(dict.fromkeys(last_part(p) for p in answer.listing(GROUP_PATH.format(group=""))))

    def status(self, group: str) -> GroupStatus:
        return self._read(group).status

    def statuses(
        self, groups: Sequence[str], *, errors: dict[str, StorageError] | None = None
    ) -> dict[str, GroupStatus]:
        """One SSSU call for all of them (every group and every vdisk of the array); a group
        it does not show is asked on its own (which says "not found" the way ``status``
        does), its error raised or, given ``errors``, put there."""
        for group in groups:
            group_path(group)  # refuse a bad name before anything is sent
        groups_answer, vdisks_answer = self._session(LS_DR_GROUPS_FULL, LS_VDISKS_FULL)
        vdisks = self._vdisks([vdisks_answer])
        wanted = set(groups)  # a plan preview asks for thousands: not a list scan per block
        found = {}
        for block in groups_answer.blocks():
            name = last_part(block.path)
            if name in wanted:
                found[name] = group_read(name, self.system, block, groups_answer, vdisks).status
        missing = [group for group in groups if group not in found]
        if missing:
            found |= super().statuses(missing, errors=errors)
        return {group: found[group] for group in groups if group in found}

    def remember_members(self, group: str, members: Sequence[str]) -> None:
        if members:
            _MEMBER_HINTS.setdefault(self._hint_key(group), tuple(members))

    def promote(self, group: str, *, force: bool = False, current: GroupStatus | None = None) -> GroupStatus:
        return self._failover(group, force=force, current=current)

    def promote_and_present(
        self, group: str, host: str, *, force: bool = False, current: GroupStatus | None = None
    ) -> GroupStatus:
        """FAILOVER and the ADD LUN of every member vdisk in one SSSU call, which reads the
        group again (the model's one failover call). Should the adds be refused after the
        failover went through (a vdisk presented already by an earlier attempt), ``present``
        reads and adds only what is missing."""
        check_name(host, "host name")
        return self._failover(group, force=force, current=current, present_to=host)

    def _failover(
        self, group: str, *, force: bool, current: GroupStatus | None, present_to: str | None = None
    ) -> GroupStatus:
        current = current or self.status(group)
        if current.role == "primary":
            if present_to and present_to not in current.presented_to:
                return self.present(group, present_to, current=current)
            return current
        if not force and current.replication in ("broken", "none", "syncing", "unknown"):
            raise NotConsistent(
                f"DR group {group} on {self.system} is not a trustworthy replica "
                f"(replication {current.replication}: {current.detail}); failing over needs force"
            )
        path = group_path(group)
        # Presented already (a failback: the old source's copy kept its LUNs): FAILOVER only.
        adds = (
            self._adds(current.members, present_to)
            if present_to and current.members and present_to not in current.presented_to
            else []
        )
        try:
            read = self._read(
                group, FAILOVER.format(group=path), *adds, hint=current.members, timeout=self.failover_timeout
            )
        except StorageError as exc:
            after = self._read(group)
            if adds and after.status.role == "primary":
                # The failover went through, an add was refused: present what is missing.
                return self.present(group, present_to or "", current=after.status)
            # Classified by state, not by the array's words: the pre-check ruled out an
            # untrustworthy replica, so a refusal while the other copy answers as a healthy
            # source is the split-brain guard (the source is in use).
            healthy = (
                after.fields[GROUP_STATE].lower() == "good" and after.fields[GROUP_LOG].lower() == "normal"
            )
            if after.status.role == "secondary" and healthy:
                raise SplitBrainRefused(
                    f"{exc.message} (DR group {group}: the source copy is still active; stop its writers "
                    "before failing over)",
                    result=exc.result,
                ) from None
            raise
        if present_to and present_to not in read.status.presented_to:
            return self.present(group, present_to, current=read.status)
        return read.status

    def present(self, group: str, host: str, *, current: GroupStatus | None = None) -> GroupStatus:
        check_name(host, "host name")
        if (
            current is not None
            and current.role == "primary"
            and current.members
            and host not in current.presented_to
        ):
            # The caller has just read it (a failover's promote): present every vdisk in the
            # same call that reads the group again. Should one be presented already (a half
            # done earlier attempt), the array refuses; then read and add only what is missing.
            try:
                return self._read(group, *self._adds(current.members, host), hint=current.members).status
            except GroupNotFound:
                raise
            except StorageError:
                pass
        read = self._read(group, hint=current.members if current else ())
        if read.status.role != "primary":
            raise StorageError(
                f"refusing to present DR group {group} on {self.system} to {host}: "
                f"this copy is {read.status.role}, fail over first"
            )
        adds = self._adds([m.path for m in read.members if host not in m.hosts], host)
        return self._read(group, *adds, hint=read.status.members).status if adds else read.status

    @staticmethod
    def _adds(vdisks: Sequence[str], host: str) -> list[str]:
        return [ADD_LUN.format(vdisk=sssu_quote(path), host=HOST_PATH.format(host=host)) for path in vdisks]

    def demote(self, group: str) -> GroupStatus:
        """EVA swaps roles in one FAILOVER at the destination, so there is no separate demote:
        this fences the local source instead (deletes every LUN of its vdisks). The role
        changes when the other site fails over."""
        read = self._read(group)
        if read.status.role != "primary":
            return read.status
        deletes = [
            DELETE_LUN.format(host=sssu_quote(host), lun=lun)
            for m in read.members
            for host, lun in m.presentations
        ]
        return self._read(group, *deletes, hint=read.status.members).status if deletes else read.status

    def suspend(self, group: str) -> GroupStatus:
        read = self._read(group)
        if read.status.replication == "suspended":
            return read.status
        return self._read(group, SUSPEND.format(group=group_path(group)), hint=read.status.members).status

    def resume(self, group: str) -> GroupStatus:
        read = self._read(group)
        if read.status.replication != "suspended":
            return read.status
        return self._read(group, RESUME.format(group=group_path(group)), hint=read.status.members).status

    def reverse(self, group: str) -> GroupStatus:
        """After a failover this copy is the source already (FAILOVER swapped the roles):
        check that it replicates back to the old source, resuming a suspended group or
        starting the full copy the array waits for, and take host access away from the
        destination copy (it may still be presented to its dom0s from before the disaster)."""
        read = self._read(group)
        current, fields = read.status, read.fields
        path = group_path(group)
        if current.role != "primary":
            raise StorageError(
                f"DR group {group}: replicate back from the source; the copy on {self.system} is {current.role}"
            )
        actions = []
        if fields.get("accessmode", NO_HOST_ACCESS).upper() != NO_HOST_ACCESS:
            actions.append(DESTINATION_ACCESS.format(group=path, mode=NO_HOST_ACCESS))
        if fields[GROUP_LOG].lower() == OVERFLOW_WORD:
            actions.append(FULL_COPY.format(group=path))
        elif current.replication == "suspended":
            actions.append(RESUME.format(group=path))
        elif current.replication == "broken":
            raise StorageError(
                f"DR group {group} on {self.system} is not replicating to {fields.get('remotesystemname', 'its partner')} "
                f"yet ({current.detail}): the array copies back by itself once the link is up; Retry then"
            )
        if actions:
            return self._read(group, *actions, hint=current.members, timeout=self.failover_timeout).status
        return current

    def integrity_check(self, group: str) -> IntegrityReport:
        read = self._read(group)
        current = read.status
        problems: list[str] = []
        notes: list[str] = [current.detail]
        if current.role != "primary":
            problems.append(f"the copy of {group} on {self.system} is {current.role}, not the source")
        if read.fields[GROUP_STATE].lower() == "failed":
            problems.append(f"DR group {group} on {self.system} is in operational state failed")
        if current.replication == "broken":
            notes.append(
                f"replication to {read.fields.get('remotesystemname', 'the partner')} is not running; "
                "the array copies back once the partner is back (failback)"
            )
        if not current.presented_to:
            notes.append(f"{group} is not presented to any host on {self.system}")
        return integrity_report(group, problems, notes)
