"""The lab's simulated `xl` and `xm`: formats, refusals in Xen's words, memory accounting."""

from __future__ import annotations

import copy
import json

import pytest

from hosts.drivers.xen import parse_info, parse_list, parse_list_long
from hosts.lab.tools.xen_tool import REGISTRY_ENTRIES, parse_mem_size_kb, xl, xm
from tests.lab.xen_states import dom0_host, lab_state, run_tool, unpresent


def host(state: dict) -> dict:
    return state["hosts"]["xenka01"]


def used_mb(state: dict) -> int:
    return sum(dom["memory_mb"] for dom in host(state)["domains"])


def names(state: dict) -> list[str]:
    return [dom["name"] for dom in host(state)["domains"]]


def test_it_exposes_both_tools_for_the_registry():
    assert {"xl": xl, "xm": xm} == REGISTRY_ENTRIES


def test_the_lab_registry_serves_them():
    from hosts.lab.tools import resolve

    assert resolve("xl") is xl and resolve("/usr/sbin/xm") is xm


class TestList:
    def test_it_prints_xls_layout_domain0_first(self, ka_state):
        status, out, err = run_tool(ka_state, "xenka01", "xl", "list")
        assert (status, err) == (0, "")
        lines = out.splitlines()
        assert lines[0] == "Name                                        ID   Mem VCPUs\tState\tTime(s)"
        assert lines[1] == "Domain-0                                     0   256     4     r-----   48213.7"
        assert lines[2] == "lws-xen01                                    1   512     1     -b----    1000.5"

    def test_what_it_prints_parses_back_to_the_state(self, ka_state):
        domains = parse_list(run_tool(ka_state, "xenka01", "xl", "list")[1])
        assert [(d.name, d.domid, d.memory_mb, d.vcpus, d.state) for d in domains] == [
            (dom["name"], dom["domid"], dom["memory_mb"], dom["vcpus"], dom["state"])
            for dom in host(ka_state)["domains"]
        ]

    def test_it_prints_one_domain(self, ka_state):
        status, out, _ = run_tool(ka_state, "xenka01", "xl", "list", "tomcat-xen01")
        assert status == 0 and [d.name for d in parse_list(out)] == ["tomcat-xen01"]

    def test_it_refuses_an_unknown_domain_name_in_xls_words(self, ka_state):
        assert run_tool(ka_state, "xenka01", "xl", "list", "nosuchname") == (
            1,
            "",
            "nosuchname is an invalid domain identifier (rc=-6)\n",
        )

    def test_it_refuses_an_unknown_domid_differently(self, ka_state):
        assert run_tool(ka_state, "xenka01", "xl", "list", "99") == (
            1,
            "",
            "Error: Domain '99' does not exist.\n",
        )

    def test_long_list_is_json_without_domain0(self, ka_state):
        status, out, _ = run_tool(ka_state, "xenka01", "xl", "list", "-l")
        assert status == 0 and out.startswith("[\n    {\n")
        data = json.loads(out)
        assert [entry["domid"] for entry in data] == [1, 2, 3]
        assert "Domain-0" not in out
        details = parse_list_long(out)
        assert [(d.name, d.target_memory_mb, d.max_memory_mb) for d in details] == [
            ("lws-xen01", 512, 512),
            ("tomcat-xen01", 768, 768),
            ("dasi-xen01", 2048, 2048),
        ]
        assert details[0].disks[0].target == "/dev/vg_lws01/lvol1"
        assert [nic.bridge for nic in details[0].nics] == ["xenbr0", "xenbr1"]

    def test_long_list_of_one_domain_is_a_one_element_array(self, ka_state):
        out = run_tool(ka_state, "xenka01", "xl", "list", "--long", "dasi-xen01")[1]
        assert [d.name for d in parse_list_long(out)] == ["dasi-xen01"]

    def test_long_list_prints_sxp_when_the_host_is_configured_so(self, ka_state):
        host(ka_state)["long_format"] = "sxp"
        out = run_tool(ka_state, "xenka01", "xl", "list", "-l")[1]
        assert out.startswith("(domain\n\t(domid 1)")
        # xl_sxp.c printf_info_sexp: disks as (tap (physpath ..)), MACs without colons, no bridge
        assert "\t\t\t(physpath /dev/vg_lws01/lvol1)\n" in out and "\t\t\t(mac 00163e100101)\n" in out
        assert "bridge" not in out
        # ... and a PV domain's "(linux 0)" comes closed, so the last ")" of each domain closes nothing
        assert out.count("(") == out.count(")") - 3

    def test_xm_prints_its_own_layout(self, xm_state):
        status, out, err = run_tool(xm_state, "xenka01", "xm", "list")
        assert (status, err) == (0, "")  # Xen 3.2: no deprecation warning yet
        lines = out.splitlines()
        assert lines[0] == "Name                                        ID   Mem VCPUs      State   Time(s)"
        assert lines[2] == "lws-xen01                                    1   512     1     -b----   1000.5"
        assert [d.name for d in parse_list(out)] == ["Domain-0", "lws-xen01"]

    def test_xm_long_list_is_sxp_with_domain0(self, xm_state):
        out = run_tool(xm_state, "xenka01", "xm", "list", "-l")[1]
        assert out.startswith("(domain\n    (domid 0)") and "(status 2)" in out and "(name lws-xen01)" in out


