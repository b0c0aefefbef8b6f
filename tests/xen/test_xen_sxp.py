"""S-expression long listings (xm, and xl's output_format="sxp" / Xen 4.0-4.1), read into the
same records as the JSON. Fixtures are written by hand from the printers' source, not
taken from the lab: where each comes from is said above it."""

from __future__ import annotations

import pytest

from hosts.drivers.xen_parse import parse_list_long
from hosts.drivers.xen_records import Disk, Nic, XenParseError
from hosts.drivers.xen_sxp import parse_sxp
from hosts.lab.tools.xend_sxp import prettyprint

# xm list --long of a running PV guest, as xend prints it: XendConfig.to_sxp field order as
# in the reference's capture, devices from server/netif.py and server/blkif.py
# getDeviceConfiguration (dev gets ":disk"/":cdrom", uname is "<type>:<params>"), printed by
# PrettyPrint.prettyprint (80 columns, 4-space indents; a block that fits stays on one line).
# Source: tools/python/xen/xend/* at commit 9e8672f1c3^.
XM_LONG = """\
(domain
    (domid 7)
    (cpu_weight 256)
    (cpu_cap 0)
    (bootloader /usr/bin/pygrub)
    (on_crash restart)
    (uuid e430b4b8-dc91-9390-dfe0-b83c138ea0aa)
    (bootloader_args '')
    (vcpus 2)
    (description '')
    (name proxy-xen01)
    (cpus (() ()))
    (on_reboot restart)
    (on_poweroff destroy)
    (maxmem 2048)
    (memory 1792)
    (shadow_memory 0)
    (features '')
    (on_xend_start ignore)
    (on_xend_stop ignore)
    (start_time 1357749308.05)
    (cpu_time 24.116146647)
    (online_vcpus 2)
    (image (linux (kernel '') (notes (SUSPEND_CANCEL 1))))
    (status 2)
    (state -b----)
    (store_mfn 1245187)
    (console_mfn 1245186)
    (device
        (vif
            (bridge xenbr0)
            (mac 00:16:3e:10:04:01)
            (script /etc/xen/scripts/vif-bridge)
            (uuid 2c1f7a56-5b8e-4a7e-b1b5-7a1e2e0d6c11)
            (backend 0)
        )
    )
    (device (vif (bridge xenbr1) (mac 00:16:3E:11:04:01) (backend 0)))
    (device
        (vbd
            (uname phy:/dev/vg_proxy01/lvol1)
            (uuid 41c7e0b2-1c5a-4ad8-8f4e-0f6a3d6f7c21)
            (mode w)
            (dev xvda1:disk)
            (backend 0)
            (bootable 1)
            (VDI '')
        )
    )
    (device
        (tap
            (uname tap:aio:/srv/xen/proxy-data.img)
            (mode w!)
            (dev xvdb:disk)
            (backend 0)
        )
    )
    (device (vbd (uname file:/srv/iso/rescue.iso) (mode r) (dev hdc:cdrom) (backend 0)))
    (device (vbd (uname drbd:r7) (mode w) (dev xvdc:disk) (backend 0)))
)
(domain
    (domid 0)
    (name Domain-0)
    (memory 256)
    (maxmem 4096)
)
(domain
    (name halted-but-managed)
    (memory 512)
    (maxmem 512)
    (status 0)
)
"""

# xl list -l with output_format="sxp", Xen 4.1: printf_info in tools/libxl/xl_cmdimpl.c at
# RELEASE-4.1.0 (tabs; "(linux %d)" printed closed, so the domain's last ")" closes nothing;
# disks as "tap" with physpath/virtpath/readwrite; MACs as %02x six times; no bridge).
XL41_LONG = (
    "(domain\n\t(domid 3)\n\t(domain_create_info)\n\t(hvm 0)\n\t(hap 1)\n\t(oos 1)\n\t(ssidref 0)\n"
    "\t(name dns-xen01)\n\t(uuid 5a9ab1f5-0e4c-4a8e-9a0c-3b6a2f1e9d10)\n\t(cpupool Pool-0)\n"
    "\t(xsdata (null))\n\t(platformdata (null))\n\t(domain_build_info)\n\t(max_vcpus 1)\n\t(tsc_mode 0)\n"
    "\t(max_memkb 524288)\n\t(target_memkb 262144)\n\t(nomigrate 0)\n\t(bootloader /usr/bin/pygrub)\n"
    "\t(image\n\t\t(linux 0)\n\t\t\t(kernel )\n\t\t\t(cmdline root=/dev/xvda1 ro)\n\t\t\t(ramdisk )\n\t\t)\n\t)\n"
    "\t(device\n\t\t(tap\n\t\t\t(backend_domid 0)\n\t\t\t(domid 0)\n\t\t\t(physpath /dev/vg_dns01/lvol1)\n"
    "\t\t\t(phystype 1)\n\t\t\t(virtpath xvda1)\n\t\t\t(unpluggable 0)\n\t\t\t(readwrite 1)\n\t\t\t(is_cdrom 0)\n"
    "\t\t)\n\t)\n"
    "\t(device\n\t\t(vif\n\t\t\t(backend_domid 0)\n\t\t\t(domid 0)\n\t\t\t(devid 0)\n\t\t\t(mtu 0)\n"
    "\t\t\t(model rtl8139)\n\t\t\t(mac 00163e100501)\n\t\t)\n\t)\n"
    ")\n"
)


