"""Domain configs (`/etc/xen/vm/<name>`, xl.cfg(5)): read as Xen 4.17's libxlutil reads
them (never exec'd), interpreted as xl's parse_config_data does, and written.

The grammar is libxlutil's (tools/libs/util/libxlu_cfg_l.l, libxlu_cfg_y.y, libxlu_cfg.c at
RELEASE-4.17.7): names are ``[a-z][._0-9a-z]*``; every value is a string (a NUMBER token
keeps its text, ``memory = 512`` and ``memory = '512'`` are the same); ``'...'`` and ``"..."``
take the same escapes; ``+=`` appends; a later setting wins; ``#`` comments end at a newline;
anything else (a capital letter, ``-``, a CR of a CRLF file) is a lexical error. The lab
reads configs with libxlutil itself (hosts/lab/xlutil.py) and the differential tests hold
this module to it. Disk and vif specs are in xen_specs.py.

What xl makes of the settings (VmConfig) is in xen_vmconfig.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from hosts.drivers.xen_records import ConfigParseError
from hosts.drivers.xen_specs import (
    c_number,
    c_strtoul,
)

__all__ = [
    "CfgValue",
    "ParsedCfg",
    "cfg_long",
    "cfg_string",
    "cfg_string_items",
    "parse_cfg",
    "read_cfg",
    "where",
]

CfgValue = str | list  # list items are CfgValue too

LONG_MAX, LONG_MIN = 2**63 - 1, -(2**63)


class _Tok(NamedTuple):  # a tuple: tens of them per config file, built cheaply
    kind: str  # IDENT NUMBER STRING NEWLINE EOF, or the punctuation itself: = += ; , [ ]
    text: str  # what flex matched (yytext)
    value: str | None
    line: int  # the line it is on (for NEWLINE: the line it ends)


_IDENT = re.compile(r"[a-z][._0-9a-z]*")
_NUMBER = re.compile(r"[0-9][0-9a-fx]*")
_STRING = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")
_COMMENT = re.compile(r"#.*\n")
# The rules above in one pattern, blanks before a token skipped: their first characters are
# disjoint, so which group matched is the rule flex picks. Groups: _NEWLINE (a newline, or a
# comment with its newline), _PUNCT, _IDENT_RULE, _NUMBER_RULE, _STRING_RULE.
_TOKEN = re.compile(
    rf"[ \t]*(?:(\n|{_COMMENT.pattern})|(\+=|[,\[\]=;])|({_IDENT.pattern})|({_NUMBER.pattern})|({_STRING.pattern}))"
)
_NEWLINE, _PUNCT, _IDENT_RULE, _NUMBER_RULE, _STRING_RULE = 1, 2, 3, 4, 5
_BLANKS = re.compile(r"[ \t]*")
_SIMPLE_ESCAPES = {
    '"': '"',
    "'": "'",
    "\\": "\\",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_SIMPLE_ESCAPES["v"] = "\v"


class _Lexer:
    """libxlu_cfg_l.l, token by token (lazily: bison asks for one token at a time, so an
    error is met in the same order as xl meets it)."""

    def __init__(self, text: str, source: str) -> None:
        self.text, self.source = text, source
        self.pos, self.line = 0, 1
        self.last_line = 1

    def lexical_error(self, near: str, line: int, message: str = "lexical error") -> ConfigParseError:
        return ConfigParseError(f"{self.source}:{line}: config parsing error near {_near(near)}: {message}")

    def __iter__(self) -> Iterator[_Tok]:
        """The tokens, then EOF. One match of ``_TOKEN`` per token (its blanks before it
        included); where it matches nothing, the rules' own order decides (``lexerr``)."""
        text, size, match = self.text, len(self.text), _TOKEN.match
        while self.pos < size:
            found = match(text, self.pos)
            if found is None:
                # Blanks, then no rule's start (or an unterminated string): the ``.`` rule.
                self.pos = _BLANKS.match(text, self.pos).end()  # type: ignore[union-attr]
                if self.pos < size:
                    self.lexerr()  # raises, or returns at the end of the text
                continue
            self.pos, rule, word = found.end(), found.lastindex, found.group(found.lastindex or 0)
            line = self.line
            if rule == _NEWLINE:  # a newline, or a comment up to its newline
                self.line += 1
                kind, value = "NEWLINE", None
            elif rule == _PUNCT:
                kind, value = word, None
            elif rule == _STRING_RULE:
                kind, value = "STRING", self.dequote(word)
            else:
                kind, value = ("IDENT" if rule == _IDENT_RULE else "NUMBER"), word
            self.last_line = line
            yield _Tok(kind, word, value, line)
        # At the end flex sets no location, so bison keeps the last token's (xl names it).
        yield _Tok("EOF", "", None, self.last_line)

    def lexerr(self) -> None:
        """The ``.`` rule, then ``<lexerr>``: the bad character plus what follows up to white
        space is the error. At the very end of the text flex matches nothing more, so a
        stray character there (``#`` without a newline) is no error at all."""
        text, start = self.text, self.pos
        rest = start + 1
        if rest >= len(text):
            self.pos = len(text)
            return
        if text[rest] == "\n":
            raise self.lexical_error(text[start : rest + 1], self.line)
        if text[rest] in " \t":
            raise self.lexical_error(text[start:rest], self.line)
        end = rest
        while end < len(text) and text[end] not in " \t\n":
            end += 1
        raise self.lexical_error(text[start:end], self.line)

    def dequote(self, word: str) -> str:
        """xlu__cfgl_dequote. Its numeric escapes are faithfully odd: ``\\x`` is always an
        error, and ``\\<octal digit>`` needs two more decimal digits and then stores nothing."""
        out, body, i = [], word[1:-1], 0
        if "\\" not in body:
            return body
        while i < len(body):
            char = body[i]
            i += 1
            if char != "\\":
                out.append(char)
                continue
            escape = body[i]
            i += 1
            if escape in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[escape])
            elif escape == "x":
                raise self.lexical_error(
                    word,
                    self.line,
                    "invalid digit after backslash hexnumerical character escape in quoted string",
                )
            elif "0" <= escape <= "7":
                # strncpy(3 chars after the digit, including the closing quote), strtoul(10)
                _value, used = c_strtoul((body + word[-1])[i : i + 3], 10)
                if used <= 1:
                    raise self.lexical_error(
                        word,
                        self.line,
                        "invalid digit after backslash octalnumerical character escape in quoted string",
                    )
                i += used
            else:
                raise self.lexical_error(word, self.line, "invalid character after backlash in quoted string")
        return "".join(out)


