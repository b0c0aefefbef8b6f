"""The disk and vif specs of an xl.cfg, read as Xen 4.17 reads them (no I/O, no libxl).
(Past 500 lines because libxlu_disk_l.l's rule table is kept whole, in its order, here.)

Disk specs follow libxlutil's flex scanner (tools/libs/util/libxlu_disk_l.l and
xlu_disk_parse in libxlu_disk.c, RELEASE-4.17.7): the rules below are that scanner's, in its
order, matched the way flex matches (the longest match wins, the earlier rule on a tie, and
the trailing context after a ``/`` counts toward the length but is not consumed). The
differential tests hold this to the real xlu_disk_parse.

Vif specs follow xl's own loop (tools/xl/xl_parse.c, parse_config_data's ``vif`` loop and
parse_nic_config): strtok on ",", leading spaces dropped, ``key=`` matched case-sensitively,
the MAC read octet by octet with strtoul(16). xl ignores what parse_nic_config refuses
(its return value is not checked), so those are warnings here; only ``rate=`` (libxlu_vif.c
xlu_vif_parse_rate), ``devid=`` and ``mtu=`` (parse_ulong) make xl exit, so they are errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from hosts.drivers.xen_records import ConfigParseError, Disk, Nic

ULONG_MAX = 2**64 - 1
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
_C_SPACE = " \t\n\v\f\r"


def c_number(text: str, base: int) -> tuple[bool, int, int]:
    """What C's strto(u)l reads: (negative, magnitude, characters used; 0 = no number)."""
    i = 0
    while i < len(text) and text[i] in _C_SPACE:
        i += 1
    negative = False
    if i < len(text) and text[i] in "+-":
        negative = text[i] == "-"
        i += 1
    if base in (0, 16) and text[i : i + 2].lower() == "0x" and i + 2 < len(text) and _digit(text[i + 2], 16):
        i += 2
        base = 16
    elif base == 0:
        base = 8 if text[i : i + 1] == "0" else 10
    start = i
    while i < len(text) and _digit(text[i], base):
        i += 1
    if i == start:
        return False, 0, 0
    return negative, int(text[start:i], base), i


def c_strtoul(text: str, base: int) -> tuple[int, int]:
    """C's strtoul: (value, characters consumed); consumed 0 means no number. A leading
    '-' negates modulo 2**64, as C does; overflow gives ULONG_MAX."""
    negative, magnitude, used = c_number(text, base)
    if magnitude > ULONG_MAX:
        return ULONG_MAX, used
    return ((-magnitude) % 2**64 if negative else magnitude), used


_DIGIT_VALUE = {
    char: int(char, 36) for char in "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
}


def _digit(char: str, base: int) -> bool:
    """An ASCII digit or letter worth less than ``base`` (as C's strtol reads digits)."""
    return _DIGIT_VALUE.get(char, 36) < base


# -- disk specs -----------------------------------------------------------------------------

_FORMATS = {
    "": "raw",
    "raw": "raw",
    "qcow": "qcow",
    "qcow2": "qcow2",
    "vhd": "vhd",
    "empty": "empty",
    "qed": "qed",
}
_BACKENDS = {"phy", "tap", "qdisk", "standalone"}
_SPECIFICATIONS = {"xen", "virtio"}


@dataclass
class DiskSpec:
    """The fields of libxl_device_disk that xlu_disk_parse sets (format etc. by name)."""

    pdev_path: str | None = None
    vdev: str | None = None
    readwrite: int = 1
    is_cdrom: int = 0
    removable: int = 0
    format: str = "unknown"
    backend: str = "unknown"
    script: str | None = None
    backend_domname: str | None = None
    specification: str = "unknown"

    def disk(self) -> Disk:
        return Disk(
            target=self.pdev_path or "",
            vdev=self.vdev or "",
            mode="w" if self.readwrite else "r",
            script=self.script,
            cdrom=bool(self.is_cdrom),
            format=self.format,
        )


