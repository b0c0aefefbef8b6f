"""Reading what SSSU prints (the form the public check_eva.py and hpeva_api.py parse):

    (two blank lines)
    SSSU for HP StorageWorks Command View EVA
    Version: ...
    Build: ...
    NoSystemSelected> <each command as sent, after the prompt>
    <system>> LS VDISK "\\Virtual Disks\\vd01\\ACTIVE"
    \\Virtual Disks\\vd01\\ACTIVE information:
    object
      objectname .........................: \\Virtual Disks\\vd01\\ACTIVE
      wwlunid ............................: 6005-08b4-...
      presentations
        presentation
          hostname .......................: \\Hosts\\host01
          lunnumber ......................: 1

Every line of an answer must be one of those forms; anything else is an error naming
the system, the command, the line number and what was expected, raised before anything
is returned (nothing is used from a half-read answer). Detail keys keep their first value
(check_eva.py does the same: sections repeat key names). A bare word opens a sub-record
(``presentation``, ``member``); its key lines are the ones indented deeper than it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hosts.drivers.storage import StorageError

_HEADER = re.compile(r"^(?P<path>\\.*?) information:\s*$")
_DETAIL = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z][A-Za-z0-9_]*) \.+: ?(?P<value>.*?)\s*$")
_SECTION = re.compile(r"^(?P<indent>\s*)(?P<word>[A-Za-z][A-Za-z0-9_]*)\s*$")
_EXPECTED = "'<path> information:', 'key ....: value' or a section name"


class SssuAnswerError(StorageError):
    """SSSU printed something drportal cannot read."""


@dataclass
class Block:
    """One ``<path> information:`` object: its detail lines and its sub-records."""

    path: str
    line: int
    fields: dict[str, str] = field(default_factory=dict)
    records: dict[str, list[dict[str, str]]] = field(default_factory=dict)


@dataclass
class Answer:
    """What SSSU printed after echoing one command; ``lines`` are (line number, text)."""

    command: str
    system: str
    lines: list[tuple[int, str]]

    def where(self, number: int) -> str:
        return f"{self.system}: cannot read the answer to {self.command!r}, line {number}"

    def blocks(self) -> list[Block]:
        found: list[Block] = []
        stack: list[tuple[int, dict[str, str]]] = []
        current: Block | None = None
        for number, text in self.lines:
            if not text.strip():
                continue
            # Only a header ends in ':' (a value's dots are followed by ': ' or the end).
            header = _HEADER.match(text) if text.rstrip().endswith(":") else None
            if header:
                current = Block(header.group("path"), number)
                found.append(current)
                stack = []
                continue
            if current is None:
                raise SssuAnswerError(
                    f"{self.where(number)}: {text.strip()!r}: expected '<path> information:'"
                )
            detail = _DETAIL.match(text)
            section = None if detail is not None else _SECTION.match(text)
            if detail is None and section is None:
                raise SssuAnswerError(f"{self.where(number)}: {text.strip()!r}: expected {_EXPECTED}")
            match = detail or section
            assert match is not None
            indent = len(match.group("indent"))
            while stack and indent <= stack[-1][0]:
                stack.pop()
            if detail is not None:
                target = stack[-1][1] if stack else current.fields
                target.setdefault(detail.group("key").lower(), detail.group("value"))
            elif section is not None and section.group("word").lower() != "object":
                record: dict[str, str] = {}
                current.records.setdefault(section.group("word").lower(), []).append(record)
                stack.append((indent, record))
        return found

    def listing(self, prefix: str) -> list[str]:
        """A plain ``LS``: one object path per line (a heading ending in ':' may precede)."""
        paths = []
        for number, text in self.lines:
            entry = text.strip().strip('"')
            if not entry or (entry.endswith(":") and not entry.startswith("\\")):
                continue
            if not entry.lower().startswith(prefix.lower()):
                raise SssuAnswerError(f"{self.where(number)}: {entry!r}: expected a path starting {prefix}")
            paths.append(entry)
        return paths


def need(block: Block, key: str, answer: Answer, expected: str) -> str:
    """A detail field that must be there; the error names what was expected."""
    value = block.fields.get(key)
    if value is None or not value.strip():
        raise SssuAnswerError(
            f"{answer.system}: the answer to {answer.command!r} (line {block.line}, {block.path}) has no "
            f"{key} field: expected {expected}"
        )
    return value.strip()


def _normal(command: str) -> str:
    return " ".join(command.split()).lower()


def split_answers(text: str, commands: list[str], system: str, prompts: tuple[str, ...]) -> list[Answer]:
    """The answer to each of ``commands``, found by its echo after a prompt. A command that
    was not echoed (the session stopped before it) is an error."""
    prompt = re.compile(r"^(?:" + "|".join(re.escape(p) for p in prompts) + r")> ?(?P<echo>.*)$")
    segments: list[tuple[str, list[tuple[int, str]]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        echo = prompt.match(line) if ">" in line else None
        if echo:
            segments.append((echo.group("echo"), []))
        elif segments:
            segments[-1][1].append((number, line))
    answers, position = [], 0
    for command in commands:
        wanted = _normal(command)
        while position < len(segments) and _normal(segments[position][0]) != wanted:
            position += 1
        if position == len(segments):
            raise SssuAnswerError(f"{system}: SSSU did not answer {command!r} (no echo of it after a prompt)")
        answers.append(Answer(command, system, segments[position][1]))
        position += 1
    return answers
