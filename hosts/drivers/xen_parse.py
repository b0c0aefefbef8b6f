"""What `xl`/`xm` print, read into typed records (no I/O here; the driver is in xen.py).

Formats follow docs xen-storage-cli-reference.md §1: `xl list` is a printf with a TAB in
its header, xm's is space-padded with the state right-justified in ten columns; both are
read by splitting on whitespace, as Ganeti does, so tab expansion and long names (which
push the columns right) do not matter. `xl list -l` is JSON on modern xl and S-expressions
on xm and on xl configured with ``output_format="sxp"``; we only read the JSON.
"""

from __future__ import annotations

import json
import re

from hosts.drivers.xen_records import (  # the records live in a leaf; re-exported here
    _STATE_POSITIONS,
    Disk,
    Domain,
    DomainDetail,
    HostInfo,
    Nic,
    XenParseError,
)
from hosts.drivers.xen_sxp import parse_list_long_sxp

# -- xl list / xm list ----------------------------------------------------------------------

_INT = re.compile(r"^\d+$")
_FLOAT = re.compile(r"^\d+(\.\d+)?$")


def _valid_state(state: str) -> bool:
    return len(state) == 6 and all(
        flag in allowed for flag, allowed in zip(state, _STATE_POSITIONS, strict=False)
    )


def _row(fields: list[str]) -> Domain | None:
    """name ID Mem VCPUs State Time(s), or xm's row of a halted managed domain. The name
    is everything before the last five columns, so a name is never cut in two."""
    if len(fields) >= 6:
        name, (domid, mem, vcpus, state, cpu) = fields[:-5], fields[-5:]
        numbers = all(_INT.match(word) for word in (domid, mem, vcpus))
        if numbers and _valid_state(state) and _FLOAT.match(cpu):
            return Domain(" ".join(name), int(domid), int(mem), int(vcpus), state, float(cpu))
    if len(fields) in (4, 5):
        # xend-managed but halted: xm leaves ID (and usually State) blank.
        name_, mem, vcpus, *state, cpu = fields
        flags = state[0] if state else "------"
        if _INT.match(mem) and _INT.match(vcpus) and _valid_state(flags) and _FLOAT.match(cpu):
            return Domain(name_, None, int(mem), int(vcpus), flags, float(cpu))
    return None


def parse_list(text: str) -> list[Domain]:
    """Rows of `xl list` or `xm list` (header optional). Raises XenParseError naming the
    first line that is not a domain row."""
    domains: list[Domain] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "Name" and "ID" in fields:
            continue  # the header, tabs and all
        domain = _row(fields)
        if domain is None:
            raise XenParseError(f"cannot parse line {number} of the domain list: {line!r}")
        domains.append(domain)
    return domains


# -- xl info / xm info ----------------------------------------------------------------------


def _info_int(raw: dict[str, str], *keys: str) -> int:
    for key in keys:
        value = raw.get(key)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                raise XenParseError(f"{key} is not a number in the host info: {value!r}") from None
    raise XenParseError(f"the host info lacks {' / '.join(keys)}")


def parse_info(text: str) -> HostInfo:
    """`xl info` / `xm info`: ``key : value`` lines (the value may itself contain ':')."""
    raw: dict[str, str] = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        key = key.strip()
        if not colon or not key or " " in key:
            continue  # not a key line (a stray warning); the required keys are checked below
        value = value.strip()
        raw[key] = "" if value == "(none)" else value  # xm prints (none) for empty values
    total = _info_int(raw, "total_memory", "memory")  # very old xm info said "memory"
    free = _info_int(raw, "free_memory")
    cpus = _info_int(raw, "nr_cpus")
    if "xen_major" in raw and "xen_minor" in raw:
        version = f"{raw['xen_major']}.{raw['xen_minor']}{raw.get('xen_extra', '')}"
    elif raw.get("xen_version"):
        version = raw["xen_version"]
    else:
        raise XenParseError("the host info lacks xen_major / xen_minor")
    return HostInfo(total, free, cpus, version, raw)


# -- xl list -l (JSON) ----------------------------------------------------------------------


def _json_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise XenParseError(f"{what} is not an integer in `list -l`: {value!r}")
    return value


def _detail(entry: object) -> DomainDetail:
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise XenParseError(f"`list -l` entry without a config: {str(entry)[:200]!r}")
    config = entry["config"]
    c_info = config.get("c_info") or {}
    b_info = config.get("b_info") or {}
    name = c_info.get("name")
    if not isinstance(name, str) or not name:
        raise XenParseError(f"`list -l` entry without c_info.name: {str(entry)[:200]!r}")
    domid = _json_int(entry.get("domid"), f"domid of {name}")
    max_kb = b_info.get("max_memkb")
    target_kb = b_info.get("target_memkb", max_kb)
    if target_kb is None:
        raise XenParseError(f"`list -l` entry of {name} has no memory")
    avail = b_info.get("avail_vcpus")
    # avail_vcpus is the online bitmap as a list of CPU numbers; old 4.4 dumps may leave it out.
    if isinstance(avail, list) and avail:
        vcpus = len(avail)
    else:
        vcpus = _json_int(b_info.get("max_vcpus", 1), f"max_vcpus of {name}")
    nics = tuple(
        Nic(
            mac=str(nic["mac"]).lower() if nic.get("mac") else None,
            bridge=str(nic.get("bridge") or "xenbr0"),
        )
        for nic in config.get("nics") or ()
    )
    disks = tuple(
        Disk(
            target=str(disk.get("pdev_path") or ""),
            vdev=str(disk.get("vdev") or ""),
            # readwrite is omitted when 0 (sparse output): absent means read-only.
            mode="w" if disk.get("readwrite") else "r",
            script=disk.get("script") or None,
        )
        for disk in config.get("disks") or ()
    )
    return DomainDetail(
        name=name,
        domid=domid,
        max_memory_mb=None if max_kb is None else _json_int(max_kb, f"max_memkb of {name}") // 1024,
        target_memory_mb=_json_int(target_kb, f"target_memkb of {name}") // 1024,
        vcpus=vcpus,
        nics=nics,
        disks=disks,
    )


def parse_list_long(text: str, source: str = "`list -l`") -> list[DomainDetail]:
    """`xl list -l`: a JSON array of ``{"domid": N, "config": {...}}``, sparse (modern) or
    complete (Xen 4.4); or S-expressions (xm, Xen 4.0/4.1 xl, output_format="sxp"), read
    by xen_sxp.py. Raises XenParseError, naming what it expected, for anything else."""
    stripped = text.strip()
    if not stripped:
        return []  # some builds print nothing when only Domain-0 runs
    if stripped.startswith("("):
        return parse_list_long_sxp(stripped, source)
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise XenParseError(
            f"{source} is neither JSON nor S-expressions: {exc.msg} at line {exc.lineno} column {exc.colno}; "
            f"starts {stripped[:80]!r}"
        ) from None
    if isinstance(data, dict):
        data = [data]  # be lenient with a bare object
    if not isinstance(data, list):
        raise XenParseError(f"{source} is not a JSON array: {stripped[:80]!r}")
    return [_detail(entry) for entry in data]