class _DiskScan:
    def __init__(self, spec: str, source: str) -> None:
        self.spec, self.source = spec, source
        self.d = DiskSpec()
        self.error: str | None = None
        self.access_set = False
        self.had_depr_prefix = False
        self.extra: dict[str, str] = {}
        self.jammed = False  # flex's "scanner jammed": xl exits with status 2 at once

    def err(self, erroneous: str | None, message: str) -> None:
        if self.error is None:  # the first message is the one xl prints first
            near = f": near `{erroneous}'" if erroneous is not None else ""
            self.error = (
                f"{self.source}: config parsing error in disk specification: {message}{near} in `{self.spec}'"
            )

    def save(self, what: str, attr: str, value: str) -> None:
        if getattr(self.d, attr):  # set and not empty
            self.err(value, f"{what} respecified")
            return
        setattr(self.d, attr, value)

    def set_enum(self, attr: str, value: str, given: str) -> None:
        current = getattr(self.d, attr)
        if current not in ("unknown", value):
            self.err(given, f"{attr} respecified")
        else:
            setattr(self.d, attr, value)

    def set_format(self, text: str) -> None:
        if text in _FORMATS:
            self.set_enum("format", _FORMATS[text], text)
        else:
            self.err(text, "unknown value for format")

    def set_access(self, text: str) -> None:
        if text in ("r", "ro"):
            self.d.readwrite = 0
        elif text in ("rw", "w", ""):
            self.d.readwrite = 1
        else:
            self.err(text, "unknown value for access")

    def vdev_and_devtype(self, text: str) -> bool:
        vdev, colon, devtype = text.rpartition(":")
        if not colon:
            return False
        self.save("vdev", "vdev", vdev)
        if devtype == "cdrom":
            self.d.is_cdrom = 1
        elif devtype == "disk":
            self.d.is_cdrom = 0
        else:
            self.err(devtype, "unknown deprecated type")
        return True

    def positional(self, text: str) -> bool:
        if self.error is not None:
            return True  # "previous errors may just lead to subsequent ones"
        d = self.d
        if d.pdev_path is None:
            self.save("target", "pdev_path", text)
        elif not self.had_depr_prefix and d.format == "unknown":
            if not d.pdev_path and self.vdev_and_devtype(text):
                d.format = "empty"
            else:
                self.set_format(text)
        elif d.vdev is None:
            if not self.vdev_and_devtype(text):
                self.save("vdev", "vdev", text)
        elif not self.access_set:
            self.access_set = True
            self.set_access(text)
        else:
            self.err(text, "too many positional parameters")
            return False
        return True


def _value(text: str) -> str:
    """STRIP(',') then FROMEQUALS, as the .l file's actions do."""
    return _strip(text, ",").split("=", 1)[1]


def _strip(text: str, delim: str) -> str:
    return text[:-1] if text.endswith(delim) else text


def _colo_port(scan: _DiskScan, text: str) -> None:
    value = _value(text)
    match = re.match(r"[ \t\n\v\f\r]*[+-]?\d+", value)  # atoi, non-zero
    if not match or int(match.group(0)) == 0:
        scan.err(value, "unknown value for colo_port")


def _enum(attr: str, allowed: set[str], what: str) -> Callable[[_DiskScan, str], None]:
    def action(scan: _DiskScan, text: str) -> None:
        value = _value(text)
        if value in allowed:
            scan.set_enum(attr, value, value)
        else:
            scan.err(value, f"unknown value for {what}")

    return action


def _string(what: str, attr: str | None) -> Callable[[_DiskScan, str], None]:
    def action(scan: _DiskScan, text: str) -> None:
        value = _value(text)
        if attr is not None:
            scan.save(what, attr, value)
        elif scan.extra.get(what):  # colo settings drportal does not keep, still checked
            scan.err(value, f"{what} respecified")
        else:
            scan.extra[what] = value

    return action


def _flag(attr: str | None, value: int = 1) -> Callable[[_DiskScan, str], None]:
    def action(scan: _DiskScan, text: str) -> None:
        if attr:
            setattr(scan.d, attr, value)

    return action


def _depr_format(scan: _DiskScan, text: str) -> None:
    scan.had_depr_prefix = True
    scan.set_format(_strip(text, ":"))


def _depr_script(scan: _DiskScan, text: str) -> None:
    scan.had_depr_prefix = True
    scan.save("script", "script", f"block-{_strip(text, ':')}")


def _depr_ignored(scan: _DiskScan, text: str) -> None:
    scan.had_depr_prefix = True


def _error(message: str) -> Callable[[_DiskScan, str], None]:
    def action(scan: _DiskScan, text: str) -> None:
        scan.err(text, message)

    return action


def _nothing(scan: _DiskScan, text: str) -> None:
    return None


_STOP = object()  # the rule's action ends the scan ("return 0" in the .l file)

