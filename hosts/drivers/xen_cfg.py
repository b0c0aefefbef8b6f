"""The xl.cfg subset of `/etc/xen/vm/<name>`: read (never exec'd) and written.

Shared by the driver (discovery reads the configs over SSH) and the lab simulator (which
"boots" a domain from the file it finds). Grammar per xl.cfg(5) / libxlutil: ``KEY = VALUE``
separated by newlines or ``;``; VALUE a quoted string, a number (decimal, 0octal, 0xhex)
or a ``[ ... ]`` list that may span lines and end in a comma; ``#`` comments. xm configs
were Python and allowed more; the files of this estate stay inside this subset.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from hosts.drivers.xen_parse import ConfigParseError, Disk, Nic

CfgValue = str | int | list  # list items are CfgValue too

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r]+)
  | (?P<comment>\#[^\n]*)
  | (?P<newline>\n)
  | (?P<punct>[=;\[\],])
  | (?P<string>'[^'\n]*'|"(?:[^"\\\n]|\\.)*")
  | (?P<number>0[xX][0-9a-fA-F]+|[0-9]+)(?![A-Za-z0-9_.])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # punct text ("=", "[", ...), "STRING", "NUMBER", "IDENT", "NEWLINE", "EOF"
    text: str
    value: str | int | None
    line: int


def _unquote(text: str) -> str:
    body = text[1:-1]
    if text[0] == "'":
        return body
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _tokens(text: str, source: str) -> Iterator[_Tok]:
    """Lazily, like flex under bison: a syntax error earlier in the file is reported before
    a lexical one later on (xl prints ``near `xen': syntax error`` for ``name = xen-f``)."""
    line, pos = 1, 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            bad = re.match(r"\S+", text[pos:])
            near = bad.group(0) if bad else text[pos]
            raise ConfigParseError(f"{source}:{line}: config parsing error near `{near}': lexical error")
        kind, chunk = match.lastgroup, match.group(0)
        pos = match.end()
        if kind == "newline":
            yield _Tok("NEWLINE", "\n", None, line)
            line += 1
        elif kind == "punct":
            yield _Tok(chunk, chunk, None, line)
        elif kind == "string":
            yield _Tok("STRING", chunk, _unquote(chunk), line)
        elif kind == "number":
            yield _Tok("NUMBER", chunk, int(chunk, 0) if chunk[:2].lower() == "0x" else _num(chunk), line)
        elif kind == "ident":
            yield _Tok("IDENT", chunk, chunk, line)
    yield _Tok("EOF", "", None, line)


def _num(chunk: str) -> int:
    # C's strtol(base 0): a leading 0 means octal, as in libxlutil.
    return int(chunk, 8) if len(chunk) > 1 and chunk.startswith("0") else int(chunk)


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.tokens = _tokens(text, source)
        self.source = source
        self.ahead: _Tok | None = None

    def peek(self) -> _Tok:
        if self.ahead is None:
            self.ahead = next(self.tokens)
        return self.ahead

    def take(self) -> _Tok:
        tok = self.peek()
        if tok.kind != "EOF":
            self.ahead = None
        return tok

    def error(self, tok: _Tok, expecting: str) -> ConfigParseError:
        # The shape of libxlutil's bison messages, which xl prints before giving up.
        near = tok.text if tok.kind != "NEWLINE" else "\\n"
        unexpected = tok.kind if tok.kind in ("STRING", "NUMBER", "IDENT", "NEWLINE") else f"'{tok.text}'"
        if tok.kind == "EOF":
            unexpected = "$end"
        return ConfigParseError(
            f"{self.source}:{tok.line}: config parsing error near `{near}': "
            f"syntax error, unexpected {unexpected}, expecting {expecting}"
        )

    def skip_newlines(self) -> None:
        while self.peek().kind == "NEWLINE":
            self.take()

    def value(self) -> CfgValue:
        tok = self.take()
        if tok.kind in ("STRING", "NUMBER"):
            assert tok.value is not None
            return tok.value
        if tok.kind == "[":
            items: list[CfgValue] = []
            self.skip_newlines()
            while self.peek().kind != "]":
                items.append(self.value())
                self.skip_newlines()
                if self.peek().kind == ",":
                    self.take()
                    self.skip_newlines()
                elif self.peek().kind != "]":
                    raise self.error(self.peek(), "',' or ']'")
            self.take()
            return items
        raise self.error(tok, "STRING or NUMBER or '['")

    def parse(self) -> dict[str, CfgValue]:
        values: dict[str, CfgValue] = {}
        while True:
            tok = self.take()
            if tok.kind == "EOF":
                return values
            if tok.kind in ("NEWLINE", ";"):
                continue
            if tok.kind != "IDENT":
                raise self.error(tok, "IDENT")
            if self.peek().kind != "=":
                raise self.error(self.peek(), "'='")
            self.take()
            # A later setting wins: that is how `xl create cfg memory=512` overrides.
            values[str(tok.value)] = self.value()
            end = self.peek()
            if end.kind not in ("NEWLINE", ";", "EOF"):
                raise self.error(end, "NEWLINE or ';'")


def parse_cfg(text: str, source: str = "<config>") -> dict[str, CfgValue]:
    """Settings of an xl.cfg as plain values (str, int, nested lists). Raises
    ConfigParseError worded like xl's ``<file>:<line>: config parsing error near ...``."""
    return _Parser(text, source).parse()


# -- disk and vif specs ---------------------------------------------------------------------

_IGNORED_PREFIXES = {
    "tapdisk",
    "tap2",
    "tap",
    "aio",
    "ioemu",
    "file",
    "phy",
    "raw",
    "qcow",
    "qcow2",
    "vhd",
    "qed",
}
_SCRIPT_PREFIXES = {"iscsi", "nbd", "enbd", "drbd"}  # equivalent to script=block-<name>
_FORMATS = {"", "raw", "qcow", "qcow2", "vhd", "qed", "empty"}
_ACCESS = {"w": "w", "rw": "w", "r": "r", "ro": "r"}


def _access(value: str, spec: str) -> str:
    try:
        return _ACCESS[value.strip().lower()]
    except KeyError:
        raise ConfigParseError(f"invalid access mode {value!r} in disk spec {spec!r}") from None


def parse_disk_spec(spec: str) -> Disk:
    """One ``disk=[...]`` entry: ``phy:/dev/vg/lv,xvda1,w`` (legacy), ``/dev/vg/lv,raw,xvda,rw``
    (positional), ``vdev=xvda,access=rw,target=/dev/vg/lv`` (keys) or ``drbd:res,xvda,w``."""
    target: str | None = None
    vdev: str | None = None
    mode = "w"  # libxl's default access is rw
    script: str | None = None
    head, sep, tail = spec.partition("target=")
    if sep and (not head or head.endswith(",")):
        target = tail  # target= swallows the rest, commas and all
        spec_rest = head.rstrip(",")
    else:
        spec_rest = spec
    positional: list[str] = []
    had_prefix = False
    for part in spec_rest.split(",") if spec_rest else []:
        part = part.strip()
        key, eq, value = part.partition("=")
        if eq:
            key = key.strip().lower()
            if key == "vdev":
                vdev = value.strip()
            elif key == "access":
                mode = _access(value, spec)
            elif key == "script":
                script = value.strip() or None
            elif key == "target":
                target = value.strip()
            continue  # format=, devtype=, backendtype=, ... do not matter here
        if not positional:
            while ":" in part and part.split(":", 1)[0].lower() in _IGNORED_PREFIXES | _SCRIPT_PREFIXES:
                prefix, part = part.split(":", 1)
                had_prefix = True
                if prefix.lower() in _SCRIPT_PREFIXES:
                    script = f"block-{prefix.lower()}"
        positional.append(part)
    if positional:
        # target, format, vdev, access; the format slot is absent after a legacy prefix or
        # when the second word is not a format (legacy "/dev/x,xvda1,w" without a prefix).
        if had_prefix or (len(positional) > 1 and positional[1].lower() not in _FORMATS):
            positional.insert(1, "")
        slots = positional + [""] * (4 - len(positional))
        if len(positional) > 4:
            raise ConfigParseError(f"too many positional parameters in disk spec {spec!r}")
        target = target or slots[0] or None
        if slots[2]:
            vdev = slots[2].split(":", 1)[0]  # "hdc:cdrom" -> "hdc"
        if slots[3]:
            mode = _access(slots[3], spec)
    if not target or not vdev:
        raise ConfigParseError(f"disk spec {spec!r} needs a target and a vdev")
    return Disk(target=target, vdev=vdev, mode=mode, script=script)


def parse_vif_spec(spec: str, default_bridge: str = "xenbr0") -> Nic:
    """One ``vif=[...]`` entry: ``mac=00:16:3e:..,bridge=xenbr0`` (keys in any order;
    ``''`` means all defaults: a random Xen MAC on xenbr0)."""
    mac: str | None = None
    bridge = default_bridge
    for part in spec.split(","):
        key, eq, value = part.strip().partition("=")
        if not eq:
            if key:
                raise ConfigParseError(f"vif spec {spec!r}: {key!r} is not key=value")
            continue
        key = key.strip().lower()
        if key == "mac":
            mac = value.strip().lower()
            if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac):
                raise ConfigParseError(f"vif spec {spec!r}: invalid MAC address {value!r}")
        elif key == "bridge":
            bridge = value.strip()
    return Nic(mac=mac, bridge=bridge)