def _near(text: str) -> str:
    """How xlu__cfg_yyerror shows the token: a trailing newline and blanks dropped, and a
    bare newline as ``<newline>``."""
    if text.endswith("\n"):
        text = text[:-1]
        if not text:
            return "<newline>"
    text = text.rstrip(" \t")
    return f"`{text}'"


@dataclass(frozen=True)
class ParsedCfg:
    """A config as libxlutil holds it: for each name, the value that counts."""

    source: str
    values: dict[str, CfgValue]
    lines: dict[str, int]  # line of the setting that counts (its value's first token)
    appended: frozenset[str] = frozenset()  # names whose last setting was ``+=``


class _Parser:
    """libxlu_cfg_y.y by recursive descent. xl refuses a file at its first error, so the
    first error is raised (bison's recovery only finds more errors to print)."""

    def __init__(self, text: str, source: str) -> None:
        self.lexer = _Lexer(text, source)
        self.tokens = iter(self.lexer)
        self.source = source
        self.ahead: _Tok | None = None
        self.last: _Tok | None = None

    def peek(self) -> _Tok:
        if self.ahead is None:
            self.ahead = next(self.tokens)
        return self.ahead

    def take(self) -> _Tok:
        tok = self.peek()
        if tok.kind != "EOF":
            self.ahead = None
        self.last = tok
        return tok

    def error(self, tok: _Tok, expecting: str) -> ConfigParseError:
        # xl's words, except the line: for an unexpected newline xl prints one line less
        # (xlu__cfg_yyerror takes one off for a token ending in a newline, which its
        # location already did); drportal names the line the newline ends.
        unexpected = tok.kind if tok.kind in ("IDENT", "NUMBER", "STRING", "NEWLINE") else f"'{tok.kind}'"
        if tok.kind == "+=":
            unexpected = "+="
        near = _near(tok.text)
        if tok.kind == "EOF":
            unexpected, near = "$end", "`'"
        return ConfigParseError(
            f"{self.source}:{tok.line}: config parsing error near {near}: "
            f"syntax error, unexpected {unexpected}, expecting {expecting}"
        )

    def skip_newlines(self) -> None:
        while self.peek().kind == "NEWLINE":
            self.take()

    def value(self, expecting: str = "STRING or NUMBER or '['") -> CfgValue:
        tok = self.take()
        if tok.kind in ("STRING", "NUMBER"):
            assert tok.value is not None
            return tok.value
        if tok.kind != "[":
            raise self.error(tok, expecting)
        items: list[CfgValue] = []
        self.skip_newlines()
        if self.peek().kind == "]":
            self.take()
            return items
        while True:
            items.append(self.value("STRING or NUMBER or '[' or ']'"))
            self.skip_newlines()
            after = self.take()
            if after.kind == "]":
                return items
            if after.kind != ",":
                raise self.error(after, "',' or ']'")
            self.skip_newlines()
            if self.peek().kind == "]":
                self.take()
                return items

    def parse(self) -> ParsedCfg:
        values: dict[str, CfgValue] = {}
        lines: dict[str, int] = {}
        appended: set[str] = set()
        while True:
            tok = self.take()
            if tok.kind == "EOF":
                return ParsedCfg(self.source, values, lines, frozenset(appended))
            if tok.kind in ("NEWLINE", ";"):
                continue
            if tok.kind != "IDENT":
                raise self.error(tok, "$end or IDENT or NEWLINE or ';'")
            name = str(tok.value)
            op = self.take()
            if op.kind not in ("=", "+="):
                raise self.error(op, "+= or '='")
            line = self.peek().line
            value = self.value()
            if op.kind == "+=" and name in values:
                before = values[name]
                if isinstance(before, list) != isinstance(value, list):
                    assert self.last is not None
                    raise self.lexer.lexical_error(
                        self.last.text, self.last.line, 'can\'t add [list] to "string" or vice versa'
                    )
                value = before + value  # type: ignore[operator]
            values.pop(name, None)
            values[name] = value
            lines[name] = line
            (appended.add if op.kind == "+=" else appended.discard)(name)
            end = self.peek()
            if end.kind in ("NEWLINE", ";"):
                self.take()
            elif end.kind != "EOF":
                raise self.error(end, "NEWLINE or ';'")