# (pattern, trailing context or None, action, stops): libxlu_disk_l.l's rules in order.
_DISK_RULES: list[tuple[re.Pattern[str], re.Pattern[str] | None, Callable[[_DiskScan, str], None], bool]] = [
    (re.compile(r"[ \t\n]+"), re.compile(r"(?:[^ \t\n].*)?"), _nothing, False),
    (re.compile(r"format=[^,]*,?"), None, lambda s, t: s.set_format(_value(t)), False),
    (re.compile(r"cdrom,?"), None, _flag("is_cdrom"), False),
    (re.compile(r"devtype=cdrom,?"), None, _flag("is_cdrom"), False),
    (re.compile(r"devtype=disk,?"), None, _flag("is_cdrom", 0), False),
    (re.compile(r"devtype=[^,]*,?"), None, _error("unknown value for type"), False),
    (re.compile(r"access=[^,]*,?"), None, lambda s, t: s.set_access(_value(t)), False),
    (re.compile(r"backend=[^,]*,?"), None, _string("backend", "backend_domname"), False),
    (re.compile(r"backendtype=[^,]*,?"), None, _enum("backend", _BACKENDS, "backendtype"), False),
    (
        re.compile(r"specification=[^,]*,?"),
        None,
        _enum("specification", _SPECIFICATIONS, "specification"),
        False,
    ),
    (re.compile(r"vdev=[^,]*,?"), None, _string("vdev", "vdev"), False),
    (re.compile(r"script=[^,]*,?"), None, _string("script", "script"), False),
    (re.compile(r"direct-io-safe,?"), None, _nothing, False),
    (re.compile(r"discard,?"), None, _nothing, False),
    (re.compile(r"no-discard,?"), None, _nothing, False),
    (re.compile(r"colo,?"), None, _nothing, False),
    (re.compile(r"no-colo,?"), None, _nothing, False),
    (re.compile(r"colo-host=[^,]*,?"), None, _string("colo-host", None), False),
    (re.compile(r"colo-port=[^,]*,?"), None, _colo_port, False),
    (re.compile(r"colo-export=[^,]*,?"), None, _string("colo-export", None), False),
    (re.compile(r"active-disk=[^,]*,?"), None, _string("active-disk", None), False),
    (re.compile(r"hidden-disk=[^,]*,?"), None, _string("hidden-disk", None), False),
    # libxlu_disk_l.l has "trusted,?" and "untrusted,?" rules here, but the scanner that is
    # built, libxlu_disk_l.c as committed at RELEASE-4.17.7 (and in Debian's 4.17.7 library),
    # was generated before they were added: there "trusted" is a positional word.
    (re.compile(r"target=.*"), None, lambda s, t: s.save("target", "pdev_path", _value(t)), False),
    (re.compile(r"[a-z][-a-z0-9]*=[^,],?"), None, _error("unknown parameter"), False),
    (re.compile(r"(?:raw|qcow2?|vhd):"), re.compile(r".*"), _depr_format, False),
    (re.compile(r"(?:iscsi|e?nbd|drbd):"), re.compile(r".*"), _depr_script, False),
    (re.compile(r"tapdisk:"), re.compile(r".*"), _depr_ignored, False),
    (re.compile(r"tap2?:"), re.compile(r".*"), _depr_ignored, False),
    (re.compile(r"aio:"), re.compile(r".*"), _depr_ignored, False),
    (re.compile(r"ioemu:"), re.compile(r".*"), _depr_ignored, False),
    (re.compile(r"file:"), re.compile(r".*"), _depr_ignored, False),
    (re.compile(r"phy:"), re.compile(r".*"), _depr_ignored, False),
    (
        re.compile(r"[a-z][a-z0-9]*:"),
        re.compile(r"(?:[^a-z0-9].*)?"),
        _error("unknown deprecated disk prefix"),
        True,
    ),
]
# Some rule's head matches at a position exactly when this does (an alternation matches
# where one of its alternatives does): where it does not, only the positional rule can.
_ANY_HEAD = re.compile("|".join(f"(?:{head.pattern})" for head, _trail, _action, _stops in _DISK_RULES))
_POSITIONAL = re.compile(r"[^=,]*,|[^=,]+,?")
_POSITIONAL_ALTERNATIVES = (re.compile(r"[^=,]*,"), re.compile(r"[^=,]+,?"))


