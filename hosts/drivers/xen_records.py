"""The records and errors of what `xl`/`xm` print (no parsing, no I/O): a leaf that both
readers use, xen_parse.py (`xl list`, `xl info`, the JSON long listing) and xen_sxp.py (the
S-expression long listing of xm and Xen 4.0/4.1 xl), so neither imports the other's caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hosts.drivers.base import DriverError

# -- errors ---------------------------------------------------------------------------------


class XenError(DriverError):
    """A toolstack command failed; ``message`` keeps the tool's own words (stderr)."""


class XenParseError(XenError):
    """Output we cannot read. Never guessed around: a misread `xl list` could make the
    engine start a VM twice or shrink the wrong one."""


class SXPFormat(XenParseError):
    """Kept for callers of old: `list -l` in S-expressions is read now (xen_sxp.py)."""


class ToolNotFound(XenError):
    """The toolstack binary is not on the host (exit 127): an xm host asked for xl."""


class DomainNotFound(XenError):
    """No such domain (``x is an invalid domain identifier (rc=-6)``)."""


class NotEnoughMemory(XenError):
    """Xen cannot find the memory the domain asks for."""


class DuplicateDomain(XenError):
    """A domain with that name already runs on the host."""


class ConfigParseError(XenError):
    """A domain config file that xl cannot read (syntax or a missing mandatory key)."""


class ConfigNotFound(XenError):
    """The config file given to `create` does not exist on the host."""


class DeviceUnavailable(XenError):
    """A disk or bridge the config names is not there (LUN not presented, bridge missing)."""


class DiskUnavailable(DeviceUnavailable):
    """A disk the config names is not there (the LUN is not presented, the LV is missing)."""


class BridgeUnavailable(DeviceUnavailable):
    """A bridge a vif names does not exist on the host."""


class BadKernel(XenError):
    """The kernel, ramdisk or bootloader cannot start the guest (missing file, not a
    kernel, bootloader failed)."""


# -- records --------------------------------------------------------------------------------

DOM0_NAME = "Domain-0"
# Position 5 of the state holds the shutdown reason (xl: "-rscwS", '?' unknown).
_STATE_POSITIONS = ("r-", "b-", "p-", "s-", "-rscwS?", "d-")


@dataclass(frozen=True)
class Domain:
    """One row of `xl list` / `xm list`. ``domid`` is None only for an xend-managed
    domain that is defined but not running (xm prints an empty ID column)."""

    name: str
    domid: int | None
    memory_mb: int
    vcpus: int
    state: str  # six flags, e.g. "-b----"
    cpu_time: float

    @property
    def running(self) -> bool:
        return self.state[0] == "r"

    @property
    def blocked(self) -> bool:
        return self.state[1] == "b"

    @property
    def paused(self) -> bool:
        return self.state[2] == "p"

    @property
    def shutdown(self) -> bool:
        return self.state[3] == "s"

    @property
    def crashed(self) -> bool:
        return self.state[4] == "c"

    @property
    def shutdown_reason(self) -> str | None:
        """The letter in position 5 (r reboot, s suspend, c crash, w watchdog, S soft
        reset), or None when there is none ('-' is also poweroff for a shut-down domain)."""
        letter = self.state[4]
        return None if letter == "-" else letter

    @property
    def dying(self) -> bool:
        return self.state[5] == "d"

    @property
    def is_dom0(self) -> bool:
        return self.domid == 0

    @property
    def is_null_name(self) -> bool:
        """A domain whose name is already gone from xenstore (dying): xl prints "(null)"."""
        return self.name == "(null)"

    @property
    def is_inactive(self) -> bool:
        return self.domid is None

    @property
    def is_alive(self) -> bool:
        """Holds memory and will go on running: not shut down, crashed, dying or inactive.
        (A running vCPU shows "r-----", an idle one "-b----", a runnable one "------".)"""
        return not (self.is_inactive or self.shutdown or self.crashed or self.dying)


@dataclass(frozen=True)
class HostInfo:
    total_memory_mb: int
    free_memory_mb: int
    nr_cpus: int
    xen_version: str  # "4.17.3"
    raw: dict[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class Nic:
    mac: str | None  # lower case; None when the config leaves it to Xen (random 00:16:3e:...)
    bridge: str | None  # None only where a listing does not say (xl's SXP form never prints it)


@dataclass(frozen=True)
class Disk:
    target: str  # /dev/vg_lws01/lvol1 (for drbd: the resource name)
    vdev: str  # xvda1
    mode: str  # "w" or "r"
    script: str | None = None  # "block-drbd" for drbd:<res>, else None
    cdrom: bool = False  # devtype=cdrom (removable, read-only; target may be empty)
    format: str = field(default="raw", compare=False)  # raw, qcow2, ... (libxl's names)


@dataclass(frozen=True)
class DomainDetail:
    """One domain of `xl list -l`. In the fallback (plain `xl list`) only name, domid,
    target memory and vcpus are known: max memory is None and the device tuples are empty."""

    name: str
    domid: int
    max_memory_mb: int | None
    target_memory_mb: int
    vcpus: int
    nics: tuple[Nic, ...] = ()
    disks: tuple[Disk, ...] = ()
