"""The words of the real SSSU 8.0 and how the lab's sssu reads a command and prints an answer.

``KEYWORDS`` is loaded from hosts/lab/data/sssu-8.0-keywords.txt (the keyword table of the
real binary, with its provenance header). A line that is one upper-case word is a keyword;
help strings of the binary interleaved in the table (with spaces or lower case, such as
"ranges from 16-65535" or the generic "PORTn_MTU") are not.

The lab accepts a word in a keyword position only if it is in that table, case-insensitively
(public scripts write ``select manager``, ``ls system full``). Real SSSU also seems to take
unique abbreviations (``del lun``, ``ls snap full`` and ``allocation=demand`` in the public
StorageLX module); the lab does not, so a driver that passes here uses only whole words.
A word outside the table is answered ``Error: Unknown keyword <WORD>`` (exit status 1, see
sssu_tool.py). Values (names, paths, numbers, passwords) are never checked against it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

KEYWORD_FILE = Path(__file__).resolve().parents[1] / "data" / "sssu-8.0-keywords.txt"
_KEYWORD_LINE = re.compile(r"[A-Z0-9_]+")
# Words, with "..." kept together (SSSU has no escape inside quotes) and KEY="a b" one word.
_WORDS = re.compile(r'(?:[^\s"]+|"[^"]*")+')


def load_keywords(path: Path = KEYWORD_FILE) -> frozenset[str]:
    words = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        if _KEYWORD_LINE.fullmatch(line.strip()) and line == line.strip():
            words.add(line)
    return frozenset(words)


KEYWORDS = load_keywords()


class SssuError(Exception):
    """Printed as ``Error: <message>``; the session stops there."""


def split_words(command: str) -> list[str]:
    if command.count('"') % 2:
        raise SssuError(f"Unbalanced quotes in: {command}")
    return [word.replace('"', "") for word in _WORDS.findall(command)]


def keyword(word: str, *allowed: str) -> str:
    """``word`` as a keyword (upper case); refused if SSSU does not have it, or, with
    ``allowed``, if it is not one of them here."""
    upper = word.upper()
    if upper not in KEYWORDS:
        raise SssuError(f"Unknown keyword {word}")
    if allowed and upper not in allowed:
        raise SssuError(f"{upper} is not valid here; expected {' or '.join(allowed)}")
    return upper


def options(words: list[str], *, free: tuple[str, ...] = (), choices: dict | None = None) -> dict[str, str]:
    """``KEY=value`` and bare keyword options. KEY must be an SSSU keyword and one this
    command takes: ``free`` keys take any value, ``choices`` keys one of their keywords.
    Bare keywords come back as ``{WORD: ""}``."""
    choices = choices or {}
    found: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            found[keyword(key, *choices.get("", ()))] = ""
            continue
        name = keyword(key.strip())
        if name in free:
            found[name] = value.strip()
        elif name in choices:
            found[name] = keyword(value.strip(), *choices[name])
        else:
            raise SssuError(f"{name} is not an option of this command")
    return found


def detail_line(key: str, value: object, indent: int = 2) -> str:
    """SSSU's detail layout: the key padded with dots to a column, then ``: value``."""
    return f"{' ' * indent}{key} {'.' * max(2, 34 - len(key) - indent)}: {value}\n"


def block(
    path: str, rows: Sequence[tuple[str, object]], lists: Mapping[str, Sequence[Sequence[tuple[str, object]]]]
) -> str:
    """One object as LS ... FULL prints it: ``<path> information:``, ``object``, the
    detail lines, then each list (``presentations`` / ``presentation`` ...), indented."""
    text = [f"{path} information:\n", "object\n"]
    text += [detail_line(key, value) for key, value in rows]
    for plural, items in lists.items():
        text.append(f"  {plural}\n")
        for item in items:
            text.append(f"    {plural[:-1]}\n")
            text += [detail_line(key, value, 6) for key, value in item]
    return "".join(text) + "\n"
