"""The lab's state: state.json in the lab directory (layout: hosts/lab/__init__.py).

Several processes share it (the SSH server, ``manage.py lab fault ...``, tests), so every
write happens under an ``flock`` on ``state.lock`` and the state file is replaced
atomically (tmp + ``os.replace``): a reader that opens ``state.json`` without the lock
always sees one whole version. No fsync: the lab is a simulator, and a power cut losing
its last write is harmless, while fsyncing every command would slow a 50-host benchmark.

Every command the lab serves is a transaction, so a transaction must cost little even for
a 500-VM state (~750 kB): the store keeps, per shard (one host, one group, one host's
faults, one VM's services; or a small top-level key), the parsed state and its JSON text.
A commit compares shard by shard, re-encodes only the shards that changed and writes the
file from the cached pieces; the text is byte for byte what ``json.dumps`` would write.

The journal (journal.py) shares the store's lock: ``store.journal.append(...)``. A fresh
lab directory starts as the reference estate (seed.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import json
import os
import re
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hosts.drivers.base import wait_readable
from hosts.lab import default_lab_dir
from hosts.lab.journal import Journal
from hosts.lab.seed import reference_state

_REVISION_HEADER = re.compile(rb'^\{\s*"revision":\s*(\d+)')


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
        self.journal = Journal(self.journal_path, self.locked)
        self._cache_lock = threading.Lock()
        self._cache: tuple[int, dict] | None = None  # snapshot(): shared, read-only
        self._image: _Image | None = None  # the last revision this store read or wrote; see _Image
        # The last few revisions this store wrote or read, by revision (see snapshot()).
        self._recent: dict[int, _Image] = {}
        self._working: dict | None = None  # what transactions mutate; equal to _image.state

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
            groups = working.get("groups")
            if (
                isinstance(groups, _Tracked)
                and groups.layout_cache
                and _layout_changed(image, working, changes)
            ):
                groups.layout_cache.clear()
            successor: _Image | None = None
            try:
                successor = image.successor(working, changes)
                # Published before the file: os.replace lets other threads run, and a
                # snapshot() that finds the new revision on disk must find its twin here
                # too, or it parses the whole file again (a quarter of the lab's CPU at
                # 500 VMs). So must one that read an older revision's header and was
                # then held up while more commits went by (a loaded machine, hundreds of
                # threads): the last few revisions stay at hand.
                self._image = successor
                self._remember(successor)
                self._write_chunks_locked(successor.chunks())
            except BaseException:
                self._image = self._working = None
                if successor is not None:
                    self._recent.pop(successor.revision, None)  # never reached the disk
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
        if isinstance(working.get("groups"), _Tracked):
            working["groups"].layout_cache = {}
        self._image, self._working = image, working
        self._remember(image)
        return image, working

    def _remember(self, image: _Image) -> None:
        """Under the lock (the only writer of ``_recent``; readers only look up)."""
        self._recent[image.revision] = image
        while len(self._recent) > _RECENT_IMAGES:
            del self._recent[next(iter(self._recent))]

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
                twin = self._recent.get(revision)
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
            self._recent.clear()  # revisions start again at 1
            text = _dumps(reference_state(), 1)
            self._write_locked(text)
            return text

    def _write_locked(self, text: str) -> None:
        self._write_chunks_locked([text.encode("utf-8")])

    def _write_chunks_locked(self, chunks: list[bytes | memoryview]) -> None:
        """The file is the concatenation of ``chunks``, written with ``writev`` from the
        cached pieces: no 800 kB string is built, copied and freed per commit."""
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            for start in range(0, len(chunks), _IOV_MAX):
                batch = chunks[start : start + _IOV_MAX]
                written = os.writev(fd, batch)
                expected = sum(len(chunk) for chunk in batch)
                if written < expected:  # a short write (a signal, a full disk): the rest in one go
                    rest = b"".join(bytes(chunk) for chunk in batch)[written:]
                    while rest:
                        rest = rest[os.write(fd, rest) :]
        finally:
            os.close(fd)
        os.replace(tmp, self.state_path)


class StateWatch:
    """Wakes a waiter when the state file is replaced (by this process or any other).

    On Linux through inotify on the lab directory (``os.replace`` is a rename into it), so a
    waiter sleeps in ``poll`` until a write: no polling. Elsewhere ``wait`` just returns
    after ``fallback_period`` and the caller looks for itself. ``wake()`` ends a wait early
    (to stop)."""

    _IN_CLOSE_WRITE, _IN_MOVED_TO, _IN_CREATE = 0x008, 0x080, 0x100
    _EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name

    def __init__(self, path: Path, fallback_period: float = 0.2) -> None:
        self.name = os.fsencode(path.name)
        self.fallback_period = fallback_period
        self._wake_r, self._wake_w = os.pipe()
        self._fd = self._inotify(path.parent)

    @classmethod
    def _inotify(cls, directory: Path) -> int | None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return None
        if fd < 0:
            return None
        mask = cls._IN_CLOSE_WRITE | cls._IN_MOVED_TO | cls._IN_CREATE
        if libc.inotify_add_watch(fd, os.fsencode(directory), mask) < 0:
            os.close(fd)
            return None
        return fd

    @property
    def event_driven(self) -> bool:
        return self._fd is not None

    def wait(self, timeout: float | None) -> bool:
        """Until the state file may have changed (True), ``timeout`` passed or ``wake()``
        was called (False). Without inotify: True after ``fallback_period`` at the latest."""
        if self._fd is None:
            timeout = self.fallback_period if timeout is None else min(timeout, self.fallback_period)
            readable = wait_readable([self._wake_r], timeout)
            return not readable
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            readable = wait_readable([self._fd, self._wake_r], left)
            if self._wake_r in readable or not readable:
                return False
            if self._read_events():
                return True
            # Only other files of the directory (the journal, the lock, the .tmp): wait on.

    def _read_events(self) -> bool:
        if self._fd is None:
            return False
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return False
        offset, ours = 0, False
        while offset + self._EVENT.size <= len(data):
            _wd, _mask, _cookie, length = self._EVENT.unpack_from(data, offset)
            start = offset + self._EVENT.size
            ours = ours or data[start : start + length].rstrip(b"\0") == self.name
            offset = start + length
        return ours

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        for fd in (self._fd, self._wake_r, self._wake_w):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = None


_SHARDED = ("hosts", "groups", "faults", "services")
_RECENT_IMAGES = 8  # revisions a store keeps for snapshot() (they share all unchanged shards)  # top-level dicts of one entry per name


def _encode(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _member(name: str, encoded: str) -> bytes:
    """``,"name":value`` as json.dumps writes a member (it also turns a non-string name into
    one), with the comma that precedes every member but a section's first (``chunks``)."""
    return ("," + _encode({name: None})[1:-5] + encoded).encode("utf-8")


