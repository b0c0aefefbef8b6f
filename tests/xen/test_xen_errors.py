"""Failed commands become typed errors that keep the tool's own words; names are checked
before any command line is built."""

from __future__ import annotations

import pytest

from hosts.drivers.base import CommandResult, DriverError
from hosts.drivers.xen import (
    BadKernel,
    BridgeUnavailable,
    ConfigNotFound,
    ConfigParseError,
    DiskUnavailable,
    DomainNotFound,
    DuplicateDomain,
    NotEnoughMemory,
    ToolNotFound,
    XenError,
    error_from_result,
    validate_domain_name,
)


def failed(stderr: str, status: int = 1, stdout: str = "") -> CommandResult:
    return CommandResult("xenka01", ("xl",), "xl", stdout, stderr, status, 0.01)


# (exit status, stderr) as the reference quotes them, and the error each must become.
CASES = [
    (1, "nosuchname is an invalid domain identifier (rc=-6)\n", DomainNotFound),
    (1, "Error: Domain '99' does not exist.\n", DomainNotFound),
    (1, "Error: Domain 'foo' does not exist.\n", DomainNotFound),  # xm
    (
        1,
        "libxl: error: libxl.c:1384:libxl__destroy_domid: non-existant domain 99\n"
        "libxl: error: libxl.c:1348:domain_destroy_callback: unable to destroy guest with domid 99\n"
        "libxl: error: libxl.c:1275:domain_destroy_cb: destruction of domain 99 failed\n"
        "destroy failed (rc=-6)\n",
        DomainNotFound,
    ),
    (
        3,
        "Parsing config from /etc/xen/vm/proxy-xen01\nfailed to free memory for the domain\n",
        NotEnoughMemory,
    ),
    (
        3,
        "xc: error: panic: xc_dom_boot.c:122: xc_dom_boot_mem_init: can't allocate low memory for domain: "
        "Out of memory\n"
        "libxl: error: libxl_create.c:1573:domcreate_rebuild_done: Domain 1:cannot (re-)build domain: -3\n"
        "libxl: error: libxl_domain.c:1182:libxl__destroy_domid: Domain 1:Non-existant domain\n",
        NotEnoughMemory,  # not DomainNotFound, although libxl's clean-up says "Non-existant domain"
    ),
    (
        1,
        "Error: Not enough free memory and enable-dom0-ballooning is False, so I cannot release any more.  "
        "I need 1835008 KiB but only have 524288.\n",
        NotEnoughMemory,
    ),
    (
        1,
        "Error: I need 1835008 KiB, but dom0_min_mem is 262144 and shrinking to 262144 KiB would leave only "
        "524288 KiB free.\n",
        NotEnoughMemory,
    ),
    (
        3,
        'libxl: error: libxl_domain.c:81:libxl__domain_rename: Domain 7:Domain with name "lws-xen01" already '
        "exists.\nlibxl: error: libxl_create.c:1232:initiate_domain_create: Domain 7:cannot make domain: -6\n",
        DuplicateDomain,
    ),
    (
        1,
        'libxl: error: libxl.c:163:libxl_domain_rename domain with name "work-acct" already exists.\n'
        "cannot make domain: -6\n",
        DuplicateDomain,
    ),
    (3, "Failed to read config file: /etc/xen/vm/nope: No such file or directory\n", ConfigNotFound),
    (
        1,
        "Parsing config from /etc/xen/vm/xen-f\n"
        "/etc/xen/vm/xen-f:15: config parsing error near `xen': syntax error, unexpected IDENT, expecting STRING "
        "or NUMBER or '['\n/etc/xen/vm/xen-f:15: config parsing error near `-f': lexical error\n"
        "Failed to parse config: Invalid argument\n",
        ConfigParseError,
    ),
    (1, "Parsing config from /etc/xen/vm/x\nDomain name must be specified.\n", ConfigParseError),
    (
        3,
        "libxl: error: libxl_device.c:397:libxl__device_disk_set_backend: Disk vdev=xvda1 failed to stat: "
        "/dev/vg_proxy01/lvol1: No such file or directory\n",
        DiskUnavailable,
    ),
    (
        1,
        "Error: Device 51713 (vbd) could not be connected.\n/dev/vg_x/lvol1 does not exist.\n",
        DiskUnavailable,  # not DomainNotFound, although it says "does not exist"
    ),
    (
        1,
        "Error: Device 51713 (vbd) could not be connected. /dev/vg_x/lvol1 does not exist.\n",
        DiskUnavailable,
    ),
    (
        3,
        "libxl: error: libxl_device.c:1337:device_hotplug_child_death_cb: script: Could not find bridge device "
        "xenbr9\nlibxl: error: libxl_create.c:1919:domcreate_attach_devices: Domain 4:unable to add vif devices\n"
        "libxl: error: libxl_domain.c:1183:libxl__destroy_domid: Domain 4:Non-existant domain\n",
        BridgeUnavailable,
    ),
    (
        1,
        "Error: Device 0 (vif) could not be connected. Could not find bridge device xenbr9\n",
        BridgeUnavailable,
    ),
    (
        3,
        "xc: error: panic: xg_dom_core.c:205: failed to open file '/boot/vmlinuz-x': No such file or directory: "
        "Internal error\nlibxl: error: libxl_dom.c:646:libxl__build_pv: xc_dom_kernel_file failed: No such file "
        "or directory\nlibxl: error: libxl_create.c:1638:domcreate_rebuild_done: Domain 5:cannot (re-)build "
        "domain: -3\n",
        BadKernel,
    ),
    (
        3,
        "libxl: error: libxl_bootloader.c:768:bootloader_finished: Domain 6:bootloader failed - consult logfile "
        "/var/log/xen/bootloader.6.log\n",
        BadKernel,
    ),
    (1, "Error: Kernel image does not exist: /boot/vmlinuz-x\n", BadKernel),
    (1, "Error: Bootloader isn't executable\n", BadKernel),
    (1, "Error: Domain 'lws-xen01' already exists with ID '3'\n", DuplicateDomain),
    # Not recognised: a generic error with the whole message, never "no such domain".
    (1, "Error: VNC x509 certificate dir /etc/xen/vnc does not exist\n", XenError),
    (1, "Error: Disk image does not exist: /srv/x.img\n", DiskUnavailable),  # xend image.py (HVM)
    (1, "lab: mem-set refused: domain 3 would need 1 KiB more, only 0 KiB free\n", XenError),
    (127, "bash: xl: command not found\n", ToolNotFound),
    (127, "bash: line 1: xl: command not found\n", ToolNotFound),
    (1, "cannot set domid 3 dynamic max memory to : 4000m\n", XenError),
    (1, "Not destroying domain 0; use -f to force.\n", XenError),
]


@pytest.mark.parametrize(("status", "stderr", "cls"), CASES)
def test_it_maps_the_tools_words_to_a_typed_error_and_keeps_them(status, stderr, cls):
    error = error_from_result(failed(stderr, status))
    assert type(error) is cls
    assert isinstance(error, XenError) and isinstance(error, DriverError)
    assert error.message == stderr.strip()
    assert error.result is not None and error.result.exit_status == status


def test_it_says_something_even_when_the_tool_said_nothing():
    error = error_from_result(failed("", 3))
    assert type(error) is XenError and "exited with status 3" in str(error)
    assert str(error_from_result(failed("", 1, stdout="Error: from stdout\n"))) == "Error: from stdout"


@pytest.mark.parametrize("name", ["lws-xen01", "Domain-0", "a", "vm_1.example", "x" * 64, "_x", ".x", "0x1f"])
def test_it_accepts_valid_domain_names(name):
    assert validate_domain_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "-rf", "x" * 65, "a b", "a;reboot", "$(id)", "a/b", "vm\n", "ümlaut", "42", None],
)
def test_it_refuses_bad_domain_names_and_names_them(name):
    with pytest.raises(ValueError) as raised:
        validate_domain_name(name)
    assert repr(name) in str(raised.value)
