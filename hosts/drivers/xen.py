"""The Xen toolstack of a dom0 (`xl`, or `xm` on old hosts) driven over a Runner.

Every command is an argv of validated words handed to the runner, which quotes it
(base.quote_command) and applies a timeout; output is parsed into typed records
(xen_parse.py, xen_cfg.py) and failures become typed errors that keep the tool's words.
The engine is idempotent by observing first, so this driver never retries on its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from hosts.drivers.base import CommandResult, Runner
from hosts.drivers.xen_cfg import CfgValue, parse_cfg, read_cfg
from hosts.drivers.xen_parse import parse_info, parse_list, parse_list_long
from hosts.drivers.xen_records import (
    DOM0_NAME,
    BadKernel,
    BridgeUnavailable,
    ConfigNotFound,
    ConfigParseError,
    DeviceUnavailable,
    Disk,
    DiskUnavailable,
    Domain,
    DomainDetail,
    DomainNotFound,
    DuplicateDomain,
    HostInfo,
    Nic,
    NotEnoughMemory,
    SXPFormat,
    ToolNotFound,
    XenError,
    XenParseError,
)
from hosts.drivers.xen_specs import parse_disk_spec, parse_vif_spec
from hosts.drivers.xen_vmconfig import VmConfig, render_cfg, vm_config

__all__ = [
    "DOM0_NAME",
    "BadKernel",
    "BridgeUnavailable",
    "CfgValue",
    "ConfigNotFound",
    "ConfigParseError",
    "DeviceUnavailable",
    "Disk",
    "DiskUnavailable",
    "Domain",
    "DomainDetail",
    "DomainNotFound",
    "DuplicateDomain",
    "HostInfo",
    "Nic",
    "NotEnoughMemory",
    "SXPFormat",
    "ToolNotFound",
    "VmConfig",
    "XenDriver",
    "XenError",
    "XenParseError",
    "detect_toolstack",
    "error_from_result",
    "parse_cfg",
    "parse_disk_spec",
    "parse_info",
    "parse_list",
    "parse_list_long",
    "parse_vif_spec",
    "render_cfg",
    "validate_domain_name",
    "vm_config",
]

TOOLSTACKS = ("xl", "xm")

_NAME = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]{0,63}")


def validate_domain_name(name: str) -> str:
    """Letters, digits, ``.-_``, 1-64 characters, not starting with ``-`` (it would read as
    an option) and not all digits (xl takes an all-digit argument as a domid, so a VM
    called "3" would address whatever domain has id 3). Returns the name."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid domain name {name!r}: use 1-64 letters, digits, '.', '-', '_', not a leading '-'"
        )
    if name.isdigit():
        raise ValueError(f"invalid domain name {name!r}: all digits would be taken as a domain id")
    return name


_VDEV = re.compile(r"[a-z]{2,4}[a-z0-9]{1,8}")
_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
_BRIDGE = re.compile(r"[A-Za-z0-9_.-]{1,15}")


def _validate_path(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in "\0\n\r="):
        # '=' too: `xl create` reads a KEY=VALUE word as a config override, not a file.
        raise ValueError(f"invalid path {path!r}: must be absolute, on one line, without '='")
    return path


def _validate_mb(memory_mb: int) -> int:
    if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or not 0 < memory_mb <= 16 * 1024 * 1024:
        raise ValueError(f"invalid memory size {memory_mb!r} MiB")
    return memory_mb


# -- error mapping ---------------------------------------------------------------------------

