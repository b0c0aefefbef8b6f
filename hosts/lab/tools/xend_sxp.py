"""How xend prints an S-expression for `xm list --long`: PrettyPrint.prettyprint.

Written from tools/python/xen/xend/PrettyPrint.py and sxp.py at commit 9e8672f1c3^ (the
last Xen tree with xend): SXPPrettyPrinter.pprint makes every list a block ("all" breaks)
of "(", the items with a break (width 1, indent 4) between them, a break (width 0, indent
0) and ")"; a block that does not fit in what is left of the 80-column line breaks at
every one of its breaks, each new line indented from the column the block started at.
Atoms are written by sxp.show: bare when sxp.atomp says so, else as repr().
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field


def atomp(text: str) -> bool:
    """sxp.atomp: may this string be written without quotes?"""
    if text == "":
        return False
    if text.isalnum() or text == "@":
        return True
    for char in text:
        if char in string.whitespace or char in "\"'\\(){}[]<>$#&%^":
            return False
        if char not in string.ascii_letters + string.digits + ".-_:/~":
            return False
    return True


def show_atom(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    text = str(value)
    return text if atomp(text) else repr(text)


@dataclass
class _Break:
    width: int
    indent: int
    space: int = 0


@dataclass
class _Block:
    items: list = field(default_factory=list)  # str, _Break, _Block
    width: int = 0
    indent: int = 0
    broken: bool = False

    def end(self) -> None:
        # PrettyLine.end: each break's space is the width up to the next break.
        width, last_width, last_break = 0, 0, None
        for item in self.items:
            if isinstance(item, _Break):
                if last_break is not None:
                    last_break.space = width - last_width
                last_break, last_width = item, width
            width += _width(item)
        if last_break is not None:
            last_break.space = width - last_width
        self.width = width


def _width(item: object) -> int:
    if isinstance(item, str):
        return len(item)
    if isinstance(item, _Break):
        return item.width
    assert isinstance(item, _Block)
    return item.width


def _build(sxpr: object) -> object:
    if not isinstance(sxpr, list):
        return show_atom(sxpr)
    block = _Block()
    block.items.append("(")
    for index, item in enumerate(sxpr):
        if index:
            block.items.append(_Break(1, 4))
        block.items.append(_build(item))
    block.items.append(_Break(0, 0))
    block.items.append(")")
    block.end()
    return block


class _Line:
    def __init__(self, width: int) -> None:
        self.width, self.used, self.space = width, 0, width
        self.out: list[str] = []
        self.block: _Block | None = None

    def output(self, text: str, width: int) -> None:
        self.space = max(0, self.space - width)
        self.used += width
        self.out.append(text)

    def newline(self, indent: int) -> None:
        assert self.block is not None
        indent += self.block.indent
        self.out.append("\n" + " " * indent)
        self.used, self.space = indent, self.width - indent

    def fits(self, n: int) -> bool:
        return self.space - n >= 0

    def print(self, item: object) -> None:
        if isinstance(item, str):
            self.output(item, len(item))
        elif isinstance(item, _Break):
            assert self.block is not None
            if (self.block.broken) or not self.fits(item.space):
                self.newline(item.indent)
            else:
                self.output(" " * item.width, item.width)
        else:
            assert isinstance(item, _Block)
            parent = self.block
            item.indent = self.used
            self.block = item
            if not self.fits(item.width):
                item.broken = True
            for inner in item.items:
                self.print(inner)
            self.block = parent


def prettyprint(sxpr: object, width: int = 80) -> str:
    """PrettyPrint.prettyprint(sxpr) as a string, with the newline `print` adds."""
    line = _Line(width)
    line.print(_build(sxpr))
    return "".join(line.out) + "\n"