def read_cfg(text: str, source: str = "<config>") -> ParsedCfg:
    """A config file's settings. Raises ConfigParseError worded like xl's
    ``<file>:<line>: config parsing error near ...`` for a file xl would refuse."""
    return _read_plain(text, source) or _Parser(text, source).parse()


# A text the lazy lexer reads without an error, end to end (trailing blanks are no error),
# and its tokens all at once (blanks before each dropped): the rules of ``_TOKEN``.
_TOKEN_TEXT = rf"\n|{_COMMENT.pattern}|\+=|[,\[\]=;]|{_IDENT.pattern}|{_NUMBER.pattern}|{_STRING.pattern}"
# Possessive and atomic: each token is the one ``_TOKEN`` matches there, never a shorter
# one that would let a later character the lazy lexer refuses pass inside another token.
_LEXES = re.compile(rf"(?:[ \t]*+(?>{_TOKEN_TEXT}))*+[ \t]*+")
_ALL_TOKENS = re.compile(rf"[ \t]*({_TOKEN_TEXT})")
_ENDS = ("\n", "#", ";")  # a NEWLINE token (a newline, or a comment and its newline) or ';'


class _NotPlain(Exception):
    """The text is not one ``_read_plain`` reads: ``_Parser`` reads it (and finds the error)."""


def _read_plain(text: str, source: str) -> ParsedCfg | None:
    """``_Parser(text, source).parse()`` of a config without errors and without escapes in
    its strings (every config a dom0 really holds), several times as fast: the tokens in one
    ``findall``, then the same grammar over that list. None for any other text (a lexical
    error, a stray character, an escape, a syntax error, ``+=`` of a list to a string):
    the lazy parser then reads it, so the first error is the one xl meets first. A token's
    kind is its first character (the rules' first characters are disjoint), and its line
    is one more than the NEWLINE tokens before it (no other token holds a newline)."""
    if "\\" in text or not _LEXES.fullmatch(text):
        return None
    try:
        return _plain_settings(_ALL_TOKENS.findall(text), source)
    except _NotPlain:
        return None


def _plain_settings(tokens: list[str], source: str) -> ParsedCfg:
    """``_Parser.parse`` over ``_read_plain``'s tokens; _NotPlain where it would raise."""
    values: dict[str, CfgValue] = {}
    lines: dict[str, int] = {}
    appended: set[str] = set()
    size, i, line = len(tokens), 0, 1
    while i < size:
        word = tokens[i]
        i += 1
        first = word[0]
        if first in _ENDS:
            line += first != ";"
            continue
        if not ("a" <= first <= "z") or i + 1 >= size:
            raise _NotPlain
        op = tokens[i]
        if op != "=" and op != "+=":
            raise _NotPlain
        value_line = line
        value, i, line = _plain_value(tokens, i + 1, line)
        if op == "+=" and word in values:
            before = values[word]
            if isinstance(before, list) != isinstance(value, list):
                raise _NotPlain
            value = before + value  # type: ignore[operator]
        values.pop(word, None)
        values[word] = value
        lines[word] = value_line
        (appended.add if op == "+=" else appended.discard)(word)
        if i < size:
            first = tokens[i][0]
            if first not in _ENDS:
                raise _NotPlain
            line += first != ";"
            i += 1
    return ParsedCfg(source, values, lines, frozenset(appended))