class TestInfo:
    def test_free_memory_is_total_minus_every_domain(self, ka_state):
        info = parse_info(run_tool(ka_state, "xenka01", "xl", "info")[1])
        assert (info.total_memory_mb, info.free_memory_mb) == (4096, 4096 - 256 - 512 - 768 - 2048)
        assert (info.nr_cpus, info.xen_version) == (4, "4.17.3")

    def test_it_pads_labels_to_23_columns(self, ka_state):
        out = run_tool(ka_state, "xenka01", "xl", "info")[1]
        assert "total_memory           : 4096\n" in out and "xen_extra              : .3\n" in out

    def test_xm_info_parses_too(self, xm_state):
        info = parse_info(run_tool(xm_state, "xenka01", "xm", "info")[1])
        assert (info.free_memory_mb, info.xen_version) == (4096 - 256 - 512, "3.2.3")


class TestCreate:
    def test_it_starts_a_domain_with_the_next_domid_and_the_memory_override(self, ka_state):
        before = host(ka_state)["next_domid"]
        host(ka_state)["domains"] = [d for d in host(ka_state)["domains"] if d["name"] != "dasi-xen01"]
        status, out, err = run_tool(
            ka_state, "xenka01", "xl", "create", "/etc/xen/vm/dns-xen01", "memory=256"
        )
        assert (status, out, err) == (0, "", "Parsing config from /etc/xen/vm/dns-xen01\n")
        dom = host(ka_state)["domains"][-1]
        assert (dom["name"], dom["domid"], dom["memory_mb"], dom["max_memory_mb"], dom["state"]) == (
            "dns-xen01",
            before,
            256,
            512,
            "-b----",
        )
        assert dom["nics"][1] == {"mac": "00:16:3e:11:05:01", "bridge": "xenbr1"}
        assert host(ka_state)["next_domid"] == before + 1

    def test_it_can_leave_the_domain_paused_and_keep_quiet(self, ka_state):
        host(ka_state)["domains"].pop()  # dasi off: room
        status, _, err = run_tool(ka_state, "xenka01", "xl", "create", "-q", "-p", "/etc/xen/vm/dns-xen01")
        assert (status, err) == (0, "") and host(ka_state)["domains"][-1]["state"] == "--p---"

    def test_it_refuses_when_memory_is_short_with_xls_exact_words(self, ka_state):
        before = copy.deepcopy(ka_state)
        result = run_tool(ka_state, "xenka01", "xl", "create", "/etc/xen/vm/proxy-xen01")  # 1792 > 512 free
        assert result == (
            3,
            "",
            "Parsing config from /etc/xen/vm/proxy-xen01\nfailed to free memory for the domain\n",
        )
        assert ka_state == before  # freemem() refuses before a domid is taken

    def test_without_autoballoon_libxc_refuses_and_a_domid_is_burnt(self, ka_state):
        host(ka_state)["autoballoon"] = False
        status, _, err = run_tool(ka_state, "xenka01", "xl", "create", "/etc/xen/vm/proxy-xen01")
        assert status == 3
        assert "xc_dom_boot_mem_init: can't allocate low memory for domain: Out of memory\n" in err
        assert "Domain 4:cannot (re-)build domain: -3\n" in err
        assert names(ka_state) == ["Domain-0", "lws-xen01", "tomcat-xen01", "dasi-xen01"]
        assert host(ka_state)["next_domid"] == 5

    def test_xm_refuses_short_memory_in_xends_words(self, xm_state):
        host(xm_state)["total_memory_mb"] = 1024  # 256 + 512 used: 256 free
        assert run_tool(xm_state, "xenka01", "xm", "create", "/etc/xen/vm/dns-xen01") == (
            1,
            "",
            "Error: Not enough free memory and enable-dom0-ballooning is False, so I cannot release any "
            "more.  I need 524288 KiB but only have 262144.\n",
        )

    def test_it_refuses_a_duplicate_name(self, ka_state):
        status, _, err = run_tool(ka_state, "xenka01", "xl", "create", "/etc/xen/vm/lws-xen01", "memory=256")
        assert status == 3
        assert err == (
            "Parsing config from /etc/xen/vm/lws-xen01\n"
            'libxl: error: libxl_domain.c:81:libxl__domain_rename: Domain 4:Domain with name "lws-xen01" already '
            "exists.\n"
            "libxl: error: libxl_create.c:1294:initiate_domain_create: Domain 4:cannot make domain: -6\n"
        )
        assert names(ka_state).count("lws-xen01") == 1

    def test_it_refuses_a_missing_config_file(self, ka_state):
        assert run_tool(ka_state, "xenka01", "xl", "create", "/etc/xen/vm/nope") == (
            3,
            "",
            "Failed to read config file: /etc/xen/vm/nope: No such file or directory\n",
        )

    def test_it_refuses_a_config_it_cannot_parse(self, ka_state):
        host(ka_state)["files"]["/etc/xen/vm/xen-f"] = "memory = 128\nname = xen-f\n"
        assert run_tool(ka_state, "xenka01", "xl", "create", "/etc/xen/vm/xen-f") == (
            1,
            "",
            "Parsing config from /etc/xen/vm/xen-f\n"
            "/etc/xen/vm/xen-f:2: config parsing error near `xen': syntax error, unexpected IDENT, expecting "
            "STRING or NUMBER or '['\n/etc/xen/vm/xen-f:2: config parsing error near `-f': lexical error\n"
            "warning: Config file looks like it contains Python code.\n"
            "warning:  Arbitrary Python is no longer supported.\n"
            "warning:  See https://wiki.xen.org/wiki/PythonInXlConfig\n"
            "Failed to parse config: Invalid argument\n",
        )  # libxlutil's own words (the lab reads configs with it), then xl_parse.c's

    def test_it_refuses_a_config_without_a_name(self, ka_state):
        host(ka_state)["files"]["/etc/xen/vm/anon"] = "memory = 128\n"
        assert run_tool(ka_state, "xenka01", "xl", "create", "/etc/xen/vm/anon") == (
            1,
            "",
            "Parsing config from /etc/xen/vm/anon\nDomain name must be specified.\n",
        )

    def test_it_refuses_a_bridge_the_host_lacks(self, ka_state):
        host(ka_state)["domains"].pop()
        host(ka_state)["bridges"] = ["xenbr0"]
        status, _, err = run_tool(ka_state, "xenka01", "xl", "create", "/etc/xen/vm/dns-xen01")
        assert status == 3 and "Could not find bridge device xenbr1\n" in err
        assert "dns-xen01" not in names(ka_state)

    def test_it_refuses_a_disk_not_presented_to_the_host(self, ka_state):
        host(ka_state)["domains"].pop()
        unpresent(ka_state, "/dev/vg_dns01/lvol1")
        status, _, err = run_tool(ka_state, "xenka01", "xl", "create", "/etc/xen/vm/dns-xen01")
        assert status == 3
        assert "Disk vdev=xvda1 failed to stat: /dev/vg_dns01/lvol1: No such file or directory\n" in err
        assert "dns-xen01" not in names(ka_state)

    def test_a_secondary_copy_is_not_a_visible_disk(self, ka_state):
        host(ka_state)["domains"].pop()
        ka_state["groups"]["DRG-all"]["sides"]["eva-ka"]["role"] = "secondary"
        assert run_tool(ka_state, "xenka01", "xl", "create", "/etc/xen/vm/dns-xen01")[0] == 3

    def test_xm_creates_and_says_so_on_stdout(self, xm_state):
        status, out, err = run_tool(xm_state, "xenka01", "xm", "create", "dns-xen01", "memory=256")
        assert (status, err) == (0, "")
        assert out == 'Using config file "/etc/xen/vm/dns-xen01".\nStarted domain dns-xen01 (id=2)\n'


