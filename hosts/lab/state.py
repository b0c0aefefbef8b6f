"""The lab's state and journal: one JSON file and one JSON-lines file in the lab directory.

Several processes share them (the SSH server, ``manage.py lab fault ...``, tests), so every
write happens under an ``flock`` on ``state.lock`` and the state file is replaced
atomically (tmp + ``os.replace``): a reader that opens ``state.json`` without the lock
always sees one whole version. No fsync: the lab is a simulator, and a power cut losing
its last write is harmless, while fsyncing every command would slow a 50-host benchmark.

Every command the lab serves is a transaction, so a transaction must cost little even for
a 500-VM state (~750 kB): the store keeps, per shard (one host, one group, one host's
faults, one VM's services; or a small top-level key), the parsed state and its JSON text.
A commit compares shard by shard, re-encodes only the shards that changed and writes the
file from the cached pieces; the text is byte for byte what ``json.dumps`` would write.

Layout of a lab directory::

    state.json      the lab state (schema in hosts/lab/tools/base.py), compact JSON with
                    "revision" first (bumped on every change); `python -m json.tool` to read
    state.lock      flock target; empty
    journal.jsonl   one line per command received: seq, time, host, command, exit_status, seconds, notes
    server.json     pid/port of the running server (written by hosts/lab/server.py)
    keys/           host keys, the client key pair, authorized_keys (hosts/lab/keys.py)
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from hosts import reference
from hosts.lab.tools import eva_model

_REPO_DIR = Path(__file__).resolve().parents[2]
_REVISION_HEADER = re.compile(rb'^\{\s*"revision":\s*(\d+)')
_UUID_NAMESPACE = uuid.UUID("6f1d8a52-3c1e-4a8e-9a57-2d9f0c7f4b11")


def default_lab_dir() -> Path:
    return Path(os.environ.get("DRPORTAL_LAB_DIR") or _REPO_DIR / "var" / "lab")


# The lab's SSSU account. Its password is only ever in the array host's login file (run
# with SSSU's FILE) and in what sssu answers; never on a command line or in the journal.
LAB_SSSU_USER = "drportal"
LAB_SSSU_PASSWORD = "lab-sssu-7Qm2-not-secret"


def eva_array_host(*, site: str, address: str, system: str) -> dict:
    """An EVA array host of the lab: its own management host with the login script."""
    return {
        "kind": "array",
        "site": site,
        "address": address,
        "array_kind": "eva-ca",
        "system": system,
        "files": {
            reference.sssu_login_file(system): (
                f"SELECT MANAGER localhost USERNAME={LAB_SSSU_USER} PASSWORD={LAB_SSSU_PASSWORD}\n"
            )
        },
        "sssu_accounts": {LAB_SSSU_USER: LAB_SSSU_PASSWORD},
        "luns": {},
    }


def add_eva_group(
    state: dict,
    name: str,
    *,
    devices: list[str],
    sides: dict[str, str],
    presented_to: list[str],
    mode: str = "async",
) -> dict:
    """An EVA group (``sides``: array -> role) whose source copy is presented to
    ``presented_to``, one LUN per vdisk."""
    group = state["groups"][name] = eva_model.eva_group(devices=devices, sides=sides, group=name, mode=mode)
    source = next(array for array, role in sides.items() if role == "primary")
    for host in presented_to:
        for vdisk in group["sides"][source]["vdisks"]:
            eva_model.add_lun(state, source, host, vdisk["name"])
    return group


def default_faults() -> dict:
    return {"mode": "up", "slow_seconds": 0.0, "fail_next": None, "key_generation": 0}


class LabStore:
    """The lab state of one lab directory, shared safely between threads and processes.

    ``flock`` locks belong to an open file description, so every acquisition opens the
    lock file anew: two threads of one process then exclude each other exactly like two
    processes do. Re-entrant per thread (the server journals inside its transaction)."""

    def __init__(self, lab_dir: str | os.PathLike[str] | None = None) -> None:
        self.lab_dir = Path(lab_dir) if lab_dir is not None else default_lab_dir()
        self.lab_dir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.lab_dir / "state.json"
        self.lock_path = self.lab_dir / "state.lock"
        self.journal_path = self.lab_dir / "journal.jsonl"
        self._local = threading.local()
        self._cache_lock = threading.Lock()
        self._cache: tuple[int, dict] | None = None  # snapshot(): shared, read-only
        self._image: _Image | None = None  # the last revision this store read or wrote; see _Image
        self._prior: _Image | None = None  # the one before, while its successor is being written
        self._working: dict | None = None  # what transactions mutate; equal to _image.state
        self._journal_tail: tuple[int, int, int] | None = None  # (inode, size, last seq)

    # -- locking ------------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        if getattr(self._local, "depth", 0):
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._local.depth = 1
            try:
                yield
            finally:
                self._local.depth = 0
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    # -- state --------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[dict]:
        """``with store.transaction() as state:`` mutate ``state`` in place; it is saved
        when the block ends without an exception, and discarded otherwise.

        The parsed state is kept between transactions while the revision on disk says
        nobody else wrote, with an immutable twin (``_Image``) to tell which shards the
        block changed: a read-only transaction costs one comparison, a write re-encodes
        only what it changed."""
        with self.locked():
            image, working = self._current_locked()
            _untouch(working)
            try:
                yield working
            except BaseException:
                self._image = self._working = None  # ``working`` may be half-changed; disk is the truth
                raise
            changes = image.changes(working)
            if not changes:
                return
            try:
                successor = image.successor(working, changes)
                # Published before the file: os.replace lets other threads run, and a
                # snapshot() that finds the new revision on disk must find its twin here
                # too, or it parses the whole file again (a quarter of the lab's CPU at
                # 500 VMs). One that still finds the old revision gets it from its cache.
                self._prior, self._image = image, successor
                self._write_locked(successor.text)
            except BaseException:
                self._image = self._working = None
                raise
            working["revision"] = successor.revision

    def _current_locked(self) -> tuple[_Image, dict]:
        image, working = self._image, self._working
        if image is not None and working is not None and image.revision == self._disk_revision_locked():
            return image, working
        self._image = self._working = None
        text = self._load_text_locked()
        image = _Image.parse(text)
        working = json.loads(text)
        for key in _SHARDED:
            if isinstance(working.get(key), dict):
                working[key] = _Tracked(working[key])
        self._image, self._working = image, working
        return image, working

    def _disk_revision_locked(self) -> int | None:
        try:
            with open(self.state_path, "rb") as handle:
                match = _REVISION_HEADER.match(handle.read(64))
        except FileNotFoundError:
            return None
        return int(match.group(1)) if match else None

    def read(self) -> dict:
        """A consistent snapshot, private to the caller (mutating it changes nothing)."""
        try:
            return json.loads(self.state_path.read_bytes())
        except FileNotFoundError:
            with self.locked():
                return json.loads(self._load_text_locked())

    def snapshot(self) -> dict:
        """Like ``read`` but shared and cached by revision: only the first bytes of the
        file are read while nothing changed. READ-ONLY: never mutate the result."""
        try:
            with open(self.state_path, "rb") as handle:
                match = _REVISION_HEADER.match(handle.read(64))
                revision = int(match.group(1)) if match else -1
                with self._cache_lock:
                    if revision >= 0 and self._cache is not None and self._cache[0] == revision:
                        return self._cache[1]
                twin = next(
                    (i for i in (self._image, self._prior) if i is not None and i.revision == revision), None
                )
                if revision >= 0 and twin is not None:
                    # This store wrote (or read) that revision: its twin is immutable, share it.
                    state = twin.state
                else:
                    handle.seek(0)
                    state = json.loads(handle.read())
        except FileNotFoundError:
            state = self.read()
            revision = int(state.get("revision", -1))
        with self._cache_lock:
            self._cache = (revision, state)
        return state

    def replace(self, state: dict) -> None:
        """Replace the whole state (seeding, reset), keeping the revision increasing."""
        with self.locked():
            self._image = self._working = None
            self._write_locked(_dumps(state, (self._disk_revision_locked() or 0) + 1))

    def _load_text_locked(self) -> str:
        try:
            return self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            # A fresh lab directory starts as the reference estate: `lab up` just works.
            text = _dumps(reference_state(), 1)
            self._write_locked(text)
            return text

    def _write_locked(self, text: str) -> None:
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.state_path)

    # -- journal ------------------------------------------------------------------------

    def append_journal(
        self,
        *,
        host: str,
        command: str,
        exit_status: int | None,
        seconds: float,
        notes: list[str] | None = None,
        when: float | None = None,
    ) -> dict:
        """Append one line; ``seq`` is one more than the last line's, taken under the lock
        so that concurrent servers and threads never share a number."""
        with self.locked(), open(self.journal_path, "ab") as handle:
            entry = {
                "seq": self._last_seq_locked(handle.fileno()) + 1,
                "time": iso_utc(when),
                "host": host,
                "command": command,
                "exit_status": exit_status,
                "seconds": round(seconds, 6),
                "notes": list(notes or ()),
            }
            handle.write((json.dumps(entry) + "\n").encode("utf-8"))
            handle.flush()
            stat = os.fstat(handle.fileno())
            self._journal_tail = (stat.st_ino, stat.st_size, entry["seq"])
            return entry

    def _last_seq_locked(self, fd: int | None = None) -> int:
        # Our own last append is remembered: if the file is still as we left it (nobody
        # else appended, nobody replaced it), its last seq is known without reading it.
        if fd is not None and self._journal_tail is not None:
            stat = os.fstat(fd)
            inode, size, seq = self._journal_tail
            if (stat.st_ino, stat.st_size) == (inode, size):
                return seq
        try:
            with open(self.journal_path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - 65536))
                tail = handle.read()
        except FileNotFoundError:
            return 0
        for line in reversed(tail.splitlines()):
            try:
                return int(json.loads(line)["seq"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn or foreign line; the one before it still counts
        return 0


_SHARDED = ("hosts", "groups", "faults", "services")  # top-level dicts of one entry per name


def _encode(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _member(name: str, encoded: str) -> str:
    """``"name":value`` as json.dumps writes a member (it also turns a non-string name into one)."""
    return _encode({name: None})[1:-5] + encoded


class _Image:
    """One revision of the state: the parsed state, never mutated once built (so
    ``snapshot()`` may share it), and the JSON text of each shard.

    ``pieces`` maps each top-level key (but "revision") to its encoded ``"key":value``,
    or, for the sharded sections, to a dict of ``"name":value`` per entry."""

    def __init__(self, revision: int, state: dict, pieces: dict[str, str | dict[str, str]]) -> None:
        self.revision, self.state, self.pieces = revision, state, pieces
        self.text = self._join(revision, state, pieces)

    @classmethod
    def parse(cls, text: str) -> _Image:
        state = json.loads(text)
        revision = int(state.get("revision", 0))
        pieces = {key: cls._pieces_of(key, value) for key, value in state.items() if key != "revision"}
        return cls(revision, state, pieces)

    @staticmethod
    def _pieces_of(key: str, value: object) -> str | dict[str, str]:
        if key in _SHARDED and isinstance(value, dict):
            return {name: _member(name, _encode(entry)) for name, entry in value.items()}
        return f"{_encode(key)}:{_encode(value)}"

    @staticmethod
    def _join(revision: int, state: dict, pieces: dict) -> str:
        parts = [f'{{"revision":{revision}']
        for key, value in state.items():
            if key == "revision":
                continue
            piece = pieces[key]
            if isinstance(piece, dict):
                parts.append(f"{_encode(key)}:{{{','.join(piece[name] for name in value)}}}")
            else:
                parts.append(piece)
        return ",".join(parts) + "}\n"

    def changes(self, working: dict) -> dict[str, list[str] | None]:
        """What ``working`` changed: {top-level key: [names of changed entries] or None
        (the whole key: changed, added, no longer a dict)}, and "revision" if a top-level
        key was removed. Empty: nothing to write.

        A sharded section that is still the store's ``_Tracked`` dict is compared only
        where the transaction reached into it. With DRPORTAL_LAB_VERIFY_TRACKING=1 (the
        test suite sets it) every answer is checked against the full comparison."""
        found = self._changes(working, tracked=True)
        if os.environ.get("DRPORTAL_LAB_VERIFY_TRACKING") == "1":
            full = self._changes(working, tracked=False)
            if {k: v and sorted(v) for k, v in found.items()} != {
                k: v and sorted(v) for k, v in full.items()
            }:
                raise AssertionError(f"lab state tracking missed a change: tracked {found}, full {full}")
        return found

    def _changes(self, working: dict, *, tracked: bool) -> dict[str, list[str] | None]:
        base = self.state
        changed: dict[str, list[str] | None] = {}
        for key, value in working.items():
            if key == "revision":
                continue
            old = base.get(key, _MISSING)
            if (
                tracked
                and isinstance(value, _Tracked)
                and not value.everything
                and isinstance(old, dict)
                and isinstance(self.pieces.get(key), dict)
            ):
                names = [
                    name
                    for name in value.touched
                    if dict.__contains__(value, name)
                    and old.get(name, _MISSING) != dict.__getitem__(value, name)
                ]
                if names or dict.keys(value) != old.keys():
                    changed[key] = names
                continue
            if old is not _MISSING and old == value:
                # One deep comparison in C; most commands only read, and a write changes
                # one section: only that one is compared entry by entry below.
                continue
            if isinstance(self.pieces.get(key), dict) and isinstance(value, dict):
                names = [name for name, entry in value.items() if old.get(name, _MISSING) != entry]
                if names or len(value) != len(old):
                    changed[key] = names
            elif old is _MISSING or old != value:
                changed[key] = None
        if any(key not in working for key in base):
            changed["revision"] = None  # a top-level key removed: the successor leaves it out
        return changed

    def successor(self, working: dict, changes: dict[str, list[str] | None]) -> _Image:
        """The next revision: only the changed shards are encoded and parsed again (the
        parsed copy keeps it independent of ``working``, which the caller goes on using)."""
        state: dict = {"revision": self.revision + 1}
        pieces: dict[str, str | dict[str, str]] = {}
        for key, value in working.items():
            if key == "revision":
                continue
            if key not in changes:
                state[key], pieces[key] = self.state[key], self.pieces[key]
            elif changes[key] is None:
                pieces[key] = self._pieces_of(key, value)
                state[key] = json.loads(_encode(value))
            else:
                old_pieces, old_section = self.pieces[key], self.state[key]
                fresh = {name: _encode(value[name]) for name in changes[key]}
                pieces[key] = {
                    name: _member(name, fresh[name]) if name in fresh else old_pieces[name] for name in value
                }
                state[key] = {
                    name: json.loads(fresh[name]) if name in fresh else old_section[name] for name in value
                }
        return _Image(self.revision + 1, state, pieces)


_MISSING = object()


class _Tracked(dict):
    """A sharded section of the working state (``hosts``, ``groups``...) that remembers
    which entries a transaction reached: only those can have changed, so a command that
    reads one host of a 500-VM state compares one entry, not the whole 750 kB.

    Every way to an entry goes through a method below: by name (recorded), or all at
    once through ``values``/``items``/``update``... (then everything is compared).
    ``__iter__`` is overridden too, which makes ``dict(section)`` and ``{**section}``
    use ``__getitem__`` instead of copying the entries behind our back."""

    __slots__ = ("everything", "touched")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.touched: set = set()
        self.everything = False

    def __getitem__(self, name):
        self.touched.add(name)
        return super().__getitem__(name)

    def get(self, name, default=None):
        self.touched.add(name)
        return super().get(name, default)

    def setdefault(self, name, default=None):
        self.touched.add(name)
        return super().setdefault(name, default)

    def __setitem__(self, name, value) -> None:
        self.touched.add(name)
        super().__setitem__(name, value)

    def __delitem__(self, name) -> None:
        self.touched.add(name)
        super().__delitem__(name)

    def pop(self, name, *default):
        self.touched.add(name)
        return super().pop(name, *default)

    def __iter__(self):
        return super().__iter__()

    def _all(self) -> None:
        self.everything = True

    def values(self):
        self._all()
        return super().values()

    def items(self):
        self._all()
        return super().items()

    def popitem(self):
        self._all()
        return super().popitem()

    def update(self, *args, **kwargs) -> None:
        self._all()
        super().update(*args, **kwargs)

    def clear(self) -> None:
        self._all()
        super().clear()

    def copy(self) -> dict:
        self._all()
        return super().copy()

    def __or__(self, other):
        self._all()
        return super().__or__(other)

    def __ior__(self, other):
        self._all()
        return super().__ior__(other)

    def __reduce_ex__(self, protocol):
        self._all()  # copy.deepcopy and pickle see every entry
        return super().__reduce_ex__(protocol)


def _untouch(working: dict) -> None:
    for key in _SHARDED:
        section = working.get(key)
        if isinstance(section, _Tracked):
            section.touched = set()
            section.everything = False


def _dumps(state: dict, revision: int) -> str:
    # "revision" goes first so snapshot() can tell a changed file from its first bytes.
    ordered = {"revision": revision, **{key: value for key, value in state.items() if key != "revision"}}
    # Compact on purpose: with ``indent`` json falls back to its pure-Python encoder, about ten
    # times slower, and every command of a 500-VM benchmark pays for a full dump.
    return json.dumps(ordered, separators=(",", ":")) + "\n"


def iso_utc(when: float | None = None) -> str:
    moment = datetime.now(UTC) if when is None else datetime.fromtimestamp(when, UTC)
    return moment.isoformat(timespec="milliseconds")


def read_journal(lab_dir: str | os.PathLike[str] | None = None, since_seq: int = 0) -> list[dict]:
    """Journal entries with ``seq > since_seq``, oldest first."""
    path = Path(lab_dir if lab_dir is not None else default_lab_dir()) / "journal.jsonl"
    entries = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("seq", 0) > since_seq:
                    entries.append(entry)
    except FileNotFoundError:
        return []
    return entries


# -- seeding ----------------------------------------------------------------------------


def _uuid(name: str) -> str:
    return str(uuid.uuid5(_UUID_NAMESPACE, name))


def _cfg_text(vm: dict) -> str:
    """An xl.cfg for one VM: enough for `xl create` and for a human reading it."""
    vifs = ", ".join(f"'mac={nic['mac']},bridge={nic['bridge']}'" for nic in vm["nics"])
    disks = ", ".join(f"'phy:{disk['target']},{disk['vdev']},{disk['mode']}'" for disk in vm["disks"])
    return (
        f'name = "{vm["name"]}"\n'
        f'uuid = "{_uuid(vm["name"])}"\n'
        f"memory = {vm['memory_mb']}\n"
        f"maxmem = {vm['max_memory_mb']}\n"
        f"vcpus = {vm['vcpus']}\n"
        f"vif = [ {vifs} ]\n"
        f"disk = [ {disks} ]\n"
        'bootloader = "pygrub"\n'
        'on_poweroff = "destroy"\n'
        'on_reboot = "restart"\n'
        'on_crash = "restart"\n'
    )


def _dom0_domain(memory_mb: int, total_mb: int, cpus: int, cpu_time: float) -> dict:
    return {
        "name": "Domain-0",
        "domid": 0,
        "memory_mb": memory_mb,
        "max_memory_mb": total_mb,
        "vcpus": cpus,
        "state": "r-----",
        "cpu_time": cpu_time,
        "uuid": "00000000-0000-0000-0000-000000000000",
        "config_path": None,
        "nics": [],
        "disks": [],
    }


def _domu(name: str, domid: int, memory_mb: int, vcpus: int, nics: list, disks: list) -> dict:
    return {
        "name": name,
        "domid": domid,
        "memory_mb": memory_mb,
        "max_memory_mb": memory_mb,
        "vcpus": vcpus,
        "state": "-b----",
        # Deterministic but different per VM, so listings look lived-in and stay reproducible.
        "cpu_time": float(1000 + zlib.crc32(name.encode()) % 90000) + 0.5,
        "uuid": _uuid(name),
        "config_path": reference.vm_config_path(name),
        "nics": nics,
        "disks": disks,
    }


def _reference_vm(vm: dict) -> dict:
    return {
        "name": vm["name"],
        "memory_mb": vm["normal_mb"],
        "max_memory_mb": vm["normal_mb"],
        "vcpus": vm["vcpus"],
        "nics": [{"mac": nic["mac"], "bridge": nic["bridge"]} for nic in reference.vm_nics(vm)],
        "disks": [dict(disk) for disk in reference.vm_disks(vm["name"])],
    }


def reference_state() -> dict:
    """The reference estate in normal operation, as a fresh lab state."""
    vms = [_reference_vm(vm) for vm in reference.VMS]
    # Every dom0 carries every VM's config, so any VM can start on either (thesis).
    config_files = {reference.vm_config_path(vm["name"]): _cfg_text(vm) for vm in vms}
    home = {vm["name"]: vm["home"] for vm in reference.VMS}
    boot_order = sorted(reference.VMS, key=lambda vm: (vm["tier"], vm["name"]))
    hosts: dict[str, dict] = {}
    for host in reference.HOSTS:
        domains = [_dom0_domain(host["dom0_normal_mb"], host["ram_mb"], host["cpus"], 48213.7)]
        for vm in (_reference_vm(vm) for vm in boot_order if home[vm["name"]] == host["name"]):
            domains.append(
                _domu(vm["name"], len(domains), vm["memory_mb"], vm["vcpus"], vm["nics"], vm["disks"])
            )
        hosts[host["name"]] = {
            "kind": "dom0",
            "site": host["site"],
            "address": host["address"],
            "toolstack": host["toolstack"],
            "total_memory_mb": host["ram_mb"],
            "nr_cpus": host["cpus"],
            "xen_version": "4.17.3",
            "bridges": list(host["bridges"]),
            "files": dict(config_files),
            "domains": domains,
            "next_domid": len(domains),
        }
    for array in reference.ARRAYS:
        assert array["kind"] == "eva-ca"  # the reference estate's arrays are both EVAs
        hosts[array["name"]] = eva_array_host(
            site=array["site"], address=array["address"], system=array["name"].upper()
        )
    state: dict = {"hosts": hosts, "groups": {}}
    for group in reference.dr_groups():
        sides = {group["source_array"]: "primary"}
        if group["target_array"]:
            sides[group["target_array"]] = "secondary"
        add_eva_group(
            state,
            group["name"],
            devices=[disk["target"] for name in group["vms"] for disk in reference.vm_disks(name)],
            sides=sides,
            presented_to=sorted({home[name] for name in group["vms"]}),
            mode=group["mode"],
        )
    return {
        "revision": 0,
        "hosts": hosts,
        "groups": state["groups"],
        "faults": {name: default_faults() for name in hosts},
        "latency": {"default_seconds": 0.0, "per_command": {}},
        # What each VM serves on its address while it runs (hosts/lab/services.py), and
        # where its drill clone ("drill-<vm>") serves the same.
        "services": {
            vm["name"]: {
                **reference.vm_services(vm["name"]),
                "drill_address": default_drill_address(reference.vm_services(vm["name"])["address"]),
            }
            for vm in reference.VMS
        },
    }


def default_drill_address(address: str) -> str:
    """A VM's drill address in the lab: 127.0.4.<i> beside its 127.0.3.<i>."""
    return f"127.0.4.{address.rsplit('.', 1)[-1]}"


