"""The Xen and EVA drivers over real SSH against the lab (no mocks of paramiko or the lab).

Reference estate (hosts/reference.py): xenka01 has 4096 MB with Domain-0 256, lws-xen01 512,
tomcat-xen01 768 and dasi-xen01 2048 running, so 512 MB are free. DRG-proxy-xen01
replicates eva-wsl (source, presented to xenwsl01 where proxy-xen01 runs) to eva-ka.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from hosts.drivers.base import MASK, CommandResult
from hosts.drivers.eva import EvaDriver
from hosts.drivers.ssh import SSHConnection
from hosts.drivers.storage import SplitBrainRefused
from hosts.drivers.xen import (
    Disk,
    DomainNotFound,
    DuplicateDomain,
    Nic,
    NotEnoughMemory,
    XenDriver,
)
from hosts.lab.seed import LAB_SSSU_PASSWORD
from hosts.reference import sssu_login_file

from .conftest import LabHandle

GROUP = "DRG-proxy-xen01"
PROXY_LUN = "/dev/vg_proxy01/lvol1"


class Recorder:
    """Every CommandResult the SSH layer hands back, to compare with the lab's journal."""

    def __init__(self) -> None:
        self.results: list[CommandResult] = []

    def __call__(self, result: CommandResult) -> None:
        self.results.append(result)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def ka(lab: LabHandle, recorder: Recorder) -> Iterator[SSHConnection]:
    with SSHConnection(lab.target("xenka01"), on_result=recorder) as conn:
        yield conn


@pytest.fixture
def xen(ka: SSHConnection) -> XenDriver:
    return XenDriver(ka, "xl", timeout=10)


def memory(xen: XenDriver) -> dict[str, int]:
    return {domain.name: domain.memory_mb for domain in xen.list_domains()}


def assert_journal_has_each_command_once(lab: LabHandle, since: int, recorder: Recorder) -> None:
    """What the drivers sent is exactly what the lab received: same order, nothing twice."""
    sent = [(r.host, r.command, r.exit_status) for r in recorder.results]
    received = [(e["host"], e["command"], e["exit_status"]) for e in lab.journal(since)]
    assert received == sent


def test_it_lists_domains_and_reads_host_info_over_ssh(lab: LabHandle, xen: XenDriver) -> None:
    domains = xen.list_domains()
    info = xen.info()

    assert [(d.name, d.domid, d.memory_mb, d.is_alive) for d in domains] == [
        ("Domain-0", 0, 256, True),
        ("lws-xen01", 1, 512, True),
        ("tomcat-xen01", 2, 768, True),
        ("dasi-xen01", 3, 2048, True),
    ]
    assert (info.total_memory_mb, info.free_memory_mb, info.nr_cpus, info.xen_version) == (
        4096,
        512,
        4,
        "4.17.3",
    )


def test_it_reads_every_domains_devices_from_list_long(xen: XenDriver) -> None:
    details, warnings = xen.list_long()

    assert warnings == []
    by_name = {d.name: d for d in details}
    assert sorted(by_name) == ["dasi-xen01", "lws-xen01", "tomcat-xen01"]  # xl leaves Domain-0 out
    lws = by_name["lws-xen01"]
    assert (lws.domid, lws.max_memory_mb, lws.target_memory_mb, lws.vcpus) == (1, 512, 512, 1)
    assert lws.nics == (Nic("00:16:3e:10:01:01", "xenbr0"), Nic("00:16:3e:11:01:01", "xenbr1"))
    assert lws.disks == (Disk("/dev/vg_lws01/lvol1", "xvda1", "w"),)


def test_it_starts_a_vm_with_a_memory_override_and_refuses_what_does_not_fit(
    lab: LabHandle, xen: XenDriver, recorder: Recorder
) -> None:
    since = lab.last_seq()
    xen.destroy("tomcat-xen01")  # 512 + 768 = 1280 MB free now

    with pytest.raises(NotEnoughMemory) as short:
        xen.create("/etc/xen/vm/tomcat-xen01", memory_mb=2048)
    # Xen's own words reach the operator; nothing was started.
    assert "failed to free memory for the domain" in str(short.value)
    assert short.value.result is not None
    assert short.value.result.stderr.strip().endswith("failed to free memory for the domain")
    assert "tomcat-xen01" not in memory(xen)

    xen.create("/etc/xen/vm/tomcat-xen01", memory_mb=512)
    assert memory(xen)["tomcat-xen01"] == 512
    assert xen.info().free_memory_mb == 768

    with pytest.raises(DuplicateDomain, match='Domain with name "tomcat-xen01" already exists'):
        xen.create("/etc/xen/vm/tomcat-xen01", memory_mb=256)
    assert [d.name for d in xen.list_domains()].count("tomcat-xen01") == 1

    journal = lab.journal(since)
    assert [e["command"] for e in journal if "create" in e["command"]] == [
        "xl create /etc/xen/vm/tomcat-xen01 memory=2048",
        "xl create /etc/xen/vm/tomcat-xen01 memory=512",
        "xl create /etc/xen/vm/tomcat-xen01 memory=256",
    ]
    assert_journal_has_each_command_once(lab, since, recorder)