class TestMemSet:
    @pytest.mark.parametrize(
        ("text", "kb"),
        [
            ("512", 524288),
            ("512m", 524288),
            ("512M", 524288),
            ("524288k", 524288),
            ("1g", 1048576),
            ("1t", 1 << 30),
            ("536870912b", 524288),
            ("512mb", None),
            ("-5", None),
            ("", None),
            ("lots", None),
        ],
    )
    def test_it_reads_sizes_like_xl_bare_numbers_being_mib(self, text, kb):
        assert parse_mem_size_kb(text) == kb

    def test_it_shrinks_a_domain(self, ka_state):
        assert run_tool(ka_state, "xenka01", "xl", "mem-set", "dasi-xen01", "1024m") == (0, "", "")
        assert host(ka_state)["domains"][3]["memory_mb"] == 1024

    def test_it_shrinks_domain0_to_the_dr_profile_but_not_below_libxls_floor(self, ka_state):
        assert run_tool(ka_state, "xenka01", "xl", "mem-set", "Domain-0", "128m")[0] == 0
        status, _, err = run_tool(ka_state, "xenka01", "xl", "mem-set", "Domain-0", "127m")
        assert status == 1 and "New target 130048 for dom0 is below the minimum threshold\n" in err
        assert err.endswith("cannot set domid 0 dynamic max memory to : 127m\n")
        assert host(ka_state)["domains"][0]["memory_mb"] == 128

    def test_it_refuses_above_the_static_maximum(self, ka_state):
        status, _, err = run_tool(ka_state, "xenka01", "xl", "mem-set", "lws-xen01", "513")
        assert status == 1
        assert "Domain 1:memory_dynamic_max must be less than or equal to memory_static_max\n" in err
        assert err.endswith("cannot set domid 1 dynamic max memory to : 513\n")

    def test_it_refuses_to_grow_past_free_memory(self, ka_state):
        host(ka_state)["domains"][1]["max_memory_mb"] = 2048
        status, _, err = run_tool(
            ka_state, "xenka01", "xl", "mem-set", "lws-xen01", "1025m"
        )  # 513 more, 512 free
        assert status == 1 and err.startswith("lab: mem-set refused: domain 1 would need 525312 KiB more")
        assert run_tool(ka_state, "xenka01", "xl", "mem-set", "lws-xen01", "1024m")[0] == 0
        assert used_mb(ka_state) == 4096

    def test_it_refuses_an_invalid_size_and_an_unknown_domain(self, ka_state):
        assert run_tool(ka_state, "xenka01", "xl", "mem-set", "lws-xen01", "lots") == (
            1,
            "",
            "invalid memory size: lots\n",
        )
        assert run_tool(ka_state, "xenka01", "xl", "mem-set", "ghost", "512m") == (
            1,
            "",
            "ghost is an invalid domain identifier (rc=-6)\n",
        )