# -- a domain's config, as the toolstack would build it -------------------------------------


@dataclass(frozen=True)
class VmConfig:
    name: str
    memory_mb: int
    max_memory_mb: int
    vcpus: int
    nics: tuple[Nic, ...]
    disks: tuple[Disk, ...]
    uuid: str | None = None


def _cfg_int(values: Mapping[str, CfgValue], key: str, default: int | None) -> int | None:
    value = values.get(key)
    if value is None:
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())  # xl accepts numbers quoted as strings: memory = '1024'
    raise ConfigParseError(f"invalid value for {key}: {value!r}")


def _cfg_strings(values: Mapping[str, CfgValue], key: str) -> list[str]:
    value = values.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigParseError(f"{key} must be a list of strings, not {value!r}")
    return list(value)


def vm_config(values: Mapping[str, CfgValue]) -> VmConfig:
    """The parts of a parsed config that matter to placement: name, memory, CPUs, devices.
    Defaults as in xl: maxmem = memory, vcpus 1. ``memory`` above ``maxmem`` raises
    maxmem to it (the simulator's choice: libxl would refuse or clamp depending on version)."""
    name = values.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigParseError("Domain name must be specified.")
    memory = _cfg_int(values, "memory", None)
    maxmem = _cfg_int(values, "maxmem", None)
    if memory is None:
        memory = maxmem if maxmem is not None else 32  # libxl's default is 32 MiB
    vcpus = _cfg_int(values, "vcpus", 1)
    assert vcpus is not None
    if memory <= 0 or vcpus <= 0:
        raise ConfigParseError("memory and vcpus must be positive")
    uuid = values.get("uuid")
    return VmConfig(
        name=name,
        memory_mb=memory,
        max_memory_mb=max(maxmem or memory, memory),
        vcpus=vcpus,
        nics=tuple(parse_vif_spec(spec) for spec in _cfg_strings(values, "vif")),
        disks=tuple(parse_disk_spec(spec) for spec in _cfg_strings(values, "disk")),
        uuid=uuid if isinstance(uuid, str) else None,
    )


