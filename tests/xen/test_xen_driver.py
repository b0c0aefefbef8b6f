"""XenDriver end to end against the simulated tools, through an in-process Runner that
quotes and splits exactly like the SSH path (tests/lab/xen_states.py: LabRunner)."""

from __future__ import annotations

import pytest

from hosts.drivers.xen import (
    ConfigNotFound,
    ConfigParseError,
    DeviceUnavailable,
    DomainNotFound,
    DuplicateDomain,
    Nic,
    NotEnoughMemory,
    ToolNotFound,
    XenDriver,
    XenError,
    detect_toolstack,
)
from tests.lab.xen_states import LabRunner, dom0_host, lab_state, unpresent


@pytest.fixture
def runner(ka_state) -> LabRunner:
    return LabRunner(ka_state)


@pytest.fixture
def driver(runner) -> XenDriver:
    return XenDriver(runner)


def domains_of(runner: LabRunner) -> dict[str, dict]:
    return {dom["name"]: dom for dom in runner.state["hosts"]["xenka01"]["domains"]}


class TestObserving:
    def test_it_lists_domains_and_host_info(self, driver):
        assert [(d.name, d.memory_mb) for d in driver.list_domains()] == [
            ("Domain-0", 256),
            ("lws-xen01", 512),
            ("tomcat-xen01", 768),
            ("dasi-xen01", 2048),
        ]
        info = driver.info()
        assert (info.total_memory_mb, info.free_memory_mb, info.xen_version) == (4096, 512, "4.17.3")

    def test_every_call_has_a_timeout(self, driver, runner):
        driver.list_domains()
        driver.info()
        assert [call[1] for call in runner.calls] == [30.0, 30.0]

    def test_long_list_reads_json_without_warnings(self, driver):
        details, warnings = driver.list_long()
        assert warnings == []
        assert [d.name for d in details] == ["lws-xen01", "tomcat-xen01", "dasi-xen01"]
        assert details[2].disks[0].target == "/dev/vg_dasi01/lvol1" and details[2].max_memory_mb == 2048

    def test_long_list_reads_xls_s_expressions_with_their_disks_and_macs(self, driver, runner):
        runner.state["hosts"]["xenka01"]["long_format"] = "sxp"
        details, warnings = driver.list_long()
        assert warnings == []
        assert [
            (d.name, d.target_memory_mb, d.max_memory_mb, [x.target for x in d.disks]) for d in details
        ] == [
            ("lws-xen01", 512, 512, ["/dev/vg_lws01/lvol1"]),
            ("tomcat-xen01", 768, 768, ["/dev/vg_tomcat01/lvol1"]),
            ("dasi-xen01", 2048, 2048, ["/dev/vg_dasi01/lvol1"]),
        ]
        # xl's SXP form never prints a bridge: drportal does not make one up.
        assert details[0].nics == (Nic("00:16:3e:10:01:01", None), Nic("00:16:3e:11:01:01", None))

    def test_long_list_falls_back_when_the_command_fails(self, ka_state):
        class FailingLong(LabRunner):
            def run(self, argv, *, timeout=None):
                result = super().run(argv, timeout=timeout)
                if list(argv) == ["xl", "list", "-l"]:
                    return result.__class__(
                        **{
                            **result.__dict__,
                            "exit_status": 1,
                            "stdout": "",
                            "stderr": "libxl_list_domain failed.\n",
                        }
                    )
                return result

        details, warnings = XenDriver(FailingLong(ka_state)).list_long()
        assert len(details) == 3 and "libxl_list_domain failed." in warnings[0]

    def test_it_tests_and_reads_files_on_the_host(self, driver):
        assert driver.file_exists("/etc/xen/vm/proxy-xen01") is True
        assert driver.file_exists("/etc/xen/vm/nope") is False
        assert driver.read_config("/etc/xen/vm/proxy-xen01")["memory"] == "1792"
        config = driver.read_vm_config("/etc/xen/vm/proxy-xen01")
        assert (config.name, config.memory_mb, config.warnings) == ("proxy-xen01", 1792, ())
        with pytest.raises(ConfigNotFound):
            driver.read_config("/etc/xen/vm/nope")

    def test_it_reads_many_configs_in_one_command_naming_what_is_missing_or_refused(self, driver, runner):
        runner.state["hosts"]["xenka01"]["files"]["/etc/xen/vm/bad"] = 'name = "bad"\nmemory = 1.5\n'
        calls = len(runner.calls)
        seen = driver.read_vm_configs(["/etc/xen/vm/proxy-xen01", "/etc/xen/vm/nope", "/etc/xen/vm/bad"])
        assert len(runner.calls) == calls + 1
        proxy = seen["/etc/xen/vm/proxy-xen01"]
        assert proxy == driver.read_vm_config("/etc/xen/vm/proxy-xen01")
        assert (proxy.name, proxy.memory_mb) == ("proxy-xen01", 1792)
        assert isinstance(seen["/etc/xen/vm/nope"], ConfigNotFound)
        assert str(seen["/etc/xen/vm/nope"]) == "grep: /etc/xen/vm/nope: No such file or directory"
        assert isinstance(seen["/etc/xen/vm/bad"], ConfigParseError)
        assert str(seen["/etc/xen/vm/bad"]).startswith(
            "xenka01:/etc/xen/vm/bad:2: config parsing error near `.5'"
        )
        assert isinstance(driver.read_vm_configs(["/etc/xen"])["/etc/xen"], XenError)

    def test_an_answer_to_the_configs_grep_it_cannot_attribute_raises(self, driver, runner):
        class Stray:
            name = "xenka01"

            def run(self, argv, *, timeout=None):
                result = runner.run(argv, timeout=timeout)
                return type(result)(**{**result.__dict__, "stdout": result.stdout + "/etc/other\0x = 1\n"})

        with pytest.raises(XenError, match="a line of no file asked for"):
            XenDriver(Stray()).read_vm_configs(["/etc/xen/vm/proxy-xen01"])