# What a failed xl/xm command prints, by cause, from the sources (all xl/libxl at
# RELEASE-4.17.7 unless said; xend/xm at commit 9e8672f1c3^, the last tree with xend).
# Matched on stable fragments, never on libxl's file:line prefixes. Checked in order: a
# failed create also logs libxl's clean-up ("Non-existant domain"), so the specific causes
# come first, and "does not exist" alone is never taken for a missing domain (xm's block
# hotplug script says "/dev/x does not exist." of a disk).
_ERROR_PATTERNS: tuple[tuple[type[XenError], re.Pattern[str]], ...] = (
    (
        NotEnoughMemory,
        re.compile(
            # xl_vmcontrol.c create_domain, when freemem() cannot balloon dom0 down
            r"failed to free memory for the domain"
            # xg_dom_boot.c xc_dom_boot_mem_init (panic), libxl_dom.c libxl__build_dom
            r"|can't allocate low memory for domain|xc_dom_boot_mem_init failed"
            # xend balloon.py free(): "Not enough free memory ... I need %d KiB but only have %d"
            # and "I need %d KiB, but dom0_min_mem is %d and shrinking to %d KiB would leave only"
            r"|Not enough free memory and enable-dom0-ballooning|I need \d+ KiB,? but (only have|dom0_min_mem)",
        ),
    ),
    (
        DuplicateDomain,
        re.compile(
            # libxl_domain.c libxl__domain_rename (4.2+); libxl.c libxl_domain_rename (4.1)
            r"Domain with name \"[^\"]*\" already exists|domain with name \"[^\"]*\" already exists"
            # xend XendDomainInfo.py _checkName, and XendDomainInfo.create (domain_by_name)
            r"|VM name '[^']*' already exists|Domain '[^']*' already exists with ID",
        ),
    ),
    (
        ConfigNotFound,
        # xl_vmcontrol.c create_domain; xm create.py (Unable to open config file)
        re.compile(r"Failed to read config file: |Unable to open config file|Cannot open config file"),
    ),
    (
        ConfigParseError,
        re.compile(
            # libxlu_cfg.c xlu__cfg_yyerror / libxlu_disk.c xlu__disk_err / libxlu_vif.c
            # xlu__vif_err, then xl_parse.c parse_config_data "Failed to parse config"
            r"config parsing error|Failed to parse config|Domain name must be specified"
            r"|Invalid domain type |Failed to parse UUID: |xl: maxvcpus < vcpus|flex scanner jammed"
        ),
    ),
    (
        DiskUnavailable,
        re.compile(
            # libxl_device.c libxl__device_disk_set_backend, then libxl_create.c
            # initiate_domain_create "Unable to set disk defaults for disk %d"
            r"Disk vdev=\S+ failed to stat: |Unable to set disk defaults for disk"
            # xend DevController.waitForDevice + hotplug/Linux/block "fatal "$dev does not exist.""
            r"|Device \d+ \((vbd|tap|tap2)\) could not be connected"
            # xend image.py ImageHandler (an HVM disk image)
            r"|Disk image does not exist: "
        ),
    ),
    (
        BridgeUnavailable,
        # hotplug/Linux/vif-bridge (xl and xm): fatal "Could not find bridge device $bridge"
        re.compile(r"Could not find bridge device|Device \d+ \(vif\) could not be connected"),
    ),
    (
        BadKernel,
        re.compile(
            # xg_dom_core.c xc_dom_malloc_filemap (panic) then libxl_dom.c libxl__build_pv
            r"failed to open file '[^']*'|xc_dom_kernel_file failed|xc_dom_ramdisk_file failed"
            # xg_dom_core.c xc_dom_find_loader / libxl_dom.c libxl__build_dom (not a kernel)
            r"|no loader found|xc_dom_parse_image failed"
            # libxl_bootloader.c bootloader_finished, bootloader_disk_attached_cb, libxl__bootloader_run
            r"|bootloader failed - consult logfile|cannot run bootloader with no boot disk"
            # xend image.py / XendBootloader.py bootloader()
            r"|Kernel image does not exist: |Kernel ramdisk does not exist: |Bootloader isn't executable"
            r"|Boot loader didn't return any data!"
        ),
    ),
    (
        DomainNotFound,
        re.compile(
            # xl_utils.c find_domain; xl_info.c main_list (by domid); xm main.py err()
            r"is an invalid domain identifier|^Error: Domain '[^']*' does not exist\.$"
            # libxl_domain.c libxl__destroy_domid ("Non-existant", sic; older: "non-existant domain N")
            r"|:Non-existant domain$|non-existant domain \d+",
            re.IGNORECASE | re.MULTILINE,
        ),
    ),
)


def error_from_result(result: CommandResult) -> XenError:
    """The typed error for a failed command; its message is the tool's stderr (or stdout,
    or the exit status when the tool said nothing)."""
    text = result.stderr.strip() or result.stdout.strip()
    message = text or f"{result.command} exited with status {result.exit_status}"
    if result.exit_status == 127 or "command not found" in text:
        return ToolNotFound(message, result=result)
    for cls, pattern in _ERROR_PATTERNS:
        if pattern.search(text):
            return cls(message, result=result)
    return XenError(message, result=result)


def detect_toolstack(runner: Runner, *, timeout: float = 30.0) -> str:
    """ "xl" or "xm": try `xl info`; fall back to `xm info` when xl is missing (exit 127) or
    refuses because xend runs (Xen 4.1-4.4 with xend: xm is the toolstack in charge)."""
    result = runner.run(["xl", "info"], timeout=timeout)
    if result.ok:
        return "xl"
    error = error_from_result(result)
    if not (isinstance(error, ToolNotFound) or "xend is running" in result.stderr):
        raise error
    result = runner.run(["xm", "info"], timeout=timeout)
    if result.ok:
        return "xm"
    raise error_from_result(result)


# Paths per `grep` of ``read_vm_configs``: far below any dom0's argument limit.
CONFIGS_PER_CALL = 256