def _plain_value(tokens: list[str], i: int, line: int) -> tuple[CfgValue, int, int]:
    """``_Parser.value`` from token ``i`` on ``line``: the value, the index and the line after it."""
    size = len(tokens)
    if i >= size:
        raise _NotPlain
    word = tokens[i]
    first = word[0]
    if first == "'" or first == '"':
        return word[1:-1], i + 1, line
    if "0" <= first <= "9":
        return word, i + 1, line
    if word != "[":
        raise _NotPlain
    items: list[CfgValue] = []
    i += 1
    while i < size and tokens[i][0] in "\n#":
        i, line = i + 1, line + 1
    if i < size and tokens[i] == "]":
        return items, i + 1, line
    while True:
        item, i, line = _plain_value(tokens, i, line)
        items.append(item)
        while i < size and tokens[i][0] in "\n#":
            i, line = i + 1, line + 1
        if i >= size or (tokens[i] != "]" and tokens[i] != ","):
            raise _NotPlain
        i += 1
        if tokens[i - 1] == "]":
            return items, i, line
        while i < size and tokens[i][0] in "\n#":
            i, line = i + 1, line + 1
        if i < size and tokens[i] == "]":
            return items, i + 1, line


def parse_cfg(text: str, source: str = "<config>") -> dict[str, CfgValue]:
    """The settings of a config file as plain values (str, nested lists)."""
    return read_cfg(text, source).values


# -- reading values as xlu_cfg_get_* does ------------------------------------------------------


def where(cfg: ParsedCfg, name: str) -> str:
    """``<source>:<line>`` of a setting, as libxlutil's warnings name it."""
    line = cfg.lines.get(name)
    return f"{cfg.source}:{line}" if line is not None else cfg.source


def c_strtol(text: str) -> tuple[int, int, bool]:
    """strtol(base 0): (value, characters used, out of range)."""
    if text.isascii() and text.isdigit() and text[0] != "0" and len(text) < 19:
        return int(text), len(text), False  # decimal, in range: what c_number reads of it
    negative, magnitude, used = c_number(text, 0)
    value = -magnitude if negative else magnitude
    if value > LONG_MAX:
        return LONG_MAX, used, True
    if value < LONG_MIN:
        return LONG_MIN, used, True
    return value, used, False


def cfg_long(cfg: ParsedCfg, name: str) -> tuple[int | None, str | None]:
    """xlu_cfg_get_long: (value, None), (None, None) when unset, or (None, xl's warning)."""
    value = cfg.values.get(name)
    if value is None:
        return None, None
    if isinstance(value, list):
        return (
            None,
            f"{where(cfg, name)}: warning: parameter `{name}' is a list but should be a single value",
        )
    if name in cfg.appended:
        return None, f"{where(cfg, name)}: warning: can't use += with numbers for parameter `{name}'"
    number, used, out_of_range = c_strtol(value)
    if out_of_range:
        return None, (
            f"{where(cfg, name)}: warning: parameter `{name}' could not be parsed as a number: "
            "Numerical result out of range"
        )
    if used == 0 or used != len(value):
        return None, f"{where(cfg, name)}: warning: parameter `{name}' is not a valid number"
    return number, None


def cfg_string(cfg: ParsedCfg, name: str) -> tuple[str | None, str | None]:
    """xlu_cfg_get_string: (value, None), (None, None) when unset, or (None, xl's warning)."""
    value = cfg.values.get(name)
    if isinstance(value, list):
        return (
            None,
            f"{where(cfg, name)}: warning: parameter `{name}' is a list but should be a single value",
        )
    return value, None


def cfg_string_items(cfg: ParsedCfg, name: str) -> tuple[list[str], str | None]:
    """What xl's ``disk``/``vif`` loops see: the items up to the first one that is not a
    string (xlu_cfg_get_listitem returns NULL there and the loop stops)."""
    value = cfg.values.get(name)
    if value is None:
        return [], None
    if not isinstance(value, list):
        return [], f"{where(cfg, name)}: warning: parameter `{name}' is a single value but should be a list"
    items: list[str] = []
    for item in value:
        if not isinstance(item, str):
            dropped = len(value) - len(items)
            return (
                items,
                f"{where(cfg, name)}: item {len(items)} of `{name}' is a list: xl stops there ({dropped} dropped)",
            )
        items.append(item)
    return items, None