class TestActing:
    def test_create_overrides_memory_with_a_quoted_argv(self, driver, runner):
        runner.state["hosts"]["xenka01"]["domains"].pop()  # dasi off
        result = driver.create("/etc/xen/vm/proxy-xen01", 512)
        assert result.argv == ("xl", "create", "/etc/xen/vm/proxy-xen01", "memory=512")
        assert result.command == "xl create /etc/xen/vm/proxy-xen01 memory=512"
        assert runner.calls[-1][1] == 120.0
        assert domains_of(runner)["proxy-xen01"]["memory_mb"] == 512

    def test_create_refused_for_memory_raises_not_enough_memory_with_xens_words(self, driver, runner):
        with pytest.raises(NotEnoughMemory) as raised:
            driver.create("/etc/xen/vm/proxy-xen01", 1024)
        assert str(raised.value).endswith("failed to free memory for the domain")
        assert raised.value.result.exit_status == 3

    def test_create_refused_by_libxc_is_still_not_enough_memory(self, driver, runner):
        runner.state["hosts"]["xenka01"]["autoballoon"] = False
        with pytest.raises(NotEnoughMemory):
            driver.create("/etc/xen/vm/proxy-xen01", 1024)

    def test_create_maps_the_other_refusals(self, driver, runner):
        with pytest.raises(DuplicateDomain):
            driver.create("/etc/xen/vm/lws-xen01", 256)
        with pytest.raises(ConfigNotFound):
            driver.create("/etc/xen/vm/nope", 256)
        unpresent(runner.state, "/dev/vg_dns01/lvol1")
        with pytest.raises(DeviceUnavailable):
            driver.create("/etc/xen/vm/dns-xen01", 256)

    def test_a_config_path_with_a_space_survives_the_quoting(self, driver, runner):
        files = runner.state["hosts"]["xenka01"]["files"]
        files["/etc/xen/vm/my vm"] = files["/etc/xen/vm/dns-xen01"].replace("dns-xen01", "my-vm")
        result = driver.create("/etc/xen/vm/my vm", 128)
        assert result.command == "xl create '/etc/xen/vm/my vm' memory=128"
        assert "my-vm" in domains_of(runner)

    def test_mem_set_sends_an_explicit_unit(self, driver, runner):
        result = driver.mem_set("dasi-xen01", 1024)
        assert result.argv == ("xl", "mem-set", "dasi-xen01", "1024m")
        assert domains_of(runner)["dasi-xen01"]["memory_mb"] == 1024
        driver.mem_set("Domain-0", 128)
        assert domains_of(runner)["Domain-0"]["memory_mb"] == 128

    def test_mem_set_refusals_are_typed(self, driver, runner):
        with pytest.raises(DomainNotFound, match=r"^ghost is an invalid domain identifier \(rc=-6\)$"):
            driver.mem_set("ghost", 512)
        with pytest.raises(XenError, match="memory_static_max") as raised:
            driver.mem_set("lws-xen01", 1024)
        assert type(raised.value) is XenError
        domains_of(runner)["lws-xen01"]["max_memory_mb"] = 4096
        with pytest.raises(XenError, match="lab: mem-set refused") as raised:
            driver.mem_set("lws-xen01", 2048)  # the lab's own refusal: a real dom0 would not say this
        assert type(raised.value) is XenError

    def test_shutdown_waits_under_the_given_timeout(self, driver, runner):
        result = driver.shutdown("tomcat-xen01", timeout_s=90)
        assert result.argv == ("xl", "shutdown", "-w", "tomcat-xen01") and runner.calls[-1][1] == 90
        assert "tomcat-xen01" not in domains_of(runner)

    def test_destroy_and_unknown_domains(self, driver, runner):
        driver.destroy("lws-xen01")
        assert "lws-xen01" not in domains_of(runner)
        with pytest.raises(DomainNotFound):
            driver.destroy("lws-xen01")

    @pytest.mark.parametrize("name", ["-f", "a;reboot", "$(reboot)", "3", "", "x" * 65])
    def test_bad_names_never_reach_the_host(self, driver, runner, name):
        for call in (
            driver.mem_set,
            lambda n, _=None: driver.destroy(n),
            lambda n, _=None: driver.shutdown(n, 5),
        ):
            with pytest.raises(ValueError):
                call(name, 512)
        assert runner.calls == []

    @pytest.mark.parametrize(
        ("path", "memory"),
        [("vm/x", 512), ("/etc/xen/vm/x\nreboot", 512), ("/etc/xen/vm/x", 0), ("/etc/xen/vm/x", True)],
    )
    def test_bad_create_arguments_never_reach_the_host(self, driver, runner, path, memory):
        with pytest.raises(ValueError):
            driver.create(path, memory)
        assert runner.calls == []


