"""S-expression (SXP) long listings: `xm list --long`, and `xl list -l` of xl with
output_format="sxp" (or of Xen 4.0/4.1). No I/O here.

Two printers make this form, and both are read:
- xend (xm): XendConfig.to_sxp builds the list, PrettyPrint.prettyprint prints it (an
  Oppen-style pretty printer, 80 columns, 4-space indents), sxp.show writes atoms bare when
  sxp.atomp allows and as Python repr() strings otherwise. Memory is in MiB (``memory`` is
  memory_dynamic_max, the target; ``maxmem`` the static max); devices are
  ``(device (vif (bridge ..) (mac ..) ..))`` and ``(device (vbd (uname phy:/dev/..)
  (dev xvda1:disk) (mode w) ..))`` (server/netif.py and server/blkif.py
  getDeviceConfiguration). Source: tools/python/xen/xend/{XendConfig,PrettyPrint,sxp}.py
  and server/{netif,blkif}.py at commit 9e8672f1c3^ (the last tree with xend).
- xl: printf_info_sexp (tools/xl/xl_sxp.c at RELEASE-4.17.7; printf_info in
  tools/libxl/xl_cmdimpl.c at RELEASE-4.1.0) prints tab-indented lines, one
  ``(key value)`` each: ``max_memkb``/``target_memkb`` in KiB, disks as ``(device (tap
  (physpath ..) (virtpath ..) (readwrite 1)))`` and NICs as ``(device (vif (mac 00163e..)))``:
  twelve hex digits without colons, and no bridge at all (xl never printed one).

The reader is our own, after xend's sxp.Parser (quotes ' and ", backslash escapes,
atoms end at white space or a parenthesis). A general S-expression library would take ``'``
as a quote macro and ``;`` as a comment, which xend's strings do not mean.
"""

from __future__ import annotations

from dataclasses import dataclass

from hosts.drivers.xen_records import Disk, DomainDetail, Nic, XenParseError

Sxp = str | list  # an atom or a list of Sxp

_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}