def _longest(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """The longest match of ``pattern`` at ``pos`` (flex is leftmost-longest; Python's
    alternation is not, so every alternative of the positional rule is tried)."""
    if pattern is _POSITIONAL:
        best = -1
        for alternative in _POSITIONAL_ALTERNATIVES:
            match = alternative.match(text, pos)
            if match:
                best = max(best, match.end() - pos)
        return best
    match = pattern.match(text, pos)
    return match.end() - pos if match else -1


def scan_disk_spec(spec: str, source: str = "command line") -> tuple[DiskSpec, str | None]:
    """xlu_disk_parse of one spec: the fields it sets and the first message it prints
    (None when the spec is accepted)."""
    scan = _DiskScan(spec, source)
    pos = 0
    while pos < len(spec):
        best_len, best = 0, None
        rules = _DISK_RULES if _ANY_HEAD.match(spec, pos) else ()  # a path: only the positional rule
        for index, (head, trail, _action, _stops) in enumerate(rules):
            match = head.match(spec, pos)  # no rule's head is the positional one (_longest)
            if match is None:
                continue
            length = match.end() - pos
            total = length + (_longest(trail, spec, pos + length) if trail is not None else 0)
            if total > best_len:
                best_len, best = total, (index, length)
        positional = _longest(_POSITIONAL, spec, pos)
        if positional > best_len:
            text = spec[pos : pos + positional]
            pos += positional
            if not scan.positional(_strip(text, ",")):
                break
            continue
        if best is None:
            # "." then <LEXERR>.*: the rest of the line is the bad syntax. At the end of the
            # spec nothing more is matched (no error); before a newline flex jams and exits.
            if pos + 1 < len(spec) and spec[pos + 1] == "\n":
                scan.jammed = True
                scan.error = f"flex scanner jammed (disk spec `{spec}' in {source})"
            elif pos + 1 < len(spec):
                end = spec.find("\n", pos + 1)
                end = len(spec) if end < 0 else end
                scan.err(spec[pos:end], "bad disk syntax")
            break
        index, length = best
        _head, _trail, action, stops = _DISK_RULES[index]
        text = spec[pos : pos + length]
        pos += length
        action(scan, text)
        if stops:
            break
    d = scan.d
    if scan.jammed:
        return d, scan.error
    if d.format == "unknown":
        d.format = "raw"
    if d.is_cdrom:
        d.removable, d.readwrite = 1, 0
        if not d.pdev_path:
            d.format = "empty"
    if d.vdev is None:
        scan.err(None, "no vdev specified")
    elif d.pdev_path is None and not d.removable:
        scan.err(None, "no target specified (and device not removable)")
    return d, scan.error


def parse_disk_spec(spec: str, source: str = "command line") -> Disk:
    """One ``disk=[...]`` entry, or ConfigParseError worded as xl prints it."""
    parsed, error = scan_disk_spec(spec, source)
    if error is not None:
        raise ConfigParseError(error)
    return parsed.disk()


# -- vif specs ------------------------------------------------------------------------------

# Keys parse_nic_config stores without checking (xl_parse.c, RELEASE-4.17.7); drportal
# needs none of them but bridge and mac.
_NIC_STRING_KEYS = (
    "bridge",
    "netdev",
    "gatewaydev",
    "ip",
    "script",
    "backend",
    "vifname",
    "model",
    "forwarddev",
)
_RATE_BYTES = re.compile(r"^[0-9]+[GMK]?[Bb]/s$")
_RATE_INTERVAL = re.compile(r"^[0-9]+[mu]?s?$")


def rate_error(rate: str) -> str | None:
    """What xlu_vif_parse_rate (libxlu_vif.c) says of a ``rate=`` value, None if it accepts it."""
    amount, at, interval = rate.partition("@")
    if amount == "":
        return "no rate specified"
    if not _RATE_BYTES.match(amount):
        return "invalid rate"
    value, used = c_strtoul(amount, 0)
    if value == 0 or value > UINT32_MAX:
        return "rate overflow"
    unit = amount[used : used + 2]
    value *= {"G": 10**9, "M": 10**6, "K": 10**3}.get(unit[:1], 1)
    if unit[:1] == "b" or unit[1:2] == "b":
        value //= 8
    usecs = 50000
    if at:
        if not _RATE_INTERVAL.match(interval):
            return "invalid replenishment interval"
        usecs, used = c_strtoul(interval, 0)
        if usecs == 0 or usecs > UINT32_MAX:
            return "replenishment interval overflow"
        suffix = interval[used : used + 1]
        usecs *= 10**6 if suffix in ("s", "") else 10**3 if suffix == "m" else 1
        if usecs > UINT32_MAX:
            return "replenishment interval overflow"
    if usecs and value > UINT64_MAX // usecs:
        return "rate overflow"
    return None


# A MAC as people write it: the loop below reads each pair as its octet, so it is the MAC.
_PLAIN_MAC = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}")