class TestToolstacks:
    def test_it_detects_xl(self, runner):
        assert detect_toolstack(runner) == "xl"

    def test_it_detects_xm_when_xl_is_missing(self, xm_state):
        runner = LabRunner(xm_state)
        assert detect_toolstack(runner) == "xm"
        assert [call[0][:2] for call in runner.calls] == [("xl", "info"), ("xm", "info")]

    def test_it_raises_when_neither_is_there(self):
        state = lab_state(xenka01=dom0_host())
        state["hosts"]["xenka01"]["toolstack"] = "none"
        with pytest.raises(ToolNotFound):
            detect_toolstack(LabRunner(state))

    def test_an_xl_driver_on_an_xm_host_says_the_tool_is_missing(self, xm_state):
        with pytest.raises(ToolNotFound, match="bash: xl: command not found"):
            XenDriver(LabRunner(xm_state)).list_domains()
        with pytest.raises(ToolNotFound):
            XenDriver(LabRunner(xm_state)).list_long()

    def test_the_xm_driver_works_through_the_deprecation_warning(self):
        state = lab_state(xenka01=dom0_host(toolstack="xm", xen_version="4.4.1", running=("lws-xen01",)))
        runner = LabRunner(state)
        driver = XenDriver(runner, "xm")
        assert [d.name for d in driver.list_domains()] == ["Domain-0", "lws-xen01"]
        driver.create("/etc/xen/vm/dns-xen01", 256)
        driver.mem_set("dns-xen01", 128)
        details, warnings = driver.list_long()  # xend's S-expressions, read with their devices
        assert [(d.name, d.target_memory_mb, d.max_memory_mb) for d in details] == [
            ("lws-xen01", 512, 512),
            ("dns-xen01", 128, 512),
        ]
        assert warnings == [] and details[1].nics[1] == Nic("00:16:3e:11:05:01", "xenbr1")
        driver.shutdown("dns-xen01", 60)
        with pytest.raises(DomainNotFound, match=r"Error: Domain 'dns-xen01' does not exist\."):
            driver.destroy("dns-xen01")
        with pytest.raises(DuplicateDomain):
            driver.create("/etc/xen/vm/lws-xen01", 256)

    def test_it_refuses_an_unknown_toolstack(self, runner):
        with pytest.raises(ValueError):
            XenDriver(runner, "virsh")