@dataclass
class _Reader:
    text: str
    source: str
    pos: int = 0
    line: int = 1

    def error(self, expected: str) -> XenParseError:
        found = repr(self.text[self.pos : self.pos + 20]) if self.pos < len(self.text) else "the end"
        return XenParseError(f"{self.source}, line {self.line}: expected {expected}, found {found}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n\f\v":
            if self.text[self.pos] == "\n":
                self.line += 1
            self.pos += 1

    def value(self) -> Sxp:
        self.skip_space()
        if self.pos >= len(self.text):
            raise self.error("a value")
        char = self.text[self.pos]
        if char == "(":
            return self.list()
        if char == ")":
            raise self.error("a value")
        if char in "\"'":
            return self.string(char)
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in " \t\r\n\f\v()\"'":
            self.pos += 1
        return self.text[start : self.pos]

    def list(self) -> list:
        opened = self.line
        self.pos += 1  # "("
        items: list = []
        while True:
            self.skip_space()
            if self.pos >= len(self.text):
                raise self.error(f"')' to close the list opened on line {opened}")
            if self.text[self.pos] == ")":
                self.pos += 1
                return items
            items.append(self.value())

    def string(self, quote: str) -> str:
        self.pos += 1
        out = []
        while True:
            if self.pos >= len(self.text):
                raise self.error(f"{quote} to end the string")
            char = self.text[self.pos]
            self.pos += 1
            if char == quote:
                return "".join(out)
            if char == "\n":
                self.line += 1
            if char != "\\":
                out.append(char)
                continue
            escape = self.text[self.pos : self.pos + 1]
            self.pos += 1
            if escape in _ESCAPES:
                out.append(_ESCAPES[escape])
            elif escape == "x" and _hex(self.text[self.pos : self.pos + 2]):
                out.append(chr(int(self.text[self.pos : self.pos + 2], 16)))
                self.pos += 2
            elif escape and escape in "01234567":
                digits = escape
                while len(digits) < 3 and self.text[self.pos : self.pos + 1] in tuple("01234567"):
                    digits += self.text[self.pos]
                    self.pos += 1
                out.append(chr(int(digits, 8)))
            else:
                out.append("\\" + escape)  # xend keeps an escape it does not know


def _hex(text: str) -> bool:
    return len(text) == 2 and all(c in "0123456789abcdefABCDEF" for c in text)


CLOSE = ")"  # a ")" at the top level (see parse_list_long_sxp)


def parse_sxp(text: str, source: str = "`list -l`") -> list[Sxp]:
    """Every top-level form of ``text``, and a ``CLOSE`` for each ")" that closes nothing.
    Raises XenParseError naming the line and what was expected where the text is not
    S-expressions."""
    reader = _Reader(text, source)
    forms: list[Sxp] = []
    while True:
        reader.skip_space()
        if reader.pos >= len(text):
            return forms
        if text[reader.pos] == ")":
            reader.pos += 1
            forms.append(CLOSE)
            continue
        if text[reader.pos] != "(":
            raise reader.error("'(domain'")
        forms.append(reader.list())


# -- reading a domain out of it ---------------------------------------------------------------


def _children(form: list, key: str) -> list[list]:
    return [item for item in form[1:] if isinstance(item, list) and item and item[0] == key]


def _value(form: list, key: str) -> str | None:
    """child_value: the first atom of the first (key ...) child; "" for ``(key )``."""
    for child in _children(form, key):
        if len(child) < 2:
            return ""
        return child[1] if isinstance(child[1], str) else None
    return None


def _int(form: list, key: str, name: str, source: str) -> int | None:
    text = _value(form, key)
    if text is None:
        return None
    try:
        return int(float(text)) if "." in text else int(text)
    except ValueError:
        raise XenParseError(f"{source}: ({key} {text}) of {name} is not a number") from None


def _mac(text: str | None) -> str | None:
    if not text:
        return None
    if ":" not in text and len(text) == 12:
        text = ":".join(text[i : i + 2] for i in range(0, 12, 2))  # xl prints 00163e0a0b0c
    return text.lower()


def _vbd(dev: list) -> Disk | None:
    """A vbd/tap/tap2 of xend (uname, dev, mode) or a tap of xl (physpath, virtpath, readwrite)."""
    if _value(dev, "uname") is not None or _value(dev, "dev") is not None:
        uname = _value(dev, "uname") or ""
        vdev, _colon, devtype = (_value(dev, "dev") or "").partition(":")
        prefix, colon, path = uname.partition(":")
        script = None
        if colon and prefix in ("drbd", "iscsi", "nbd", "enbd"):
            script = f"block-{prefix}"
        while colon and prefix in (
            "phy",
            "file",
            "tap",
            "tap2",
            "aio",
            "qcow",
            "qcow2",
            "vhd",
            "raw",
            "drbd",
        ):
            uname = path
            prefix, colon, path = uname.partition(":")
        mode = (_value(dev, "mode") or "r")[:1]
        return Disk(
            target=uname, vdev=vdev, mode="w" if mode == "w" else "r", script=script, cdrom=devtype == "cdrom"
        )
    if _value(dev, "virtpath") is not None:
        path = _value(dev, "physpath") or ""
        return Disk(
            target="" if path == "(null)" else path,
            vdev=_value(dev, "virtpath") or "",
            mode="w" if _value(dev, "readwrite") == "1" else "r",
            cdrom=_value(dev, "is_cdrom") == "1",
        )
    return None


def domain_detail(form: Sxp, source: str = "`list -l`") -> DomainDetail | None:
    """One ``(domain ...)`` as a DomainDetail; None for Domain-0 and for a domain that is not
    running (xend lists a halted managed domain without a domid)."""
    if not isinstance(form, list) or not form or form[0] != "domain":
        raise XenParseError(f"{source}: expected (domain ...), found {str(form)[:60]!r}")
    name = _value(form, "name")
    if not name:
        raise XenParseError(f"{source}: a (domain ...) without (name ...)")
    domid = _int(form, "domid", name, source)
    if domid is None or domid <= 0:
        return None  # not running (xend's halted managed domain), or Domain-0
    if _value(form, "target_memkb") is not None:  # xl's form
        target_kb = _int(form, "target_memkb", name, source)
        max_kb = _int(form, "max_memkb", name, source)
        target = None if target_kb is None else target_kb // 1024
        maximum = None if max_kb is None else max_kb // 1024
        vcpus = _int(form, "max_vcpus", name, source)
    else:  # xend's form, in MiB
        target = _int(form, "memory", name, source)
        maximum = _int(form, "maxmem", name, source)
        vcpus = _int(form, "online_vcpus", name, source) or _int(form, "vcpus", name, source)
    if target is None:
        raise XenParseError(f"{source}: domain {name} has neither (memory ...) nor (target_memkb ...)")
    nics, disks = [], []
    for device in _children(form, "device"):
        for dev in (item for item in device[1:] if isinstance(item, list) and item):
            if dev[0] == "vif":
                bridge = _value(dev, "bridge")
                nics.append(Nic(mac=_mac(_value(dev, "mac")), bridge=bridge or None))
            elif dev[0] in ("vbd", "tap", "tap2"):
                disk = _vbd(dev)
                if disk is not None:
                    disks.append(disk)
    return DomainDetail(
        name=name,
        domid=domid,
        max_memory_mb=maximum,
        target_memory_mb=target,
        vcpus=vcpus or 1,
        nics=tuple(nics),
        disks=tuple(disks),
    )


def _grouped(forms: list[Sxp], source: str) -> list[list]:
    """xl's printf_info_sexp closes ``(domain`` too early for a PV domain: ``(linux 0)``
    is printed closed, so its ``\t\t)`` ends ``(image`` and its ``\t)`` ends ``(domain``;
    the ``(device ...)`` forms then follow at the top level and the final ``)`` closes
    nothing (xl_sxp.c, RELEASE-4.17.7; xl_cmdimpl.c printf_info, RELEASE-4.1.0). So top-level
    ``(device ...)`` forms belong to the domain before them, up to that stray ``)``."""
    domains: list[list] = []
    open_domain = False
    for form in forms:
        if form == CLOSE:
            if not open_domain:
                raise XenParseError(f"{source}: a ')' that closes nothing, not after a (domain ...)")
            open_domain = False
        elif isinstance(form, list) and form and form[0] == "domain":
            domains.append(list(form))
            open_domain = True
        elif isinstance(form, list) and form and form[0] == "device" and domains:
            domains[-1].append(form)
        else:
            raise XenParseError(f"{source}: expected (domain ...), found {str(form)[:60]!r}")
    return domains


def parse_list_long_sxp(text: str, source: str = "`list -l`") -> list[DomainDetail]:
    """Every running guest of an SXP long listing (Domain-0 left out, as for the JSON)."""
    details = []
    for form in _grouped(parse_sxp(text, source), source):
        detail = domain_detail(form, source)
        if detail is not None:
            details.append(detail)
    return details