def test_it_sets_memory_shuts_down_and_destroys_domains(
    lab: LabHandle, xen: XenDriver, recorder: Recorder
) -> None:
    since = lab.last_seq()

    xen.mem_set("tomcat-xen01", 640)
    assert memory(xen)["tomcat-xen01"] == 640

    xen.shutdown("tomcat-xen01", timeout_s=10)
    xen.destroy("lws-xen01")
    assert list(memory(xen)) == ["Domain-0", "dasi-xen01"]
    with pytest.raises(DomainNotFound, match="lws-xen01 is an invalid domain identifier"):
        xen.destroy("lws-xen01")

    assert [e["command"] for e in lab.journal(since) if "list" not in e["command"]] == [
        "xl mem-set tomcat-xen01 640m",
        "xl shutdown -w tomcat-xen01",
        "xl destroy lws-xen01",
        "xl destroy lws-xen01",
    ]
    assert_journal_has_each_command_once(lab, since, recorder)
    # The lab's memory accounting saw the same thing the driver did.
    assert [d["name"] for d in lab.host_state("xenka01")["domains"]] == ["Domain-0", "dasi-xen01"]


def test_the_eva_driver_refuses_split_brain_then_fails_over_once_the_source_site_is_lost(
    lab: LabHandle, recorder: Recorder
) -> None:
    since = lab.last_seq()
    with (
        SSHConnection(lab.target("eva-ka"), on_result=recorder) as eva_conn,
        SSHConnection(lab.target("xenka01"), on_result=recorder) as ka_conn,
    ):
        eva_ka = EvaDriver(
            eva_conn, system="EVA-KA", login_file=sssu_login_file("EVA-KA"), timeout=10, failover_timeout=10
        )
        xen = XenDriver(ka_conn, "xl", timeout=10)

        before = eva_ka.status(GROUP)
        assert (before.role, before.replication, before.peer_role) == ("secondary", "consistent", "primary")
        assert before.lag_seconds == 2.0
        assert before.presented_to == ()

        # proxy-xen01 still runs at WSL on the source copy: promoting KA now is split brain.
        with pytest.raises(SplitBrainRefused, match="in use at its source EVA-WSL: domain proxy-xen01"):
            eva_ka.promote(GROUP)
        assert eva_ka.status(GROUP).role == "secondary"
        assert lab.store.read()["groups"][GROUP]["sides"]["eva-wsl"]["role"] == "primary"

        lab.fault("eva-wsl", "down")
        lab.fault("xenwsl01", "down")

        after = eva_ka.promote(GROUP)
        assert after.role == "primary"
        assert not xen.file_exists(PROXY_LUN)  # promoted, not yet presented to the dom0

        presented = eva_ka.present(GROUP, "xenka01")
        assert presented.presented_to == ("xenka01",)
        assert xen.file_exists(PROXY_LUN)

        # The last step of a failover: the VM starts at KA with its disaster memory.
        xen.create("/etc/xen/vm/proxy-xen01", memory_mb=512)
        assert memory(xen)["proxy-xen01"] == 512

    sides = lab.store.read()["groups"][GROUP]["sides"]
    assert (sides["eva-ka"]["role"], sides["eva-wsl"]["role"]) == ("primary", "secondary")
    assert any("SET DR_GROUP" in e["command"] and "FAILOVER" in e["command"] for e in lab.journal(since))
    assert any("ADD LUN 0 VDISK=" in e["command"] for e in lab.journal(since))
    assert_journal_has_each_command_once(lab, since, recorder)
    # The login script's password crossed SSH in sssu's echo of it, and was masked there.
    sssu_results = [r for r in recorder.results if r.argv[0] == "sssu"]
    assert sssu_results and all(f"PASSWORD={MASK}" in r.stdout for r in sssu_results)
    assert not any(LAB_SSSU_PASSWORD in r.stdout + r.stderr + r.command for r in recorder.results)
    assert not any(LAB_SSSU_PASSWORD in json.dumps(e) for e in lab.journal(since))
