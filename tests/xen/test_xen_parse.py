"""Parsers of `xl`/`xm` list, info and list -l, fed samples written from the reference's
format strings (xen-storage-cli-reference.md §1.1-1.3, §1.10) and its quoted captures."""

from __future__ import annotations

import json

import pytest

from hosts.drivers.xen import (
    Disk,
    Nic,
    SXPFormat,
    XenParseError,
    parse_info,
    parse_list,
    parse_list_long,
)

# xl_info.c: printf("Name                                        ID   Mem VCPUs\tState\tTime(s)")
XL_HEADER = "Name                                        ID   Mem VCPUs\tState\tTime(s)"
# The tools' own printf formats, kept verbatim on purpose.
XM_HEADER = "%-40s %5s %5s %5s %10s %9s" % ("Name", "ID", "Mem", "VCPUs", "State", "Time(s)")  # noqa: UP031


def xl_row(name: str, domid: int, mem: int, vcpus: int, state: str, cpu: float) -> str:
    return "%-40s %5d %5d %5d     %s  %8.1f" % (name, domid, mem, vcpus, state, cpu)  # noqa: UP031


def xm_row(name: str, domid: object, mem: int, vcpus: int, state: str, cpu: float) -> str:
    return "%-40s %5s %5d %5d %10s %8.1f" % (name, domid, mem, vcpus, state, cpu)  # noqa: UP031


XL_LIST = "\n".join(
    [
        XL_HEADER,
        xl_row("Domain-0", 0, 256, 4, "r-----", 48213.7),
        xl_row("lws-xen01", 1, 512, 1, "-b----", 9981.5),
        xl_row("tomcat-xen01", 2, 768, 1, "------", 35370.5),
        xl_row("dasi-xen01", 3, 2048, 2, "-b----", 32834.5),
    ]
)

# The man page's example (tabs expanded to spaces, as in every pasted capture).
XL_LIST_MAN_PAGE = """\
    Name                                        ID   Mem VCPUs      State   Time(s)
    Domain-0                                     0   750     4     r-----   11794.3
    win                                          1  1019     1     r-----       0.3
    linux                                        2  2048     2     r-----    5624.2
"""


class TestXlList:
    def test_it_reads_the_xl_list_with_a_tab_in_the_header(self):
        assert "\t" in XL_LIST.splitlines()[0]
        domains = parse_list(XL_LIST)
        assert [d.name for d in domains] == ["Domain-0", "lws-xen01", "tomcat-xen01", "dasi-xen01"]
        dom0, lws, tomcat, dasi = domains
        assert (dom0.domid, dom0.memory_mb, dom0.vcpus, dom0.state, dom0.cpu_time) == (
            0,
            256,
            4,
            "r-----",
            48213.7,
        )
        assert dom0.is_dom0 and dom0.running and not lws.is_dom0
        assert lws.blocked and not lws.running and lws.is_alive
        assert tomcat.state == "------" and tomcat.is_alive  # runnable, not scheduled right now
        assert (dasi.memory_mb, dasi.vcpus) == (2048, 2)

    def test_it_reads_the_man_page_example_with_tabs_expanded(self):
        domains = parse_list(XL_LIST_MAN_PAGE)
        assert [(d.name, d.domid, d.memory_mb) for d in domains] == [
            ("Domain-0", 0, 750),
            ("win", 1, 1019),
            ("linux", 2, 2048),
        ]

    def test_it_reads_a_list_without_header_and_with_blank_lines(self):
        text = "\n" + xl_row("lws-xen01", 1, 512, 1, "-b----", 1.0) + "\n\n"
        assert [d.name for d in parse_list(text)] == ["lws-xen01"]

    def test_it_reads_an_empty_list(self):
        assert parse_list("") == []
        assert parse_list(XL_HEADER + "\n") == []

    def test_it_keeps_names_longer_than_40_characters_whole(self):
        name = "a-very-long-domain-name-that-pushes-the-columns.example"
        assert len(name) > 40
        row = xl_row(name, 7, 1024, 2, "-b----", 12.25)
        assert row.index(" ", 41) > 41  # the columns really moved right
        [dom] = parse_list(XL_HEADER + "\n" + row)
        assert (dom.name, dom.domid, dom.memory_mb, dom.vcpus) == (name, 7, 1024, 2)

    @pytest.mark.parametrize(
        ("state", "flags"),
        [
            ("r-----", {"running"}),
            ("-b----", {"blocked"}),
            ("--p---", {"paused"}),
            ("---s--", {"shutdown"}),
            ("--psc-", {"paused", "shutdown", "crashed"}),  # a preserved crashed guest
            ("-----d", {"dying"}),
            ("rb----", {"running", "blocked"}),
        ],
    )
    def test_it_reads_every_state_letter(self, state, flags):
        [dom] = parse_list(xl_row("vm1", 5, 512, 1, state, 3.0))
        names = ("running", "blocked", "paused", "shutdown", "crashed", "dying")
        assert {flag for flag in names if getattr(dom, flag)} == flags
        assert dom.is_alive == (not flags & {"shutdown", "crashed", "dying"})

    @pytest.mark.parametrize(
        ("state", "reason"),
        [
            ("---s--", None),
            ("---sr-", "r"),
            ("---ss-", "s"),
            ("---sc-", "c"),
            ("---sw-", "w"),
            ("---sS-", "S"),
            ("---s?-", "?"),
        ],
    )
    def test_it_reads_the_shutdown_reason_letter(self, state, reason):
        [dom] = parse_list(xl_row("vm1", 5, 512, 1, state, 3.0))
        assert dom.shutdown and dom.shutdown_reason == reason
        assert dom.crashed == (reason == "c")

    def test_it_reads_a_dying_domain_whose_name_is_already_gone(self):
        [dom0, ghost] = parse_list(
            XL_HEADER
            + "\n"
            + xl_row("Domain-0", 0, 256, 4, "r-----", 1.0)
            + "\n"
            + xl_row("(null)", 5, 0, 1, "--pscd", 0.4)
        )
        assert ghost.is_null_name and ghost.dying and ghost.crashed and not ghost.is_alive
        assert not dom0.is_null_name

    @pytest.mark.parametrize(
        "line",
        [
            "garbage",
            "lws-xen01 1 512 one -b---- 9.5",  # vcpus not a number
            "lws-xen01 1 512 1 -x---- 9.5",  # no such state letter
            "lws-xen01 1 512 1 -b--- 9.5",  # five flags
            "lws-xen01 1 512 1 b----- 9.5",  # letter in the wrong position
            "lws-xen01 1 512 1 -b---- nine",
        ],
    )
    def test_it_refuses_a_line_it_cannot_read_and_names_it(self, line):
        with pytest.raises(XenParseError) as raised:
            parse_list(XL_HEADER + "\n" + xl_row("ok", 1, 512, 1, "-b----", 1.0) + "\n" + line)
        assert "line 3" in str(raised.value) and repr(line) in str(raised.value)