class TestShutdownDestroy:
    def test_shutdown_wait_reports_and_frees_the_memory(self, ka_state):
        status, out, err = run_tool(ka_state, "xenka01", "xl", "shutdown", "-w", "tomcat-xen01")
        assert (status, out) == (0, "")
        assert (
            err
            == "Shutting down domain 2\nWaiting for 1 domains\nDomain 2 has been shut down, reason code 0\n"
        )
        assert "tomcat-xen01" not in names(ka_state) and used_mb(ka_state) == 256 + 512 + 2048

    def test_xm_shutdown_wait_says_terminated(self, xm_state):
        assert run_tool(xm_state, "xenka01", "xm", "shutdown", "-w", "lws-xen01") == (
            0,
            "Domain lws-xen01 terminated\n",
            "",
        )

    def test_destroy_is_silent(self, ka_state):
        assert run_tool(ka_state, "xenka01", "xl", "destroy", "lws-xen01") == (0, "", "")
        assert "lws-xen01" not in names(ka_state)

    def test_it_refuses_to_destroy_or_shut_down_domain0(self, ka_state):
        assert run_tool(ka_state, "xenka01", "xl", "destroy", "Domain-0") == (
            1,
            "",
            "Not destroying domain 0; use -f to force.\n"
            "This can only be done when using a disaggregated hardware domain and toolstack.\n",
        )
        assert run_tool(ka_state, "xenka01", "xl", "shutdown", "0")[0] == 1
        assert names(ka_state)[0] == "Domain-0"

    def test_it_refuses_unknown_domains(self, ka_state):
        assert run_tool(ka_state, "xenka01", "xl", "shutdown", "ghost") == (
            1,
            "",
            "ghost is an invalid domain identifier (rc=-6)\n",
        )
        status, _, err = run_tool(ka_state, "xenka01", "xl", "destroy", "99")
        assert (
            status == 1
            and "Domain 99:Non-existant domain\n" in err
            and err.endswith("destroy failed (rc=-21)\n")
        )
        assert run_tool(ka_state, "xenka01", "xl", "shutdown") == (
            1,
            "",
            "You must specify -a or a domain id.\n",
        )
        assert run_tool(ka_state, "xenka01", "xm", "destroy", "ghost")[0] == 127  # xl host: no xm

    def test_xm_says_does_not_exist(self, xm_state):
        assert run_tool(xm_state, "xenka01", "xm", "destroy", "ghost") == (
            1,
            "",
            "Error: Domain 'ghost' does not exist.\n",
        )