def _read_files(result: CommandResult, paths: list[str]) -> dict[str, str | XenError]:
    """Each file's text from what ``grep --null -H -a -e '' -- PATH...`` printed (exit 0
    or 1: some lines or none; 2: some file could not be read, named on stderr as
    ``grep: PATH: REASON``). A file that printed nothing and no error is empty."""
    if result.exit_status not in (0, 1, 2):
        raise error_from_result(result)
    lines: dict[str, list[str]] = {path: [] for path in paths}
    for record in result.stdout.split("\n")[:-1] if result.stdout else ():
        path, nul, line = record.partition("\0")
        if not nul or path not in lines:
            raise XenParseError(
                f"`{result.command}` printed a line of no file asked for: {record[:200]!r}", result=result
            )
        lines[path].append(line)
    texts: dict[str, str | XenError] = {
        path: "".join(f"{line}\n" for line in got) for path, got in lines.items()
    }
    for message in result.stderr.splitlines():
        named = next((p for p in paths if message.startswith(f"grep: {p}: ")), None)
        if named is None:
            raise XenError(f"`{result.command}` failed: {result.stderr.strip()}", result=result)
        error = ConfigNotFound if message.endswith(": No such file or directory") else XenError
        texts[named] = error(message, result=result)
    if result.exit_status == 2 and not any(isinstance(t, XenError) for t in texts.values()):
        raise XenError(
            f"`{result.command}` failed: {result.stderr.strip() or 'exit status 2'}", result=result
        )
    return texts


@lru_cache(maxsize=8192)
def _vm_config_of(text: str, source: str) -> VmConfig | ConfigParseError:
    """What xl would start from a config's ``text`` (or why it refuses it), once per text:
    the declaration looks again at the files the preview read, and most have not changed."""
    try:
        return vm_config(read_cfg(text, source=source))
    except ConfigParseError as exc:
        return exc