class TestXmList:
    XM_LIST = "\n".join(
        [
            XM_HEADER,
            xm_row("Domain-0", 0, 3476, 4, "r-----", 1380.3),
            xm_row("lws-xen01", 1, 512, 1, "-b----", 98.0),
            xm_row("dasi-xen01", 2, 1024, 2, "--psc-", 12.5),
        ]
    )

    def test_it_reads_xms_space_padded_header_and_right_justified_state(self):
        assert "\t" not in self.XM_LIST
        assert " -b---- " in self.XM_LIST.splitlines()[2]  # %10s: four spaces of padding, then one
        domains = parse_list(self.XM_LIST)
        assert [(d.name, d.domid, d.memory_mb, d.state) for d in domains] == [
            ("Domain-0", 0, 3476, "r-----"),
            ("lws-xen01", 1, 512, "-b----"),
            ("dasi-xen01", 2, 1024, "--psc-"),
        ]
        assert domains[2].crashed

    def test_it_reads_a_halted_xend_managed_domain_without_an_id(self):
        blank_state = xm_row("sles10-managed", "", 512, 1, "", 0.0)
        with_state = xm_row("other-managed", "", 256, 1, "------", 0.0)
        _, halted, other = parse_list(
            "\n".join([XM_HEADER, xm_row("Domain-0", 0, 512, 4, "r-----", 1.0), blank_state, with_state])
        )
        assert (halted.name, halted.domid, halted.memory_mb, halted.state) == (
            "sles10-managed",
            None,
            512,
            "------",
        )
        assert halted.is_inactive and not halted.is_alive and not halted.running
        assert other.domid is None and other.memory_mb == 256