_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024


class _Image:
    """One revision of the state: the parsed state, never mutated once built (so
    ``snapshot()`` may share it), and the JSON text of each shard (UTF-8).

    ``pieces`` maps each top-level key (but "revision") to its encoded ``,"key":value``,
    or, for the sharded sections, to a dict of ``,"name":value`` per entry."""

    def __init__(self, revision: int, state: dict, pieces: dict[str, bytes | dict[str, bytes]]) -> None:
        self.revision, self.state, self.pieces = revision, state, pieces

    @classmethod
    def parse(cls, text: str) -> _Image:
        state = json.loads(text)
        revision = int(state.get("revision", 0))
        pieces = {key: cls._pieces_of(key, value) for key, value in state.items() if key != "revision"}
        return cls(revision, state, pieces)

    @staticmethod
    def _pieces_of(key: str, value: object) -> bytes | dict[str, bytes]:
        if key in _SHARDED and isinstance(value, dict):
            return {name: _member(name, _encode(entry)) for name, entry in value.items()}
        return _member(key, _encode(value))

    def chunks(self) -> list[bytes | memoryview]:
        """The file's bytes in order, as the cached pieces: exactly ``_dumps(state, revision)``."""
        parts: list[bytes | memoryview] = [b'{"revision":%d' % self.revision]
        for key, value in self.state.items():
            if key == "revision":
                continue
            piece = self.pieces[key]
            if isinstance(piece, dict):
                parts.append(_member(key, "{"))  # ,"key":{
                first = True
                for name in value:
                    member = piece[name]
                    parts.append(memoryview(member)[1:] if first else member)
                    first = False
                parts.append(b"}")
            else:
                parts.append(piece)
        parts.append(b"}\n")
        return parts

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
        pieces: dict[str, bytes | dict[str, bytes]] = {}
        for key, value in working.items():
            if key == "revision":
                continue
            if key not in changes:
                state[key], pieces[key] = self.state[key], self.pieces[key]
                continue
            names = changes[key]
            if names is None:
                pieces[key] = self._pieces_of(key, value)
                state[key] = json.loads(_encode(value))
            else:
                old_pieces, old_section = self.pieces[key], self.state[key]
                fresh = {name: _encode(value[name]) for name in names}
                if isinstance(old_pieces, dict) and list(dict.keys(value)) == list(old_section):
                    # The same entries in the same order (most commits): copy, then swap in
                    # the changed ones, instead of rebuilding 500 entries one by one.
                    section_pieces, section = dict(old_pieces), dict(old_section)
                    for name, encoded in fresh.items():
                        section_pieces[name], section[name] = _member(name, encoded), json.loads(encoded)
                    pieces[key], state[key] = section_pieces, section
                    continue
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

    __slots__ = ("everything", "layout_cache", "touched")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.touched: set = set()
        self.everything = False
        # The groups section only: what tools.eva_model derives from the groups' layout
        # (emptied by a commit that changes a group's layout, see _layout_changed).
        self.layout_cache: dict | None = None

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


def _layout(group: object) -> object:
    """What eva_model derives from a group: its kind and each side's vdisks."""
    if not isinstance(group, dict):
        return group
    sides = group.get("sides")
    return (
        group.get("kind"),
        {a: side.get("vdisks") if isinstance(side, dict) else side for a, side in sides.items()}
        if isinstance(sides, dict)
        else sides,
    )


def _layout_changed(image: _Image, working: dict, changes: dict[str, list[str] | None]) -> bool:
    if "groups" not in changes:
        return False
    names = changes["groups"]
    old, new = image.state.get("groups"), working.get("groups")
    if (
        names is None
        or not isinstance(old, dict)
        or not isinstance(new, dict)
        or dict.keys(old) != dict.keys(new)
    ):
        return True
    return any(_layout(old.get(n)) != _layout(dict.get(new, n)) for n in names)


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