class TestToolstacks:
    def test_an_xm_host_has_no_xl(self, xm_state):
        assert run_tool(xm_state, "xenka01", "xl", "list") == (127, "", "bash: xl: command not found\n")

    def test_an_xl_host_has_no_xm(self, ka_state):
        assert run_tool(ka_state, "xenka01", "xm", "list") == (127, "", "bash: xm: command not found\n")

    def test_an_array_has_neither(self):
        state = lab_state(xenka01=dom0_host())
        state["hosts"]["eva-ka"] = {"kind": "array", "site": "KA", "address": "127.0.2.2"}
        assert run_tool(state, "eva-ka", "xl", "info")[0] == 127

    def test_xm_on_xen_42_and_later_warns_it_is_deprecated(self):
        state = lab_state(xenka01=dom0_host(toolstack="xm", xen_version="4.4.1"))
        status, out, err = run_tool(state, "xenka01", "xm", "list")
        assert status == 0 and err == "WARNING: xend/xm is deprecated.\n" and parse_list(out)

    def test_an_unknown_subcommand_is_not_implemented(self, ka_state):
        assert run_tool(ka_state, "xenka01", "xl", "frobnicate") == (1, "", "command not implemented\n")

    def test_global_options_before_the_subcommand_are_accepted(self, ka_state):
        assert run_tool(ka_state, "xenka01", "xl", "-v", "list")[0] == 0

    def test_uptime_lists_every_domain(self, ka_state):
        status, out, _ = run_tool(ka_state, "xenka01", "xl", "uptime")
        lines = out.splitlines()
        assert status == 0 and lines[0].split() == ["Name", "ID", "Uptime"]
        assert [line.split()[0] for line in lines[1:]] == names(ka_state)
        assert run_tool(ka_state, "xenka01", "xl", "uptime", "ghost")[0] == 1