XL_INFO_415 = """\
host                   : zen2
release                : 4.19.0-10-amd64
version                : #1 SMP Debian 4.19.132-1 (2020-07-24)
machine                : x86_64
nr_cpus                : 4
max_cpu_id             : 3
nr_nodes               : 1
cores_per_socket       : 4
threads_per_core       : 1
cpu_mhz                : 3000.227
hw_caps                : 178bf3ff:f6d8320b:2e500800:244037ff:0000000f:219c91a9:00400004:00000500
virt_caps              : pv hvm hvm_directio pv_directio hap shadow iommu_hap_pt_share
total_memory           : 16292
free_memory            : 4687
sharing_freed_memory   : 0
sharing_used_memory    : 0
outstanding_claims     : 0
free_cpus              : 0
xen_major              : 4
xen_minor              : 15
xen_extra              : -unstable
xen_version            : 4.15-unstable
xen_caps               : xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64
xen_scheduler          : credit2
xen_pagesize           : 4096
platform_params        : virt_start=0xffff800000000000
xen_changeset          :
xen_commandline        : placeholder dom0_mem=2048M,max:2048M
build_id               : caeeb34d88d2f2bafc724be963a70ef68a9a552a
xend_config_format     : 4
"""

# xm: print "%-23s:" % key, value   (Xen 3.2, no xen_version line, "(none)" for empty values)
XM_INFO_32 = """\
host                   : xenka01
release                : 2.6.16.60-0.21-xen
nr_cpus                : 4
nr_nodes               : 1
total_memory           : 4095
free_memory            : 12
xen_major              : 3
xen_minor              : 2
xen_extra              : .3_17040-0.3
xen_changeset          : (none)
xend_config_format     : 4
"""


class TestInfo:
    def test_it_reads_xl_info(self):
        info = parse_info(XL_INFO_415)
        assert (info.total_memory_mb, info.free_memory_mb, info.nr_cpus) == (16292, 4687, 4)
        assert info.xen_version == "4.15-unstable"
        # values containing ':' stay whole
        assert info.raw["hw_caps"].count(":") == 7
        assert info.raw["platform_params"] == "virt_start=0xffff800000000000"
        assert info.raw["xen_changeset"] == ""

    def test_it_builds_the_version_from_major_minor_extra(self):
        text = XL_INFO_415.replace("15", "17").replace("-unstable", ".3")
        assert parse_info(text).xen_version == "4.17.3"

    def test_it_reads_xm_info_without_a_version_line(self):
        info = parse_info(XM_INFO_32)
        assert (info.total_memory_mb, info.free_memory_mb, info.xen_version) == (4095, 12, "3.2.3_17040-0.3")
        assert info.raw["xen_changeset"] == ""  # (none)

    def test_it_reads_the_old_memory_key(self):
        assert parse_info(XM_INFO_32.replace("total_memory  ", "memory        ")).total_memory_mb == 4095

    def test_it_refuses_info_without_memory_figures(self):
        with pytest.raises(XenParseError, match="free_memory"):
            parse_info("\n".join(line for line in XL_INFO_415.splitlines() if "free_memory" not in line))
        with pytest.raises(XenParseError, match="not a number"):
            parse_info(XL_INFO_415.replace("4687", "lots"))


# Reference §1.2 [DERIVED] sparse example of a modern xl.
SPARSE = """\
[
    {
        "domid": 5,
        "config": {
            "c_info": {
                "type": "pv",
                "name": "vm1",
                "uuid": "7f3c6c9e-7bbd-4c1f-9a43-4a1b6c1e2d11",
                "run_hotplug_scripts": "True"
            },
            "b_info": {
                "max_vcpus": 2,
                "avail_vcpus": [
                    0,
                    1
                ],
                "max_memkb": 2097152,
                "target_memkb": 1048576,
                "sched_params": {
                },
                "type.pv": {
                    "kernel": "/boot/vmlinuz",
                    "cmdline": "root=/dev/xvda1"
                },
                "arch_arm": {
                }
            },
            "disks": [
                {
                    "pdev_path": "/dev/vg0/vm1-disk",
                    "vdev": "xvda1",
                    "backend": "phy",
                    "format": "raw",
                    "readwrite": 1
                }
            ],
            "nics": [
                {
                    "devid": 0,
                    "mac": "00:16:3e:12:34:56",
                    "bridge": "xenbr0",
                    "script": "vif-bridge",
                    "nictype": "vif"
                }
            ],
            "on_reboot": "restart",
            "on_crash": "restart"
        }
    }
]
"""


