"""The lab's journal: journal.jsonl in the lab directory, one JSON line per command
received (seq, time, host, command, exit_status, seconds, notes).

Lines are appended under the store's lock (``LabStore.locked``, re-entrant per thread: the
server journals inside its transaction), so concurrent servers and threads never share a
``seq``. No fsync, as for the state: the lab is a simulator."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path

from hosts.lab import default_lab_dir


class Journal:
    """journal.jsonl of one lab directory, written under ``locked`` (the store's lock)."""

    def __init__(self, path: Path, locked: Callable[[], AbstractContextManager[None]]) -> None:
        self.path = path
        self._locked = locked
        self._tail: tuple[int, int, int] | None = None  # (inode, size, last seq) of our own last append

    def append(
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
        with self._locked(), open(self.path, "ab") as handle:
            seq = self._last_seq_locked(handle.fileno()) + 1
            entry = {
                "seq": seq,
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
            self._tail = (stat.st_ino, stat.st_size, seq)
            return entry

    def _last_seq_locked(self, fd: int | None = None) -> int:
        # Our own last append is remembered: if the file is still as we left it (nobody
        # else appended, nobody replaced it), its last seq is known without reading it.
        if fd is not None and self._tail is not None:
            stat = os.fstat(fd)
            inode, size, seq = self._tail
            if (stat.st_ino, stat.st_size) == (inode, size):
                return seq
        try:
            with open(self.path, "rb") as handle:
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