def _mac(text: str) -> str | None:
    """xl's MAC loop: six strtoul(16) octets, each followed by any one character; None
    where xl prints "Invalid parameter `mac'" (it then keeps a partial MAC)."""
    if _PLAIN_MAC.fullmatch(text):
        return text.lower()
    octets, rest = [], text
    for _ in range(6):
        value, used = c_strtoul(rest, 16)
        if used == 0 or value > 255:
            return None
        octets.append(value)
        if used >= len(rest):
            rest = ""  # xl reads on past the token here; drportal does not guess what it finds
            if len(octets) < 6:
                return None
        else:
            rest = rest[used + 1 :]
    return ":".join(f"{octet:02x}" for octet in octets)


@dataclass(frozen=True)
class VifSpec:
    nic: Nic
    warnings: tuple[str, ...]


def scan_vif_spec(spec: str, source: str = "command line", default_bridge: str = "xenbr0") -> VifSpec:
    """One ``vif=[...]`` entry as xl 4.17 reads it. Raises ConfigParseError only where xl
    exits; what xl merely complains about (and ignores) comes back as warnings."""
    mac: str | None = None
    bridge = default_bridge
    warnings: list[str] = []
    for raw in (token for token in spec.split(",") if token):
        token = raw.lstrip(" ")
        key, eq, value = token.partition("=")
        if not eq:
            if token not in ("trusted", "untrusted"):
                warnings.append(f"unrecognized argument `{token}' (xl ignores it)")
            continue
        if key == "mac":
            mac = _mac(value)
            if mac is None:
                warnings.append(
                    f"Invalid parameter `mac' ({value!r}): xl starts it with a MAC of its own making"
                )
        elif key == "bridge":
            bridge = value
        elif key == "type":
            if value not in ("vif", "ioemu"):
                warnings.append("Invalid parameter `type'. (xl ignores it)")
        elif key == "rate":
            error = rate_error(value)
            if error is not None:
                raise ConfigParseError(f"{source}: config parsing error in vif: {error} in `{value}'")
        elif key in ("devid", "mtu"):
            number, used = c_strtoul(value, 10)
            if used == 0 or number == ULONG_MAX:
                raise ConfigParseError(f'xl: failed to convert "{value}" to number')
        elif key == "accel":
            warnings.append("the accel parameter for vifs is currently not supported (xl ignores it)")
        elif key in _NIC_STRING_KEYS or key.startswith("colo_"):
            if key.startswith("colo_") and not _known_colo(key):
                warnings.append(f"unrecognized argument `{token}' (xl ignores it)")
        else:
            warnings.append(f"unrecognized argument `{token}' (xl ignores it)")
    return VifSpec(Nic(mac=mac, bridge=bridge), tuple(warnings))


# parse_nic_config's colo_* keys (xl_parse.c, RELEASE-4.17.7), all plain strings.
NIC_COLO_KEYS = frozenset(
    [
        f"colo_sock_{what}_{part}"
        for what in ("mirror", "compare_sec_in", "compare_pri_in", "compare_notify")
        for part in ("id", "ip", "port")
    ]
    + [f"colo_sock_redirector{n}_{part}" for n in range(3) for part in ("id", "ip", "port")]
    + [f"colo_sock_sec_redirector{n}_{part}" for n in range(2) for part in ("id", "ip", "port")]
    + ["colo_filter_mirror_queue", "colo_filter_mirror_outdev"]
    + [f"colo_filter_redirector{n}_{part}" for n in range(2) for part in ("queue", "indev", "outdev")]
    + [f"colo_filter_sec_redirector{n}_{part}" for n in range(2) for part in ("queue", "indev", "outdev")]
    + ["colo_filter_sec_rewriter0_queue", "colo_checkpoint_host", "colo_checkpoint_port"]
    + ["colo_compare_pri_in", "colo_compare_sec_in", "colo_compare_out", "colo_compare_notify_dev"]
)


def _known_colo(key: str) -> bool:
    return key in NIC_COLO_KEYS


def parse_vif_spec(spec: str, default_bridge: str = "xenbr0") -> Nic:
    """One ``vif=[...]`` entry's NIC (``''`` means all defaults: a random Xen MAC on the
    default bridge). Warnings are dropped here; vm_config keeps them."""
    return scan_vif_spec(spec, default_bridge=default_bridge).nic