def test_it_reads_an_xm_long_listing_with_nics_bridges_disks_and_max_memory():
    [detail] = parse_list_long(XM_LONG)  # Domain-0 and the halted managed domain are left out
    assert (detail.name, detail.domid, detail.target_memory_mb, detail.max_memory_mb, detail.vcpus) == (
        "proxy-xen01",
        7,
        1792,
        2048,
        2,
    )
    assert detail.nics == (Nic("00:16:3e:10:04:01", "xenbr0"), Nic("00:16:3e:11:04:01", "xenbr1"))
    assert detail.disks == (
        Disk("/dev/vg_proxy01/lvol1", "xvda1", "w"),
        Disk("/srv/xen/proxy-data.img", "xvdb", "w"),
        Disk("/srv/iso/rescue.iso", "hdc", "r", cdrom=True),
        Disk("r7", "xvdc", "w", script="block-drbd"),
    )


def test_it_reads_xl_41s_unbalanced_listing_and_keeps_the_devices_with_their_domain():
    [detail] = parse_list_long(
        XL41_LONG + XL41_LONG.replace("dns-xen01", "dns-xen02").replace("(domid 3)", "(domid 4)")
    )[:1]
    assert (detail.name, detail.target_memory_mb, detail.max_memory_mb, detail.vcpus) == (
        "dns-xen01",
        256,
        512,
        1,
    )
    assert detail.disks == (Disk("/dev/vg_dns01/lvol1", "xvda1", "w"),)
    assert detail.nics == (Nic("00:16:3e:10:05:01", None),)  # xl prints no bridge: none is made up
    both = parse_list_long(
        XL41_LONG + XL41_LONG.replace("dns-xen01", "dns-xen02").replace("(domid 3)", "(domid 4)")
    )
    assert [(d.name, len(d.disks), len(d.nics)) for d in both] == [("dns-xen01", 1, 1), ("dns-xen02", 1, 1)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("(domain\n    (domid 1)\n    (name x\n", "line 3: expected ')' to close the list opened on line 3"),
        ("(domain (domid 1) (name 'x)\n", "line 1: expected ' to end the string"),
        ("(domain (domid 1))\n", "a (domain ...) without (name ...)"),
        ("(domain (domid 1) (name x))\n", "domain x has neither (memory ...) nor (target_memkb ...)"),
        ("(domain (domid 1) (name x) (memory lots))\n", "(memory lots) of x is not a number"),
        ("(domain (domid 1) (name x) (memory 1))\n)\n)\n", "a ')' that closes nothing"),
        ("(domain (domid 1) (name x) (memory 1)) garbage\n", "expected '(domain', found 'garbage"),
    ],
)
def test_it_refuses_what_it_cannot_read_naming_the_line_and_what_it_expected(text, message):
    with pytest.raises(XenParseError) as raised:
        parse_list_long(text, source="`xm list -l` on xenka01")
    assert message in str(raised.value) and "`xm list -l` on xenka01" in str(raised.value)


def test_xends_strings_and_escapes_read_back():
    assert parse_sxp("(a 'b c' \"d\\\"e\" '\\n' '\\101' '\\x41' plain-atom_1.2:/~)") == [
        ["a", "b c", 'd"e', "\n", "A", "A", "plain-atom_1.2:/~"]
    ]


def test_the_labs_xend_printer_breaks_and_indents_as_prettyprint_does():
    # A list that fits in 80 columns stays on one line; one that does not breaks at every item.
    assert prettyprint(["device", ["vif", ["bridge", "xenbr0"], ["backend", 0]]]) == (
        "(device (vif (bridge xenbr0) (backend 0)))\n"
    )
    long = ["domain", ["domid", 1], ["name", "x" * 60], ["bootloader_args", ""], ["cpu_time", 1.5]]
    assert prettyprint(long) == (
        "(domain\n    (domid 1)\n    (name "
        + "x" * 60
        + ")\n    (bootloader_args '')\n    (cpu_time 1.5)\n)\n"
    )
    assert parse_sxp(prettyprint(long)) == [
        ["domain", ["domid", "1"], ["name", "x" * 60], ["bootloader_args", ""], ["cpu_time", "1.5"]]
    ]