# -- writing one ----------------------------------------------------------------------------


def _quote(text: str) -> str:
    if "'" in text or "\n" in text:
        raise ValueError(f"cannot write {text!r} into an xl.cfg string")
    return f"'{text}'"


def _field(item: object, name: str) -> object:
    return item[name] if isinstance(item, Mapping) else getattr(item, name)


def _list(key: str, items: list[str]) -> str:
    if not items:
        return f"{key} = [ ]"
    indent = " " * (len(key) + 5)
    return f"{key} = [ " + f",\n{indent}".join(_quote(item) for item in items) + " ]"


def render_cfg(
    *,
    name: str,
    memory_mb: int,
    vcpus: int = 1,
    nics: Iterable[Nic | Mapping[str, object]] = (),
    disks: Iterable[Disk | Mapping[str, object]] = (),
    max_memory_mb: int | None = None,
    uuid: str | None = None,
    bootloader: str | None = "pygrub",
    comment: str | None = None,
) -> str:
    """An xl.cfg in the thesis' style (``vif=[ 'mac=..,bridge=xenbr0', ... ]``,
    ``disk=[ 'phy:/dev/vg_lws01/lvol1,xvda1,w', ... ]``). Nics and disks may be records
    or dicts with the same keys (the lab state's shape)."""
    lines = [f"# {line}".rstrip() for line in (comment or "").splitlines()]
    lines.append(f"name = {_quote(name)}")
    if uuid:
        lines.append(f"uuid = {_quote(uuid)}")
    lines.append(f"memory = {int(memory_mb)}")
    if max_memory_mb is not None:
        lines.append(f"maxmem = {int(max_memory_mb)}")
    lines.append(f"vcpus = {int(vcpus)}")
    if bootloader:
        lines.append(f"bootloader = {_quote(bootloader)}")
    vifs = []
    for nic in nics:
        mac, bridge = _field(nic, "mac"), _field(nic, "bridge")
        vifs.append(",".join(part for part in (f"mac={mac}" if mac else "", f"bridge={bridge}") if part))
    lines.append(_list("vif", vifs))
    specs = []
    for disk in disks:
        script = _field(disk, "script") if isinstance(disk, Disk) else disk.get("script")
        prefix = f"{str(script).removeprefix('block-')}:" if script else "phy:"
        specs.append(f"{prefix}{_field(disk, 'target')},{_field(disk, 'vdev')},{_field(disk, 'mode')}")
    lines.append(_list("disk", specs))
    lines += ["on_poweroff = 'destroy'", "on_reboot = 'restart'", "on_crash = 'restart'"]
    return "\n".join(lines) + "\n"