def seed_reference(store: LabStore, *, drill_addresses: dict[str, str] | None = None) -> dict:
    """The reference estate; ``drill_addresses`` ({VM: address}) replace the default
    drill addresses (127.0.4.<i>) of the VMs named."""
    state = reference_state()
    for vm, address in (drill_addresses or {}).items():
        if vm not in state["services"]:
            known = ", ".join(sorted(state["services"]))
            raise ValueError(f"no drill address for unknown VM {vm!r}; known: {known}")
        state["services"][vm]["drill_address"] = address
    store.replace(state)
    return state


def reset(store: LabStore) -> dict:
    """Back to the reference estate. The journal is kept (seq keeps counting) because it
    records what the lab received, and a reset is one of those things worth seeing."""
    return seed_reference(store)


def synthetic_address(index: int, base_octet: int = 100) -> str:
    """127.0.<base+i//250>.<1+i%250>: clear of the reference estate's 127.0.1.x/127.0.2.x."""
    return f"127.0.{base_octet + index // 250}.{1 + index % 250}"


def seed_synthetic(
    store: LabStore,
    *,
    hosts: int = 50,
    vms: int = 500,
    vm_memory_mb: int = 256,
    dom0_memory_mb: int = 256,
    base_octet: int = 100,
    prefix: str = "synth",
) -> list[str]:
    """Add ``hosts`` dom0s (``synth001``...) running ``vms`` VMs round-robin, plus two
    arrays (``synth-eva-a`` primary, ``synth-eva-b`` secondary) replicating one group per
    VM, to the current state. Returns the dom0 names. For benchmarks, not for realism."""
    if hosts < 1 or vms < 0:
        raise ValueError("need at least one host and a non-negative number of VMs")
    names = [f"{prefix}{index + 1:03d}" for index in range(hosts)]
    per_host = -(-vms // hosts)
    total_mb = max(4096, dom0_memory_mb + per_host * vm_memory_mb * 2)
    array_a, array_b = f"{prefix}-eva-a", f"{prefix}-eva-b"
    with store.transaction() as state:
        for index, name in enumerate(names):
            state["hosts"][name] = {
                "kind": "dom0",
                "site": "SYN",
                "address": synthetic_address(index, base_octet),
                "toolstack": "xl",
                "total_memory_mb": total_mb,
                "nr_cpus": 8,
                "xen_version": "4.17.3",
                "bridges": list(reference.BRIDGES),
                "files": {},
                "domains": [_dom0_domain(dom0_memory_mb, total_mb, 8, 1000.0)],
                "next_domid": 1,
            }
            state["faults"][name] = default_faults()
        for index, array in enumerate((array_a, array_b)):
            state["hosts"][array] = eva_array_host(
                site="SYN", address=synthetic_address(hosts + index, base_octet), system=array.upper()
            )
            state["faults"][array] = default_faults()
        for number in range(vms):
            host = state["hosts"][names[number % hosts]]
            vm_name = f"{prefix}-vm{number + 1:04d}"
            stem = f"{prefix}vm{number + 1:04d}"
            vm = {
                "name": vm_name,
                "memory_mb": vm_memory_mb,
                "max_memory_mb": vm_memory_mb,
                "vcpus": 1,
                "nics": [
                    {
                        "mac": f"00:16:3e:{number >> 8 & 0xFF:02x}:{number & 0xFF:02x}:{slot + 1:02x}",
                        "bridge": br,
                    }
                    for slot, br in enumerate(reference.BRIDGES)
                ],
                "disks": [{"target": f"/dev/vg_{stem}/lvol1", "vdev": "xvda1", "mode": "w"}],
            }
            host["files"][reference.vm_config_path(vm_name)] = _cfg_text(vm)
            domid = host["next_domid"]
            host["domains"].append(_domu(vm_name, domid, vm_memory_mb, 1, vm["nics"], vm["disks"]))
            host["next_domid"] = domid + 1
            add_eva_group(
                state,
                f"DRG-{vm_name}",
                devices=[vm["disks"][0]["target"]],
                sides={array_a: "primary", array_b: "secondary"},
                presented_to=[names[number % hosts]],
            )
    return names
