"""The Xen toolstack of a dom0 (`xl`, or `xm` on old hosts) driven over a Runner.

Every command is an argv of validated words handed to the runner, which quotes it
(base.quote_command) and applies a timeout; output is parsed into typed records
(xen_parse.py, xen_cfg.py) and failures become typed errors that keep the tool's words.
The engine is idempotent by observing first, so this driver never retries on its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hosts.drivers.base import CommandResult, Runner
from hosts.drivers.xen_cfg import (
    CfgValue,
    VmConfig,
    parse_cfg,
    parse_disk_spec,
    parse_vif_spec,
    render_cfg,
    vm_config,
)
from hosts.drivers.xen_parse import (
    DOM0_NAME,
    ConfigNotFound,
    ConfigParseError,
    DeviceUnavailable,
    Disk,
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
    parse_info,
    parse_list,
    parse_list_long,
)

__all__ = [
    "DOM0_NAME",
    "CfgValue",
    "ConfigNotFound",
    "ConfigParseError",
    "DeviceUnavailable",
    "Disk",
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

# Checked in order: a failed create also logs libxl's clean-up ("Non-existant domain"), so
# the specific causes come before "not found". Matches are on stable fragments, not on
# libxl's file:line prefixes, which change with every release.
_ERROR_PATTERNS: tuple[tuple[type[XenError], re.Pattern[str]], ...] = (
    (
        NotEnoughMemory,
        re.compile(
            r"failed to free memory for the domain|can't allocate low memory|not enough free memory"
            r"|I need \d+ KiB|xc_dom_boot_mem_init failed|Cannot allocate memory",
            re.IGNORECASE,
        ),
    ),
    (DuplicateDomain, re.compile(r"already exists|already in use", re.IGNORECASE)),
    (
        ConfigNotFound,
        re.compile(r"Failed to read config file|Unable to open config file|Cannot open config file"),
    ),
    (
        ConfigParseError,
        re.compile(r"config parsing error|Failed to parse config|Domain name must be specified"),
    ),
    (
        DeviceUnavailable,
        re.compile(
            r"failed to stat|Unable to set disk defaults|Could not find bridge|unable to add vif devices"
            r"|unable to add disk devices|could not be connected",
            re.IGNORECASE,
        ),
    ),
    (
        DomainNotFound,
        re.compile(r"invalid domain identifier|does not exist|non-exist[ae]nt domain", re.IGNORECASE),
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
        """Every domain's configured memory and devices, plus warnings. When `list -l`
        fails or prints SXP, falls back to the plain list (no devices, max memory None),
        leaving out Domain-0 as `xl list -l` itself usually does."""
        command = f"{self.toolstack} list -l"
        result = self.runner.run([self.toolstack, "list", "-l"], timeout=self.timeout)
        if result.ok:
            try:
                return parse_list_long(result.stdout), []
            except SXPFormat:
                warning = f"`{command}` printed S-expressions (SXP), not JSON"
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

    def read_config(self, path: str) -> dict[str, CfgValue]:
        """A domain config file of the host (`cat`), parsed (never executed)."""
        result = self.runner.run(["cat", _validate_path(path)], timeout=self.timeout)
        if not result.ok:
            if "No such file" in result.stderr:
                raise ConfigNotFound(result.stderr.strip(), result=result)
            raise error_from_result(result)
        return parse_cfg(result.stdout, source=path)

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
