"""The small shared vocabulary of all drivers: a command's result, a runner, errors."""

from __future__ import annotations

import math
import re
import select
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class CommandResult:
    """What one remote command did. ``argv`` is what we asked for; ``command`` is the
    exact quoted string that went over the wire."""

    host: str
    argv: tuple[str, ...]
    command: str
    stdout: str
    stderr: str
    exit_status: int
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class Runner(Protocol):
    """Runs one command on one host. The SSH layer implements it; drivers use it."""

    name: str

    def run(self, argv: Sequence[str], *, timeout: float | None = None) -> CommandResult: ...


def quote_command(argv: Sequence[str]) -> str:
    """The only way a command line is built: every word quoted for a POSIX shell."""
    if not argv:
        raise ValueError("empty command")
    return " ".join(shlex.quote(str(word)) for word in argv)


# ``PASSWORD=<value>`` (SSSU's SELECT MANAGER) in whatever a tool echoes: masked before a
# result is logged, stored or shown. drportal itself never sends a password on a command
# line; this is for a tool that prints back a line of a credentials file it ran.
_SECRET = re.compile(r'(?i)\b(PASSWORD\s*=\s*)("[^"]*"|\S+)')
MASK = "********"


def redact_secrets(text: str) -> str:
    """``text`` with every ``PASSWORD=<value>`` masked (``_SECRET``, any case).

    The pattern is tried only where the word is: tried at every position, it cost 0.17 s of
    CPU over an EVA's listing of 5,000 groups (7.4 MB), twice per read (SSH, then SSSU),
    and an SSSU session always has the word once (the login file's echo). The word is
    looked for in the casefolded text, which is what (?i) compares ('ſ' is an 's'); where
    some character folds to several, positions differ and the whole text is searched."""
    if not text:
        return text
    folded = text.casefold()
    at = folded.find("password")
    if at < 0:
        return text
    if len(folded) != len(text):
        return _SECRET.sub(_masked, text)
    parts: list[str] = []
    end = 0
    while at >= 0:
        match = _SECRET.match(text, at)  # \b looks at the character before ``at``
        if match:
            parts += [text[end : match.start()], _masked(match)]
            end = match.end()
        at = folded.find("password", max(at + 1, end))
    return "".join([*parts, text[end:]]) if parts else text


def _masked(match: re.Match) -> str:
    return match.group(1) + MASK


class DriverError(Exception):
    """Base of every error a driver raises. Keeps the tool's own words."""

    def __init__(self, message: str, *, result: CommandResult | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.result = result

    def __str__(self) -> str:
        return self.message


_READABLE = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR | select.POLLNVAL


def wait_readable(files: Sequence[Any], timeout: float | None) -> list[Any]:
    """What ``select.select(files, [], [], timeout)[0]`` answers, without select's limit:
    select() refuses any descriptor numbered 1024 or more ("filedescriptor out of range in
    select()"), and a worker with hundreds of SSH connections gets there (every paramiko
    channel waited on opens a pipe of its own). poll() has no such limit. ``files`` are
    descriptors or objects with ``fileno()``; end of file and errors count as readable."""
    poller = select.poll()
    by_fd: dict[int, Any] = {}
    for item in files:
        fd = item if isinstance(item, int) else item.fileno()
        by_fd[fd] = item
        poller.register(fd, select.POLLIN | select.POLLPRI)
    milliseconds = None if timeout is None else max(0, math.ceil(timeout * 1000))
    return [by_fd[fd] for fd, events in poller.poll(milliseconds) if events & _READABLE]
