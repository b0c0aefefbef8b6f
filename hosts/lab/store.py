"""The lab's state: state.json in the lab directory (layout: hosts/lab/__init__.py).

Several processes share it (the SSH server, ``manage.py lab fault ...``, tests), so every
write happens under an ``flock`` on ``state.lock``. No fsync: the lab is a simulator, and a
power cut losing its last write is harmless, while fsyncing every command would slow a
50-host benchmark.

The file is JSON Lines, a log: line 1 is the whole state at a base revision (compact JSON,
"revision" first), and every commit since appends one line (``O_APPEND``) saying what it
changed::

    [[["groups","DRG-vm0001"],{...}],[["faults","x"]],[["latency"],{...}]]<TAB>1234<TAB>9f0c2a11

the steps (a path of one or two names, the sharded sections' entries or a top-level key,
and the new value; a path alone removes it), a tab, the new revision, a tab, the crc32 (8
hex digits) of the text before that tab. ``head -1 state.json | python -m json.tool`` shows
the base; ``LabStore(lab_dir).read()`` the current state. The log is compacted (the whole
state written as line 1 again, tmp + ``os.replace``) when its entries outweigh the base
(``compact_min_bytes`` and more than the base) or number more than ``compact_max_entries``.

Every command the lab serves is a transaction, so a transaction must cost little even for
a 5,000-VM state (8 MB): the store keeps, per shard (one host, one group, one host's
faults, one VM's services; or a small top-level key), the parsed state and its JSON text.
A commit compares shard by shard (only the entries the transaction reached), encodes only
the shards that changed and appends them; a compaction writes the file from the cached
pieces, byte for byte what ``json.dumps`` would write. Another process's store (or another
``LabStore`` of this one) catches up under the lock by reading only the lines appended
since the offset it knows and applying them to its parsed state; a compaction (another
inode, or the first bytes changed) makes it read the whole file again. A torn or bad-crc
last line (a writer killed mid-append) is ignored by readers and cut off by the next
writer. ``snapshot()`` looks at the file's last 64 bytes only (the last line's revision).

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
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hosts.drivers.base import wait_readable
from hosts.lab import default_lab_dir
from hosts.lab.journal import Journal
from hosts.lab.seed import reference_state

_REVISION_HEADER = re.compile(rb'^\{\s*"revision":\s*(\d+)')
_ENTRY_TAIL = re.compile(rb"\t(\d+)\t[0-9a-f]{8}\n\Z")  # a complete last entry: its revision
_TAIL_BYTES = 64


class _Log:
    """What a store knows of the state file it last read or wrote: the file held open (so
    that its inode is never reused while we compare against it), its first bytes (an
    in-place rewrite shows there), the base line's size, the end of the last valid entry,
    how many entries there are, and the size last seen (beyond ``end``: a torn tail).
    ``unterminated``: the base lacks its newline (a plain JSON file from before the log),
    so the next commit writes a new base instead of appending."""

    __slots__ = ("base_size", "end", "entries", "fd", "head", "inode", "size", "unterminated")

    def __init__(self, fd: int, base_size: int, end: int, entries: int, size: int) -> None:
        self.fd, self.inode = fd, os.fstat(fd).st_ino
        self.head = os.pread(fd, _TAIL_BYTES, 0)
        self.base_size, self.end, self.entries, self.size = base_size, end, entries, size
        self.unterminated = False

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:  # a store dropped without a word (tests make hundreds)
        with contextlib.suppress(Exception):
            self.close()


class LabStore:
    """The lab state of one lab directory, shared safely between threads and processes.

    ``flock`` locks belong to an open file description, so every acquisition opens the
    lock file anew: two threads of one process then exclude each other exactly like two
    processes do. Re-entrant per thread (the server journals inside its transaction)."""

    # Compaction: when the appended entries reach this many bytes and outweigh the base...
    compact_min_bytes = 64 * 1024
    # ... or would number more than this.
    compact_max_entries = 1000

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
        self._log: _Log | None = None  # the file _image came from or went to; see _Log

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

        The parsed state is kept between transactions and brought up to date from the
        lines other stores appended, with an immutable twin (``_Image``) to tell which
        shards the block changed: a read-only transaction costs one ``stat`` and one
        comparison per entry it reached, a write encodes and appends only what it changed."""
        with self.locked():
            image, working = self._current_locked()
            _untouch(working)
            try:
                yield working
            except BaseException:
                self._forget_locked()  # ``working`` may be half-changed; disk is the truth
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
                steps: list[str] | None = [] if _kept_order(image.state, working) else None
                successor = image.successor(working, changes, image.revision + 1, steps)
                # Published before the file: the write lets other threads run, and a
                # snapshot() that finds the new revision on disk must find its twin here
                # too, or it catches up under the lock. So must one that read an older
                # revision and was then held up while more commits went by (a loaded
                # machine, hundreds of threads): the last few revisions stay at hand.
                self._image = successor
                self._remember(successor)
                self._commit_locked(successor, steps)
            except BaseException:
                self._forget_locked()
                if successor is not None:
                    self._recent.pop(successor.revision, None)  # never reached the disk
                raise
            working["revision"] = successor.revision

    def _current_locked(self) -> tuple[_Image, dict]:
        """This store's image and working state, brought up to the file: unchanged (same
        inode and size: one ``stat``), caught up from the lines appended since our offset,
        or read again whole (another inode, a shorter file, other first bytes)."""
        image, working, log = self._image, self._working, self._log
        if image is not None and working is not None and log is not None:
            try:
                stat = os.stat(self.state_path)
            except FileNotFoundError:
                stat = None
            if stat is not None and stat.st_ino == log.inode:
                log.size = stat.st_size
                if stat.st_size == log.end:
                    return image, working
                if stat.st_size > log.end and os.pread(log.fd, len(log.head), 0) == log.head:
                    entries, used = _read_entries(_pread_all(log.fd, log.end, stat.st_size), image.revision)
                    if entries:
                        try:
                            self._catch_up_locked(entries)
                        except BaseException:
                            self._forget_locked()  # half applied: the file is the truth
                            raise
                        log.end += used
                        log.entries += len(entries)
                    assert self._image is not None and self._working is not None
                    return self._image, self._working
        return self._reload_locked()

    def _reload_locked(self) -> tuple[_Image, dict]:
        self._forget_locked()
        try:
            fd = os.open(self.state_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            # A fresh lab directory starts as the reference estate: `lab up` just works.
            self._recent.clear()  # revisions start again at 1
            self._write_locked(_dumps(reference_state(), 1))
            fd = os.open(self.state_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = _pread_all(fd, 0, os.fstat(fd).st_size)
            base_size = _base_size(data)
            base = data[:base_size]
            image = _Image.parse(base)
            entries, used = _read_entries(memoryview(data)[base_size:], image.revision)
            log = _Log(fd, base_size, base_size + used, len(entries), len(data))
            log.unterminated = not base.endswith(b"\n")
        except BaseException:
            os.close(fd)
            raise
        self._image, self._working, self._log = image, _working_of(json.loads(base)), log
        if entries:
            self._catch_up_locked(entries)
        else:
            self._remember(image)
        assert self._image is not None and self._working is not None
        return self._image, self._working

    def _catch_up_locked(self, entries: list[tuple[bytes, int]]) -> None:
        """Apply other stores' entries to ``_working`` and make the image that follows."""
        image, working = self._image, self._working
        assert image is not None and working is not None
        changes: dict[str, list[str] | None] = {}
        for steps, revision in entries:
            _apply_steps(working, json.loads(steps), changes)
            working["revision"] = revision
        for key, names in list(changes.items()):
            if key not in working:
                del changes[key]
            elif names is None or not isinstance(image.pieces.get(key), dict):
                changes[key] = None
                if (
                    key in _SHARDED
                    and isinstance(working[key], dict)
                    and not isinstance(working[key], _Tracked)
                ):
                    working[key] = _tracked(key, working[key])
            else:
                changes[key] = [
                    name for name in dict.fromkeys(names) if dict.__contains__(working[key], name)
                ]
        if any(key not in working for key in image.state):
            changes["revision"] = None
        groups = working.get("groups")
        if isinstance(groups, _Tracked) and groups.layout_cache and _layout_changed(image, working, changes):
            groups.layout_cache.clear()
        self._image = image.successor(working, changes, entries[-1][1])
        self._remember(self._image)

    def _forget_locked(self) -> None:
        self._image = self._working = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _remember(self, image: _Image) -> None:
        """Under the lock (the only writer of ``_recent``; readers only look up)."""
        self._recent[image.revision] = image
        while len(self._recent) > _RECENT_IMAGES:
            del self._recent[next(iter(self._recent))]

    def _disk_revision_locked(self) -> int | None:
        try:
            fd = os.open(self.state_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            revision = _tail_revision(fd)
            if revision is None:  # a torn last line: the last whole one counts
                data = _pread_all(fd, 0, os.fstat(fd).st_size)
                return _state_of(data).get("revision")
            return revision
        finally:
            os.close(fd)

    def read(self) -> dict:
        """A consistent snapshot, private to the caller (mutating it changes nothing)."""
        try:
            return _state_of(self.state_path.read_bytes())
        except FileNotFoundError:
            with self.locked():
                self._current_locked()  # seeds a fresh lab directory
                return _state_of(self.state_path.read_bytes())

    def snapshot(self) -> dict:
        """Like ``read`` but shared and cached by revision: only the last bytes of the
        file are read while nothing changed (or this store has that revision at hand);
        otherwise the store catches up under the lock. READ-ONLY: never mutate the result."""
        try:
            fd = os.open(self.state_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            revision = None
        else:
            try:
                revision = _tail_revision(fd)
            finally:
                os.close(fd)
        if revision is not None:
            with self._cache_lock:
                if self._cache is not None and self._cache[0] == revision:
                    return self._cache[1]
            twin = self._recent.get(revision)
            if twin is not None:
                # This store wrote (or read) that revision: its twin is immutable, share it.
                with self._cache_lock:
                    self._cache = (revision, twin.state)
                return twin.state
        with self.locked():
            image, _working = self._current_locked()
        with self._cache_lock:
            self._cache = (image.revision, image.state)
        return image.state

    def replace(self, state: dict) -> None:
        """Replace the whole state (seeding, reset), keeping the revision increasing."""
        with self.locked():
            self._forget_locked()
            self._write_locked(_dumps(state, (self._disk_revision_locked() or 0) + 1))

    def _commit_locked(self, image: _Image, steps: list[str] | None) -> None:
        """Append ``image``'s entry (``steps``; None: not expressible as steps), cutting
        off a torn tail first; or compact: the whole state as the new base."""
        log = self._log
        line = _entry_line(steps, image.revision) if steps is not None and log is not None else None
        if line is None or log is None or log.unterminated or self._outweighs(log, len(line)):
            self._write_chunks_locked(image.chunks())
            return
        fd = os.open(self.state_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            if log.size != log.end:
                os.ftruncate(fd, log.end)  # a line torn by a writer that died mid-append
            _write_all(fd, [line])
        finally:
            os.close(fd)
        log.end += len(line)
        log.size = log.end
        log.entries += 1

    def _outweighs(self, log: _Log, line: int) -> bool:
        appended = log.end - log.base_size + line
        return log.entries + 1 > self.compact_max_entries or (
            appended >= self.compact_min_bytes and appended > log.base_size
        )

    def _write_locked(self, text: str) -> None:
        self._write_chunks_locked([text.encode("utf-8")])

    def _write_chunks_locked(self, chunks: list[bytes | memoryview]) -> None:
        """A new base: the file is the concatenation of ``chunks``, written with ``writev``
        from the cached pieces (no 8 MB string is built, copied and freed), then renamed
        over the old file; the store goes on from the new one."""
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            _write_all(fd, chunks)
        finally:
            os.close(fd)
        os.replace(tmp, self.state_path)
        if self._log is not None:
            self._log.close()
        fd = os.open(self.state_path, os.O_RDONLY | os.O_CLOEXEC)
        size = os.fstat(fd).st_size
        self._log = _Log(fd, size, size, 0, size)


class StateWatch:
    """Wakes a waiter when the state file is written (by this process or any other).

    On Linux through inotify on the lab directory (an append closes the file after writing,
    a compaction renames a new one into the directory), so a waiter sleeps in ``poll`` until
    a write: no polling. Elsewhere ``wait`` just returns after ``fallback_period`` and the
    caller looks for itself. ``wake()`` ends a wait early (to stop)."""

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
    def parse(cls, text: str | bytes) -> _Image:
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
                if names or _membership_changed(old, value):
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

    def successor(
        self,
        working: dict,
        changes: dict[str, list[str] | None],
        revision: int,
        steps: list[str] | None = None,
    ) -> _Image:
        """The revision ``revision`` after this one: only the changed shards are encoded
        and parsed again (the parsed copy keeps it independent of ``working``, which the
        caller goes on using). ``steps``, if given, receives the log entry's steps (see
        the module docstring): applied to this state in order they give the successor,
        its order of entries included."""
        state: dict = {"revision": revision}
        pieces: dict[str, bytes | dict[str, bytes]] = {}
        if steps is not None:
            steps.extend(_step([key]) for key in self.state if key != "revision" and key not in working)
        for key, value in working.items():
            if key == "revision":
                continue
            if key not in changes:
                state[key], pieces[key] = self.state[key], self.pieces[key]
                continue
            names = changes[key]
            if names is None:
                encoded = _encode(value)
                pieces[key] = self._pieces_of(key, value)
                state[key] = json.loads(encoded)
                if steps is not None:
                    steps.append(_step([key], encoded))
                continue
            old_pieces, old_section = self.pieces[key], self.state[key]
            fresh = {name: _encode(value[name]) for name in names}
            if isinstance(old_pieces, dict) and _same_names_in_order(old_section, value):
                # The same entries in the same order (most commits): copy, then swap in
                # the changed ones, instead of rebuilding 5,000 entries one by one.
                section_pieces, section = dict(old_pieces), dict(old_section)
                for name, encoded in fresh.items():
                    section_pieces[name], section[name] = _member(name, encoded), json.loads(encoded)
                pieces[key], state[key] = section_pieces, section
                if steps is not None:
                    steps.extend(_step([key, name], encoded) for name, encoded in fresh.items())
                continue
            section_pieces = {
                name: _member(name, fresh[name]) if name in fresh else old_pieces[name] for name in value
            }
            pieces[key] = section_pieces
            state[key] = {
                name: json.loads(fresh[name]) if name in fresh else old_section[name] for name in value
            }
            if steps is not None:
                steps.extend(_section_steps(key, old_section, value, fresh, section_pieces))
        return _Image(revision, state, pieces)


def _step(path: list, encoded: str | None = None) -> str:
    """One step of a log entry: ``[path,value]``, or ``[path]`` (removed)."""
    return "[" + _encode(path) + ("]" if encoded is None else "," + encoded + "]")


def _section_steps(
    key: str, old: dict, new: dict, fresh: dict[str, str], new_pieces: dict[str, bytes]
) -> list[str]:
    """The steps that turn the sharded section ``old`` into ``new`` (entries added or
    removed; ``fresh``: the changed entries' text): the removals and the changes, then the
    additions in ``new``'s order, or, if ``new`` is ordered otherwise than that gives, the
    whole section."""
    removed = [name for name in old if not dict.__contains__(new, name)]
    added = [name for name in new if name not in old]
    kept = [name for name in old if dict.__contains__(new, name)]
    if list(new) != kept + added:
        return [_step([key], "{" + b"".join(new_pieces.values()).decode("utf-8")[1:] + "}")]
    return [
        *(_step([key, name]) for name in removed),
        *(_step([key, name], text) for name, text in fresh.items() if name in old),
        *(_step([key, name], fresh[name]) for name in added),
    ]


def _kept_order(old: dict, new: dict) -> bool:
    """Whether ``new``'s top-level keys are in the order steps applied to ``old`` give:
    ``old``'s, less the removed ones, then the added ones."""
    return list(new) == [key for key in old if key in new] + [key for key in new if key not in old]


_MISSING = object()


class _Tracked(dict):
    """A sharded section of the working state (``hosts``, ``groups``...) that remembers
    which entries a transaction reached: only those can have changed, so a command that
    reads one host of a 500-VM state compares one entry, not the whole 750 kB.

    Every way to an entry goes through a method below: by name (recorded), or all at
    once through ``values``/``items``/``update``... (then everything is compared).
    ``__iter__`` is overridden too, which makes ``dict(section)`` and ``{**section}``
    use ``__getitem__`` instead of copying the entries behind our back."""

    __slots__ = ("everything", "layout_cache", "shrunk", "touched")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.touched: set = set()
        self.everything = False
        self.shrunk = False  # an entry was removed (and may be back, at the end)
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
        self.shrunk = True
        super().__delitem__(name)

    def pop(self, name, *default):
        self.touched.add(name)
        self.shrunk = True
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
        or _membership_changed(old, new)
    ):
        return True
    return any(_layout(old.get(n)) != _layout(dict.get(new, n)) for n in names)


def _membership_changed(old: dict, new: dict) -> bool:
    """Whether ``new`` has other names than ``old``. A section that is still tracked gains
    or loses an entry only by name (every other way marks it ``everything``): only the
    names it reached are looked at, not 5,000 per command."""
    if isinstance(new, _Tracked) and not new.everything:
        return any(dict.__contains__(new, name) != (name in old) for name in new.touched)
    return dict.keys(old) != dict.keys(new)


def _same_names_in_order(old: dict, new: dict) -> bool:
    if isinstance(new, _Tracked) and not new.everything and not new.shrunk:
        return not _membership_changed(old, new)  # nothing removed: no name moved to the end
    return list(dict.keys(new)) == list(old)


def _untouch(working: dict) -> None:
    for key in _SHARDED:
        section = working.get(key)
        if isinstance(section, _Tracked):
            section.touched = set()
            section.everything = section.shrunk = False


def _dumps(state: dict, revision: int) -> str:
    # "revision" goes first so snapshot() can tell a changed file from its first bytes.
    ordered = {"revision": revision, **{key: value for key, value in state.items() if key != "revision"}}
    # Compact on purpose: with ``indent`` json falls back to its pure-Python encoder, about ten
    # times slower, and every command of a 500-VM benchmark pays for a full dump.
    return json.dumps(ordered, separators=(",", ":")) + "\n"


def _write_all(fd: int, chunks: list[bytes | memoryview]) -> None:
    """``writev`` the chunks, ``_IOV_MAX`` at a time; a short write (a signal, a full disk):
    the rest in one go."""
    for start in range(0, len(chunks), _IOV_MAX):
        batch = chunks[start : start + _IOV_MAX]
        written = os.writev(fd, batch)
        expected = sum(len(chunk) for chunk in batch)
        if written < expected:
            rest = b"".join(bytes(chunk) for chunk in batch)[written:]
            while rest:
                rest = rest[os.write(fd, rest) :]


def _pread_all(fd: int, start: int, end: int) -> bytes:
    parts, offset = [], start
    while offset < end:
        part = os.pread(fd, end - offset, offset)
        if not part:
            break
        parts.append(part)
        offset += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _tail_revision(fd: int) -> int | None:
    """The revision of the file's last line from its last 64 bytes: an entry's, or the
    base's when the base is the last line. None: the last line is torn (no newline)."""
    size = os.fstat(fd).st_size
    tail = os.pread(fd, _TAIL_BYTES, max(0, size - _TAIL_BYTES))
    match = _ENTRY_TAIL.search(tail)
    if match:
        return int(match.group(1))
    if not tail.endswith(b"}\n"):
        return None
    header = _REVISION_HEADER.match(os.pread(fd, _TAIL_BYTES, 0))
    return int(header.group(1)) if header else None


def _base_size(data: bytes) -> int:
    end = data.find(b"\n")
    return len(data) if end < 0 else end + 1


def _entry_line(steps: list[str], revision: int) -> bytes:
    text = ("[" + ",".join(steps) + f"]\t{revision}").encode("utf-8")
    return text + b"\t%08x\n" % zlib.crc32(text)


def _read_entries(data: bytes | memoryview, revision: int) -> tuple[list[tuple[bytes, int]], int]:
    """The whole, valid entries at the start of ``data`` (the file after a known offset),
    each one revision after the one before ``revision`` on: [(steps text, revision)], and
    how many bytes they take. It stops at the first torn (no newline), bad-crc or
    out-of-sequence line: what a writer killed mid-append leaves, cut off by the next one."""
    data = bytes(data)
    entries, start = [], 0
    while (end := data.find(b"\n", start)) >= 0:
        body, _, crc = data[start:end].rpartition(b"\t")
        steps, _, number = body.rpartition(b"\t")
        if len(crc) != 8 or not number.isdigit() or int(number) != revision + 1:
            break
        try:
            if zlib.crc32(body) != int(crc, 16):
                break
        except ValueError:
            break
        revision = int(number)
        entries.append((steps, revision))
        start = end + 1
    return entries, start


def _apply_steps(state: dict, steps: list, changes: dict[str, list[str] | None] | None = None) -> None:
    """Apply an entry's steps to ``state`` (a plain or a working state, whose sections are
    changed behind their tracking: the next transaction starts untouched anyway); note in
    ``changes`` what they changed, as ``_Image.changes`` would."""
    for step in steps:
        path = step[0]
        key = path[0]
        if len(path) == 1:
            if len(step) > 1:
                state[key] = step[1]
            else:
                state.pop(key, None)
            if changes is not None:
                changes[key] = None
            continue
        section = state[key]
        if isinstance(section, _Tracked):  # what _membership_changed looks at
            section.touched.add(path[1])
            section.shrunk = section.shrunk or len(step) == 1
        if len(step) > 1:
            dict.__setitem__(section, path[1], step[1])
        else:
            dict.pop(section, path[1], None)
        if changes is not None:
            names = changes.setdefault(key, [])
            if names is not None:
                names.append(path[1])


def _state_of(data: bytes) -> dict:
    """The state a file's bytes hold: the base with its valid entries applied."""
    base_size = _base_size(data)
    state = json.loads(data[:base_size])
    entries, _ = _read_entries(memoryview(data)[base_size:], int(state.get("revision", 0)))
    for steps, revision in entries:
        _apply_steps(state, json.loads(steps))
        state["revision"] = revision
    return state


def _tracked(key: str, section: dict) -> _Tracked:
    tracked = _Tracked(section)
    if key == "groups":
        tracked.layout_cache = {}
    return tracked


def _working_of(state: dict) -> dict:
    for key in _SHARDED:
        if isinstance(state.get(key), dict):
            state[key] = _tracked(key, state[key])
    return state