def old_style_entry() -> dict:
    """Xen 4.4: every field printed, the PV union under "u", avail_vcpus an empty bitmap."""
    return {
        "domid": 3,
        "config": {
            "c_info": {
                "type": "pv",
                "hap": "<default>",
                "oos": "<default>",
                "ssidref": 0,
                "name": "lws-xen01",
                "uuid": "e430b4b8-dc91-9390-dfe0-b83c138ea0aa",
                "xsdata": None,
                "platformdata": None,
                "poolid": 0,
                "run_hotplug_scripts": "True",
                "pvh": "False",
                "driver_domain": "False",
            },
            "b_info": {
                "max_vcpus": 1,
                "avail_vcpus": [],
                "cpumap": [],
                "nodemap": [],
                "numa_placement": "True",
                "tsc_mode": "default",
                "max_memkb": 786432,
                "target_memkb": 524288,
                "video_memkb": -1,
                "shadow_memkb": -1,
                "u": {"kernel": None, "slack_memkb": 8192, "bootloader": "pygrub"},
            },
            "disks": [
                {
                    "backend_domid": 0,
                    "backend_domname": None,
                    "pdev_path": "/dev/vg_lws01/lvol1",
                    "vdev": "xvda1",
                    "backend": "phy",
                    "format": "raw",
                    "script": None,
                    "removable": 1,
                    "readwrite": 1,
                    "is_cdrom": 0,
                },
                {
                    "backend_domid": 0,
                    "backend_domname": None,
                    "pdev_path": "/srv/iso/rescue.iso",
                    "vdev": "xvdb",
                    "backend": "qdisk",
                    "format": "raw",
                    "script": None,
                    "removable": 1,
                    "readwrite": 0,
                    "is_cdrom": 1,
                },
            ],
            "nics": [
                {
                    "backend_domid": 0,
                    "devid": 0,
                    "mtu": 1500,
                    "model": None,
                    "mac": "00:16:3E:10:01:01",
                    "ip": None,
                    "bridge": "xenbr0",
                    "ifname": None,
                    "script": "vif-bridge",
                    "nictype": "vif",
                },
            ],
            "pcidevs": [],
            "vfbs": [],
            "vkbs": [],
            "vtpms": [],
            "on_poweroff": "destroy",
            "on_reboot": "restart",
            "on_watchdog": "destroy",
            "on_crash": "restart",
        },
    }


GANETI_SXP = """\
(domain
    (domid 0)
    (cpu_weight 2048)
    (cpu_cap 0)
    (bootloader )
    (on_crash restart)
    (uuid 00000000-0000-0000-0000-000000000000)
    (vcpus 24)
    (name Domain-0)
)
"""


class TestListLong:
    def test_it_reads_sparse_modern_json(self):
        [detail] = parse_list_long(SPARSE)
        assert (detail.name, detail.domid, detail.max_memory_mb, detail.target_memory_mb, detail.vcpus) == (
            "vm1",
            5,
            2048,
            1024,
            2,
        )
        assert detail.nics == (Nic("00:16:3e:12:34:56", "xenbr0"),)
        assert detail.disks == (Disk("/dev/vg0/vm1-disk", "xvda1", "w"),)

    def test_it_reads_old_style_json_with_every_field(self):
        [detail] = parse_list_long(json.dumps([old_style_entry()], indent=4))
        assert (detail.name, detail.max_memory_mb, detail.target_memory_mb, detail.vcpus) == (
            "lws-xen01",
            768,
            512,
            1,
        )
        assert detail.nics == (Nic("00:16:3e:10:01:01", "xenbr0"),)  # MAC folded to lower case
        assert detail.disks == (
            Disk("/dev/vg_lws01/lvol1", "xvda1", "w"),
            Disk("/srv/iso/rescue.iso", "xvdb", "r"),
        )

    def test_it_treats_an_omitted_readwrite_as_read_only(self):
        data = json.loads(SPARSE)
        del data[0]["config"]["disks"][0]["readwrite"]
        assert parse_list_long(json.dumps(data))[0].disks[0].mode == "r"

    def test_it_reads_an_empty_array_and_empty_output(self):
        assert parse_list_long("[\n]\n") == []
        assert parse_list_long("") == []

    def test_it_reads_a_domain_without_devices(self):
        data = json.loads(SPARSE)
        del data[0]["config"]["disks"], data[0]["config"]["nics"]
        [detail] = parse_list_long(json.dumps(data))
        assert detail.nics == () and detail.disks == ()

    def test_it_reads_sxp_and_leaves_domain0_out_as_for_json(self):
        assert parse_list_long(GANETI_SXP) == []  # the reference's capture: only Domain-0

    @pytest.mark.parametrize(
        "text",
        [
            "[{",  # truncated
            '"just a string"',
            '[{"domid": 1}]',  # no config
            '[{"domid": 1, "config": {"c_info": {}}}]',  # no name
            '[{"domid": "one", "config": {"c_info": {"name": "x"}, "b_info": {"target_memkb": 1024}}}]',
        ],
    )
    def test_it_refuses_json_it_cannot_read(self, text):
        with pytest.raises(XenParseError) as raised:
            parse_list_long(text)
        assert not isinstance(raised.value, SXPFormat)
