"""What the lab's `xl create` makes of a domain config, read with Xen's own libxlutil.

Written from xl's source, not from drportal's reader (hosts/drivers/xen_cfg.py), so the two
can disagree and the differential tests can see it. Sources, all at RELEASE-4.17.7:
- tools/xl/xl_parse.c ``parse_config_data``: which xlu_cfg_get_* call reads which key, what
  exits and what only warns (name, uuid, type/builder, memory, maxmem, vcpus, maxvcpus,
  kernel, bootloader, the ``disk`` and ``vif`` loops);
- tools/xl/xl_parse.c ``parse_disk_config``: each disk spec through xlu_disk_parse (the real one);
- tools/xl/xl_parse.c ``parse_nic_config`` and xl_nic.c ``set_default_nic_values``: libxlutil
  has no vif parser, so this module transcribes xl's loop (strtok on ",", leading blanks
  skipped, strncmp on ``key=``, the MAC read with strtoul(16)); ``rate=`` goes to the real
  xlu_vif_parse_rate, and libxl_nic.c ``libxl__device_nic_setdefault`` gives "xenbr0";
- tools/libs/light/libxl_create.c ``libxl__domain_build_info_setdefault``: max_memkb 32 MiB
  unless given, target_memkb = max_memkb unless given.
xl prints libxlutil's messages to stderr as they come; ``LabConfig.stderr`` keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hosts.drivers.xen_specs import NIC_COLO_KEYS
from hosts.lab import xlutil

ULONG_MAX = 2**64 - 1


class LabConfigError(Exception):
    """xl exits while reading the config: ``status`` and everything it printed."""

    def __init__(self, status: int, stderr: str) -> None:
        super().__init__(stderr)
        self.status = status
        self.stderr = stderr


@dataclass
class LabNic:
    mac: str | None  # None: xl leaves it to libxl (a random 00:16:3e MAC)
    bridge: str
    mac_invalid: bool = False  # xl printed "Invalid parameter `mac'." (and kept a partial MAC)


@dataclass
class LabDisk:
    target: str
    vdev: str
    mode: str
    script: str | None
    cdrom: bool


@dataclass
class LabConfig:
    name: str
    memory_mb: int
    max_memory_mb: int
    vcpus: int
    nics: list[LabNic]
    disks: list[LabDisk]
    uuid: str | None
    kind: str
    kernel: str | None
    bootloader: str | None
    stderr: str = ""  # what xl printed while reading it (warnings)
    unrecognized: list[str] = field(default_factory=list)


def _strtoul(buf: bytearray, at: int, base: int) -> tuple[int, int]:
    """C's strtoul over a NUL-terminated buffer: (value, end index). A read past the end
    of the buffer sees a NUL (xl would read whatever follows on its heap)."""

    def char(i: int) -> str:
        return chr(buf[i]) if i < len(buf) else "\0"

    i = at
    while char(i) in " \t\n\v\f\r":
        i += 1
    negative = char(i) == "-"
    if char(i) in "+-":
        i += 1
    if base == 16 and char(i) == "0" and char(i + 1) in "xX" and char(i + 2) in "0123456789abcdefABCDEF":
        i += 2
    start = i
    digits = "0123456789abcdef"[:base]
    while char(i).lower() in digits and char(i) != "\0":
        i += 1
    if i == start:
        return 0, at
    value = int(bytes(buf[start:i]).decode(), base)
    if value > ULONG_MAX:
        value = ULONG_MAX
    elif negative:
        value = (-value) % 2**64
    return value, i


def _token_text(buf: bytearray, at: int) -> str:
    end = buf.index(0, at) if 0 in buf[at:] else len(buf)
    return bytes(buf[at:end]).decode("utf-8", "surrogateescape")


def _parse_nic(
    cfg: xlutil.Config, buf: bytearray, at: int, nic: LabNic, said: list[str], lab: LabConfig
) -> None:
    """parse_nic_config for the token at ``buf[at:]`` (its return value is ignored by the
    caller, as in xl)."""
    token = _token_text(buf, at)

    def option(key: str) -> str | None:
        return token[len(key) + 1 :] if token.startswith(key + "=") else None

    if (value := option("type")) is not None:
        if value not in ("vif", "ioemu"):
            said.append("Invalid parameter `type'.\n")
    elif option("mac") is not None:
        pos = at + 4
        octets = []
        for _ in range(6):
            value, end = _strtoul(buf, pos, 16)
            if end == pos or value > 255:
                said.append("Invalid parameter `mac'.\n")
                nic.mac_invalid = True
                return
            octets.append(value)
            pos = end + 1
        nic.mac = ":".join(f"{octet:02x}" for octet in octets)
        nic.mac_invalid = False
    elif (value := option("bridge")) is not None:
        nic.bridge = value
    elif option("netdev") is not None:
        said.append("the netdev parameter is deprecated, please use gatewaydev instead\n")
    elif (value := option("rate")) is not None:
        rc, report = cfg.vif_rate_ok(value)
        said.append(report)
        if rc:
            raise LabConfigError(1, "".join(said))
    elif option("accel") is not None:
        said.append("the accel parameter for vifs is currently not supported\n")
    elif (value := option("devid")) is not None or (value := option("mtu")) is not None:
        number, end = _strtoul(bytearray(value.encode()), 0, 10)
        if end == 0 or number == ULONG_MAX:
            said.append(f'xl: failed to convert "{value}" to number\n')
            raise LabConfigError(1, "".join(said))
    elif token in ("trusted", "untrusted") or any(option(key) is not None for key in _STRING_KEYS):
        pass
    else:
        said.append(f"unrecognized argument `{token}'\n")
        lab.unrecognized.append(token)


# The keys parse_nic_config copies into libxl_device_nic without looking at them. The
# colo_* names are a plain table (checked against xl_parse.c by tests/xen), shared with the
# driver: a table of names, not a way of reading them.
_STRING_KEYS = (
    "gatewaydev",
    "ip",
    "script",
    "backend",
    "vifname",
    "model",
    "forwarddev",
    *sorted(NIC_COLO_KEYS),
)


def _vif(cfg: xlutil.Config, spec: str, said: list[str], lab: LabConfig) -> LabNic:
    """The ``vif`` loop's body: set_default_nic_values, then strtok(buf2, ",") and
    parse_nic_config on each token after skipping spaces."""
    nic = LabNic(mac=None, bridge="xenbr0")
    buf = bytearray(spec.encode("utf-8", "surrogateescape"))
    pos = 0
    while True:
        while pos < len(buf) and buf[pos] == ord(","):
            pos += 1  # strtok skips leading delimiters
        if pos >= len(buf):
            return nic
        end = buf.find(b",", pos)
        end = len(buf) if end < 0 else end
        if end < len(buf):
            buf[end] = 0  # strtok ends the token here; later commas stay until reached
        start = pos
        while start < len(buf) and buf[start] == ord(" "):
            start += 1
        _parse_nic(cfg, buf, start, nic, said, lab)
        pos = end + 1


def _warned(said: list[str], result: tuple) -> tuple:
    said.append(result[-1])
    return result


def read_config(text: str, source: str) -> LabConfig:
    """xl's parse_config_data for the parts the lab simulates. Raises LabConfigError with
    xl's exit status and words where xl gives up."""
    said: list[str] = []
    with xlutil.read(text, source) as cfg:
        said.append(cfg.report)
        if not cfg.ok:
            said.append("Failed to parse config: Invalid argument\n")
            raise LabConfigError(1, "".join(said))
        kind = None
        rc, value, _ = _warned(said, cfg.get_string("type"))
        if rc == 0:
            kind = next((k for k in ("hvm", "pv", "pvh") if k.startswith(value)), None)
            if kind is None:
                raise LabConfigError(1, "".join(said) + f"Invalid domain type {value}.\n")
        rc, builder, _ = _warned(said, cfg.get_string("builder"))
        if rc == 0:
            built = next((k for b, k in (("hvm", "hvm"), ("generic", "pv")) if b.startswith(builder)), None)
            if built is None:
                raise LabConfigError(1, "".join(said) + f"Invalid domain type {builder}.\n")
            if kind is not None and kind != built:
                raise LabConfigError(
                    1, "".join(said) + 'Contradicting "builder" and "type" options specified.\n'
                )
            kind = built
        rc, name, _ = _warned(said, cfg.get_string("name"))
        if rc:
            raise LabConfigError(1, "".join(said) + "Domain name must be specified.\n")
        rc, uuid, _ = _warned(said, cfg.get_string("uuid"))
        if rc == 0 and not _uuid_ok(uuid):
            raise LabConfigError(1, "".join(said) + f"Failed to parse UUID: {uuid}\n")
        numbers = {}
        for key in ("memory", "maxmem", "vcpus", "maxvcpus"):
            rc, number, _ = _warned(said, cfg.get_long(key))
            numbers[key] = number if rc == 0 else None
        vcpus = numbers["vcpus"] if numbers["vcpus"] is not None else 0
        if numbers["maxvcpus"] is not None and numbers["maxvcpus"] < vcpus:
            raise LabConfigError(1, "".join(said) + "xl: maxvcpus < vcpus\n")
        # b_info's MemKB fields are uint64_t: a negative number wraps to a huge one.
        max_kb = numbers["maxmem"] * 1024 % 2**64 if numbers["maxmem"] is not None else None
        target_kb = numbers["memory"] * 1024 % 2**64 if numbers["memory"] is not None else None
        max_kb = max_kb if max_kb is not None else target_kb
        max_kb = max_kb if max_kb is not None else 32 * 1024
        target_kb = target_kb if target_kb is not None else max_kb
        _, kernel, _ = _warned(said, cfg.get_string("kernel"))
        _, bootloader, _ = _warned(said, cfg.get_string("bootloader"))
        lab = LabConfig(
            name=str(name),
            memory_mb=target_kb // 1024,
            max_memory_mb=max_kb // 1024,
            vcpus=max(vcpus, 1),
            nics=[],
            disks=[],
            uuid=uuid,
            kind=kind or "pv",
            kernel=kernel,
            bootloader=bootloader,
        )
        disks, report = cfg.string_items("disk")
        said.append(report)
        for spec in disks or ():
            result = cfg.disk_parse(spec)
            said.append(result.report)
            if result.error == xlutil.JAMMED:
                raise LabConfigError(2, "".join(said))
            if result.error or result.disk is None:
                raise LabConfigError(1, "".join(said))
            disk = result.disk
            lab.disks.append(
                LabDisk(
                    target=disk.pdev_path or "",
                    vdev=disk.vdev or "",
                    mode="w" if disk.readwrite else "r",
                    script=disk.script,
                    cdrom=bool(disk.is_cdrom),
                )
            )
        vifs, report = cfg.string_items("vif")
        said.append(report)
        for spec in vifs or ():
            lab.nics.append(_vif(cfg, spec, said, lab))
    lab.stderr = "".join(said)
    return lab


def _uuid_ok(text: str) -> bool:
    # libuuid's uuid_parse, as libxl_uuid_from_string calls it: 36 characters, 8-4-4-4-12 hex.
    if len(text) != 36:
        return False
    return all(
        (char == "-") if index in (8, 13, 18, 23) else char in "0123456789abcdefABCDEF"
        for index, char in enumerate(text)
    )
