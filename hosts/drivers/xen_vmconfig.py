"""What xl would start from a domain config (xl_parse.c parse_config_data, RELEASE-4.17.7),
for the parts that matter to placement, and writing a config.

Where xl would start a domain from parts drportal does not interpret (a key it does not
know, a vif word xl ignores, a value xl only warns about), vm_config reads what it
understands and lists the rest in ``VmConfig.warnings``; it refuses only what xl refuses.
The grammar (read_cfg) is in xen_cfg.py, the disk and vif specs in xen_specs.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hosts.drivers.xen_cfg import CfgValue, ParsedCfg, cfg_long, cfg_string, cfg_string_items, where
from hosts.drivers.xen_records import ConfigParseError, Disk, Nic
from hosts.drivers.xen_specs import scan_disk_spec, scan_vif_spec


def _as_parsed(values: ParsedCfg | Mapping[str, CfgValue]) -> ParsedCfg:
    if isinstance(values, ParsedCfg):
        return values
    return ParsedCfg("<config>", dict(values), {})


# -- a domain's config, as xl builds it -------------------------------------------------------

# Keys xl.cfg(5) documents that change nothing drportal plans with (placement is memory,
# vCPUs, disks and NICs); any other key gets a warning, since xl would apply it unseen.
_HARMLESS_KEYS = frozenset(
    [
        "on_poweroff",
        "on_reboot",
        "on_watchdog",
        "on_crash",
        "on_soft_reset",
        "extra",
        "cmdline",
        "root",
        "ramdisk",
        "bootloader_args",
        "cpus",
        "cpus_soft",
        "cpu_weight",
        "cap",
        "period",
        "slice",
        "latency",
        "extratime",
        "pool",
        "seclabel",
        "init_seclabel",
        "vnc",
        "vnclisten",
        "vncdisplay",
        "vncunused",
        "vncpasswd",
        "vncconsole",
        "sdl",
        "opengl",
        "display",
        "xauthority",
        "keymap",
        "serial",
        "localtime",
        "rtc_timeoffset",
        "vfb",
        "vkb",
        "channel",
        "console",
        "boot",
        "acpi",
        "apic",
        "pae",
        "nx",
        "hpet",
        "viridian",
        "usb",
        "usbdevice",
        "usbctrl",
        "usbdev",
        "soundhw",
        "device_model_version",
        "device_model_override",
        "stdvga",
        "vga",
        "xen_platform_pci",
        "nestedhvm",
        "max_grant_frames",
        "max_maptrack_frames",
        "max_event_channels",
        "tsc_mode",
        "hap",
        "oos",
        "description",
        "vif2",
        "timer_mode",
        "acpi_s3",
        "acpi_s4",
        "vpt_align",
    ]
)
_INTERPRETED_KEYS = frozenset(
    [
        "name",
        "uuid",
        "type",
        "builder",
        "memory",
        "maxmem",
        "vcpus",
        "maxvcpus",
        "vif",
        "disk",
        "kernel",
        "bootloader",
    ]
)
_MEMORY_KEYS = {
    "shadow_memory": "shadow memory is extra to `memory`",
    "videoram": "video RAM is taken from the domain's memory (HVM)",
    "vnuma": "vNUMA nodes set the memory and vCPUs instead of memory=/vcpus=",
    "pci": "a PCI device passed through pins all of the domain's memory",
}
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class VmConfig:
    name: str
    memory_mb: int
    max_memory_mb: int  # libxl's max_memkb: maxmem, or memory when maxmem is not given
    vcpus: int
    nics: tuple[Nic, ...]
    disks: tuple[Disk, ...]
    uuid: str | None = None
    type: str = "pv"  # pv, pvh or hvm
    kernel: str | None = None
    bootloader: str | None = None
    max_vcpus: int | None = None
    # What xl would accept but drportal did not interpret (or xl itself warns about):
    warnings: tuple[str, ...] = field(default=(), compare=False)


def _domain_type(cfg: ParsedCfg, warnings: list[str]) -> str:
    # xl_parse.c: strncmp(buf, "hvm", strlen(buf)), so any prefix (even '') selects it.
    kind = None
    text, warning = cfg_string(cfg, "type")
    warnings += [warning] if warning else []
    if text is not None:
        kind = next((k for k in ("hvm", "pv", "pvh") if k.startswith(text)), None)
        if kind is None:
            raise ConfigParseError(f"Invalid domain type {text}.")
    builder, warning = cfg_string(cfg, "builder")
    warnings += [warning] if warning else []
    if builder is not None:
        built = next((k for b, k in (("hvm", "hvm"), ("generic", "pv")) if b.startswith(builder)), None)
        if built is None:
            raise ConfigParseError(f"Invalid domain type {builder}.")
        if kind is not None and kind != built:
            raise ConfigParseError('Contradicting "builder" and "type" options specified.')
        kind = built
    return kind or "pv"


def _number(cfg: ParsedCfg, name: str, warnings: list[str]) -> int | None:
    value, warning = cfg_long(cfg, name)
    if warning:
        warnings.append(f"{warning} (xl ignores it and uses its default)")
    if value is not None and value <= 0:
        raise ConfigParseError(f"{where(cfg, name)}: {name} = {value}: must be a positive number")
    return value


def vm_config(values: ParsedCfg | Mapping[str, CfgValue]) -> VmConfig:
    """What xl would make of a config (xl_parse.c parse_config_data, RELEASE-4.17.7), for
    the parts that matter to placement: name, memory, vCPUs, devices. Raises
    ConfigParseError only where xl exits; the rest xl would start with is in ``warnings``."""
    cfg = _as_parsed(values)
    warnings: list[str] = []
    kind = _domain_type(cfg, warnings)
    name, warning = cfg_string(cfg, "name")
    if warning:
        warnings.append(warning)
    if name is None:
        raise ConfigParseError("Domain name must be specified.")
    if not name:
        warnings.append(
            f"{where(cfg, 'name')}: name is empty: xl accepts it, but drportal cannot address the domain"
        )
    uuid, warning = cfg_string(cfg, "uuid")
    if warning:
        warnings.append(f"{warning} (xl makes up a UUID)")
    if uuid is not None and not (len(uuid) == 36 and _UUID.fullmatch(uuid)):
        raise ConfigParseError(f"Failed to parse UUID: {uuid}")
    memory = _number(cfg, "memory", warnings)
    maxmem = _number(cfg, "maxmem", warnings)
    vcpus = _number(cfg, "vcpus", warnings) or 1
    max_vcpus = _number(cfg, "maxvcpus", warnings)
    if max_vcpus is not None and max_vcpus < vcpus:
        raise ConfigParseError("xl: maxvcpus < vcpus")
    # libxl__domain_build_info_setdefault: max 32 MiB unless given, target = max unless given.
    maxmem_or_memory = maxmem if maxmem is not None else memory
    max_memory = maxmem_or_memory if maxmem_or_memory is not None else 32
    memory = memory if memory is not None else max_memory
    if max_memory < memory:
        warnings.append(
            f"{where(cfg, 'maxmem')}: maxmem {max_memory} MiB is below memory {memory} MiB: the domain "
            f"starts with {memory} MiB but cannot be given more than {max_memory} MiB by mem-set"
        )
    kernel, warning = cfg_string(cfg, "kernel")
    warnings += [warning] if warning else []
    bootloader, warning = cfg_string(cfg, "bootloader")
    warnings += [warning] if warning else []
    disks = []
    specs, warning = cfg_string_items(cfg, "disk")
    warnings += [warning] if warning else []
    for index, spec in enumerate(specs):
        parsed, error = scan_disk_spec(spec, cfg.source)
        if error is not None:
            raise ConfigParseError(error)
        if parsed.backend_domname:
            warnings.append(
                f"disk {index} ({parsed.vdev}) is served by domain {parsed.backend_domname}, not dom0"
            )
        disks.append(parsed.disk())
    nics = []
    specs, warning = cfg_string_items(cfg, "vif")
    warnings += [warning] if warning else []
    for index, spec in enumerate(specs):
        vif = scan_vif_spec(spec, cfg.source)
        warnings += [f"{where(cfg, 'vif')}: vif {index} ({spec!r}): {text}" for text in vif.warnings]
        nics.append(vif.nic)
    if kind == "hvm":
        warnings.append("type hvm: the device model's memory is not in drportal's figures")
    for key in cfg.values:
        if key in _MEMORY_KEYS:
            warnings.append(f"{where(cfg, key)}: `{key}' is not interpreted by drportal: {_MEMORY_KEYS[key]}")
        elif key not in _INTERPRETED_KEYS and key not in _HARMLESS_KEYS:
            warnings.append(f"{where(cfg, key)}: `{key}' is not interpreted by drportal (xl applies it)")
    return VmConfig(
        name=name,
        memory_mb=memory,
        max_memory_mb=max_memory,
        vcpus=vcpus,
        nics=tuple(nics),
        disks=tuple(disks),
        uuid=uuid,
        type=kind,
        kernel=kernel,
        bootloader=bootloader,
        max_vcpus=max_vcpus,
        warnings=tuple(warnings),
    )


# -- writing one ----------------------------------------------------------------------------


def _quote(text: str) -> str:
    if any(char in text for char in "'\\\n\r"):
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