class XenDriver:
    """One dom0's toolstack. ``toolstack`` is "xl" or "xm" (see detect_toolstack)."""

    def __init__(self, runner: Runner, toolstack: str = "xl", *, timeout: float = 30.0) -> None:
        if toolstack not in TOOLSTACKS:
            raise ValueError(f"unknown toolstack {toolstack!r}; expected one of {TOOLSTACKS}")
        self.runner = runner
        self.toolstack = toolstack
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"XenDriver({getattr(self.runner, 'name', '?')!r}, {self.toolstack!r})"

    def _run(self, argv: Sequence[str], *, timeout: float | None = None) -> CommandResult:
        result = self.runner.run(list(argv), timeout=self.timeout if timeout is None else timeout)
        if not result.ok:
            raise error_from_result(result)
        return result

    # -- observing ----------------------------------------------------------------------------

    def list_domains(self) -> list[Domain]:
        return parse_list(self._run([self.toolstack, "list"]).stdout)

    def info(self) -> HostInfo:
        return parse_info(self._run([self.toolstack, "info"]).stdout)

    def list_long(self) -> tuple[list[DomainDetail], list[str]]:
        """Every domain's configured memory and devices, plus warnings, from `list -l`
        (JSON, or S-expressions on xm and old xl). When it fails or prints something
        unreadable, falls back to the plain list (no devices, max memory None), leaving out
        Domain-0 as `xl list -l` itself usually does: nothing is taken from a half-read answer."""
        command = f"{self.toolstack} list -l"
        host = getattr(self.runner, "name", "?")
        result = self.runner.run([self.toolstack, "list", "-l"], timeout=self.timeout)
        if result.ok:
            try:
                return parse_list_long(result.stdout, source=f"`{command}` on {host}"), []
            except XenParseError as exc:
                warning = f"`{command}` printed something unreadable: {exc}"
        else:
            error = error_from_result(result)
            if isinstance(error, ToolNotFound):
                raise error
            warning = f"`{command}` failed: {error}"
        details = [
            DomainDetail(
                name=domain.name,
                domid=domain.domid,
                max_memory_mb=None,
                target_memory_mb=domain.memory_mb,
                vcpus=domain.vcpus,
            )
            for domain in self.list_domains()
            if domain.domid is not None and not domain.is_dom0
        ]
        return details, [f"{warning}; using `{self.toolstack} list` (no devices, no max memory)"]

    def file_exists(self, path: str) -> bool:
        result = self.runner.run(["test", "-e", _validate_path(path)], timeout=self.timeout)
        if result.exit_status in (0, 1):
            return result.exit_status == 0
        raise error_from_result(result)

    def _cat(self, path: str) -> str:
        result = self.runner.run(["cat", _validate_path(path)], timeout=self.timeout)
        if not result.ok:
            if "No such file" in result.stderr:
                raise ConfigNotFound(result.stderr.strip(), result=result)
            raise error_from_result(result)
        return result.stdout

    def read_config(self, path: str) -> dict[str, CfgValue]:
        """A domain config file of the host (`cat`), parsed (never executed)."""
        return parse_cfg(self._cat(path), source=f"{getattr(self.runner, 'name', '?')}:{path}")

    def read_vm_config(self, path: str) -> VmConfig:
        """What xl would start from the config at ``path``: name, memory, vCPUs, devices,
        and warnings for what drportal does not interpret. Raises ConfigParseError naming
        the host, the file and the line for a config xl would refuse."""
        return vm_config(read_cfg(self._cat(path), source=f"{getattr(self.runner, 'name', '?')}:{path}"))

    def read_vm_configs(self, paths: Sequence[str]) -> dict[str, VmConfig | XenError]:
        """``read_vm_config`` of many files in one command: for each path what xl would
        start from it, or its error (ConfigNotFound, ConfigParseError naming the line, or
        XenError for a file that cannot be read). GNU ``grep --null -H -a -e '' -- PATH...``
        prints every line of every file as PATH NUL LINE; no path holds a NUL, so no line
        can be taken for another file's. Raises XenError for an answer it cannot read."""
        host = getattr(self.runner, "name", "?")
        found: dict[str, VmConfig | XenError] = {}
        for start in range(0, len(paths), CONFIGS_PER_CALL):
            chunk = [_validate_path(p) for p in paths[start : start + CONFIGS_PER_CALL]]
            texts = _read_files(
                self.runner.run(["grep", "--null", "-H", "-a", "-e", "", "--", *chunk], timeout=self.timeout),
                chunk,
            )
            for path in chunk:
                text = texts[path]
                if isinstance(text, XenError):
                    found[path] = text
                    continue
                found[path] = _vm_config_of(text, f"{host}:{path}")
        return found

    # -- acting -------------------------------------------------------------------------------

    def create(self, cfg_path: str, memory_mb: int | None = None, *, timeout: float = 120.0) -> CommandResult:
        """`xl create <cfg> memory=<MB>`: the override replaces the file's memory (DR
        profiles start VMs smaller). Allowed longer: xl may balloon dom0 for ~30 s first."""
        argv = [self.toolstack, "create", _validate_path(cfg_path)]
        if memory_mb is not None:
            argv.append(f"memory={_validate_mb(memory_mb)}")
        return self._run(argv, timeout=timeout)

    def create_clone(
        self,
        cfg_path: str,
        *,
        name: str,
        memory_mb: int,
        disks: Sequence[tuple[str, str, str]],
        vifs: Sequence[tuple[str, str]],
        timeout: float = 120.0,
    ) -> CommandResult:
        """Start a copy of the VM of ``cfg_path`` under another ``name``: its ``disks``
        ((device, vdev, mode), e.g. a drill's snapshot devices) and ``vifs`` ((MAC,
        bridge), e.g. on an isolated bridge) replace the file's, as xl's KEY=VALUE
        overrides (appended to the file's text, so they win)."""
        validate_domain_name(name)
        disk_words = []
        for device, vdev, mode in disks:
            if any(c in _validate_path(device) for c in ",'\" []"):
                raise ValueError(f"invalid disk device {device!r}: no quotes, commas, spaces or brackets")
            if not _VDEV.fullmatch(vdev) or mode not in ("r", "w"):
                raise ValueError(f"invalid disk {vdev!r} mode {mode!r}")
            disk_words.append(f"'phy:{device},{vdev},{mode}'")
        vif_words = []
        for mac, bridge in vifs:
            if not _MAC.fullmatch(mac) or not _BRIDGE.fullmatch(bridge):
                raise ValueError(f"invalid NIC mac={mac!r} bridge={bridge!r}")
            vif_words.append(f"'mac={mac},bridge={bridge}'")
        argv = [
            self.toolstack,
            "create",
            _validate_path(cfg_path),
            f'name="{name}"',
            f"memory={_validate_mb(memory_mb)}",
            f"disk=[{', '.join(disk_words)}]",
            f"vif=[{', '.join(vif_words)}]",
        ]
        return self._run(argv, timeout=timeout)

    def mem_set(self, name: str, memory_mb: int) -> CommandResult:
        """`xl mem-set <name> <MB>m`: the unit is explicit because xl's man page (KiB) and
        code (MiB) disagree about a bare number."""
        return self._run(
            [self.toolstack, "mem-set", validate_domain_name(name), f"{_validate_mb(memory_mb)}m"]
        )

    def shutdown(self, name: str, timeout_s: float) -> CommandResult:
        """`xl shutdown -w <name>`: waits for the guest; the command timeout bounds the wait
        (the runner raises its timeout error; the caller may then `destroy`)."""
        return self._run([self.toolstack, "shutdown", "-w", validate_domain_name(name)], timeout=timeout_s)

    def destroy(self, name: str) -> CommandResult:
        return self._run([self.toolstack, "destroy", validate_domain_name(name)])
