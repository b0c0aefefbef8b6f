"""``enroll_host`` and ``discover --json`` against a lab host over real SSH."""

from __future__ import annotations

import io
import json
import sys

import pytest
from django.core.management import CommandError, call_command

from hosts import reference
from hosts.drivers.xen import XenDriver
from hosts.models import VM, Host, Site, VMAllocation
from hosts.services import NORMAL_PROFILE

from .conftest import LabHandle

# Domains that come and go on a real dom0; xl's six state letters: r b p s <reason> d.
NEW_NICS = [
    {"mac": "00:16:3e:20:01:01", "bridge": "xenbr0"},
    {"mac": "00:16:3e:21:01:01", "bridge": "xenbr1"},
]
NEW_DISKS = [
    {"target": "/dev/vg_new01/lvol1", "vdev": "xvda1", "mode": "w"},
    {"target": "/dev/vg_new01/lvol2", "vdev": "xvdb1", "mode": "r"},
]


def domain(name: str, domid: int, memory_mb: int, state: str, nics=(), disks=()) -> dict:
    """A domain per the lab schema (hosts/lab/tools/base.py)."""
    return {
        "name": name,
        "domid": domid,
        "memory_mb": memory_mb,
        "max_memory_mb": memory_mb,
        "vcpus": 1,
        "state": state,
        "cpu_time": 12.5,
        "uuid": f"00000000-0000-4000-8000-{domid:012d}",
        "config_path": None,
        "nics": list(nics),
        "disks": list(disks),
    }


def enroll(lab: LabHandle, *extra: str, name: str = "xenka01", fingerprint: str | None = None) -> dict:
    out = io.StringIO()
    call_command(
        "enroll_host",
        name,
        "--site",
        "KA",
        "--address",
        f"{lab.address(name)}:{lab.port}",
        "--user",
        "root",
        "--key",
        str(lab.key_path),
        "--accept-fingerprint",
        fingerprint or lab.fingerprints[name],
        "--json",
        *extra,
        stdout=out,
        stderr=io.StringIO(),
    )
    return json.loads(out.getvalue())


def discover(name: str = "xenka01") -> dict:
    out = io.StringIO()
    call_command("discover", name, "--json", stdout=out)
    return json.loads(out.getvalue())


@pytest.fixture
def sites(db) -> None:
    for site in reference.SITES:
        Site.objects.create(**site)


# -- enrollment --------------------------------------------------------------------------------


def test_enroll_host_pins_the_accepted_key_and_records_ram_and_toolstack(lab: LabHandle, sites) -> None:
    since = lab.last_seq()
    fingerprint = lab.fingerprints["xenka01"]

    result = enroll(lab)

    assert result == {
        "host": "xenka01",
        "created": True,
        "fingerprint": fingerprint,
        "toolstack": "xl",
        "ram_mb": 4096,
        "free_mb": 512,
        "cpus": 4,
        "xen_version": "4.17.3",
    }
    host = Host.objects.get(name="xenka01")
    assert (host.site.code, host.address, host.ssh_port) == ("KA", "127.0.2.1", lab.port)
    assert host.ssh_user == "root"
    assert (host.host_key_fingerprint, host.ram_mb, host.cpus, host.toolstack) == (fingerprint, 4096, 4, "xl")
    assert host.ssh_key_path == str(lab.key_path)
    assert host.enrolled_at is not None
    assert [e["command"] for e in lab.journal(since)] == ["xl info", "xl info"]  # detect, then read


def test_enroll_host_refuses_a_fingerprint_that_is_not_the_hosts_and_saves_nothing(
    lab: LabHandle, sites
) -> None:
    since = lab.last_seq()
    wrong = lab.fingerprints["xenwsl01"]  # a real key, of another host
    actual = lab.fingerprints["xenka01"]

    with pytest.raises(CommandError) as refused:
        enroll(lab, fingerprint=wrong)

    assert str(refused.value) == (
        f"host key mismatch for xenka01: expected {wrong}, got {actual}; nothing pinned"
    )
    assert not Host.objects.exists()
    assert lab.journal(since) == []


def test_enroll_host_without_a_terminal_or_a_fingerprint_asks_for_one(
    lab: LabHandle, sites, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))  # piped input is not a person

    with pytest.raises(CommandError, match="no terminal to ask on: pass --accept-fingerprint"):
        call_command(
            "enroll_host",
            "xenka01",
            "--site",
            "KA",
            "--address",
            f"127.0.2.1:{lab.port}",
            "--key",
            str(lab.key_path),
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )
    assert not Host.objects.exists()


def test_enroll_host_detects_an_xm_only_host(lab: LabHandle, sites) -> None:
    with lab.state() as state:
        state["hosts"]["xenka01"].update(toolstack="xm", xen_version="3.2.3")
    since = lab.last_seq()

    result = enroll(lab)

    assert (result["toolstack"], result["xen_version"], result["ram_mb"]) == ("xm", "3.2.3", 4096)
    assert Host.objects.get(name="xenka01").toolstack == "xm"
    assert [(e["command"], e["exit_status"]) for e in lab.journal(since)] == [
        ("xl info", 127),  # bash: xl: command not found
        ("xm info", 0),
        ("xm info", 0),
    ]

    # xm's `list --long` is xend's S-expressions: discovery learns NICs, bridges and disks
    # from it as it does from xl's JSON.
    report = discover()
    assert [d["name"] for d in report["found"]] == ["Domain-0", "lws-xen01", "tomcat-xen01", "dasi-xen01"]
    assert report["warnings"] == []
    lws = VM.objects.get(name="lws-xen01")
    assert sorted((i.mac, i.bridge) for i in lws.interfaces.all()) == [
        ("00:16:3e:10:01:01", "xenbr0"),
        ("00:16:3e:11:01:01", "xenbr1"),
    ]
    assert [(d.target, d.vdev, d.writable) for d in lws.disks.all()] == [
        ("/dev/vg_lws01/lvol1", "xvda1", True)
    ]


def test_enroll_then_discover_a_host_the_inventory_knew_nothing_about(lab: LabHandle, sites) -> None:
    enroll(lab)

    report = discover()

    assert report["skipped"] == []
    assert report["created"] == ["lws-xen01", "tomcat-xen01", "dasi-xen01"]
    lws = VM.objects.get(name="lws-xen01")
    assert [(i.mac, i.bridge, i.lan_role) for i in lws.interfaces.all()] == [
        ("00:16:3e:10:01:01", "xenbr0", "user"),
        ("00:16:3e:11:01:01", "xenbr1", "backup"),
    ]
    # Enrolled without --bridge: the running domains' vifs tell which bridges the host has.
    assert report["bridges_learned"] == ["xenbr0", "xenbr1"]
    assert Host.objects.get(name="xenka01").bridges == ["xenbr0", "xenbr1"]


# -- discovery ---------------------------------------------------------------------------------


@pytest.fixture
def busy_ka(lab_estate: LabHandle) -> LabHandle:
    """xenka01 as a real dom0 looks mid-day: one new VM, one dying, one crashed, one (null)."""
    with lab_estate.state() as state:
        host = state["hosts"]["xenka01"]
        host["domains"][0]["memory_mb"] = 320  # Domain-0 was ballooned
        host["domains"] += [
            domain("new-xen01", 4, 128, "-b----", NEW_NICS, NEW_DISKS),
            domain("old-xen01", 5, 32, "-b---d"),  # dying
            domain("bad-xen01", 6, 64, "---sc-"),  # shut down, reason crash
            domain("(null)", 7, 0, "--ps-d"),  # torn down, name already gone
        ]
        host["next_domid"] = 8
    return lab_estate


def test_discover_json_lists_found_created_updated_and_skipped_domains(busy_ka: LabHandle) -> None:
    report = discover()

    assert report["host"] == "xenka01"
    assert [(d["name"], d["domid"], d["memory_mb"], d["state"]) for d in report["found"]] == [
        ("Domain-0", 0, 320, "r-----"),
        ("lws-xen01", 1, 512, "-b----"),
        ("tomcat-xen01", 2, 768, "-b----"),
        ("dasi-xen01", 3, 2048, "-b----"),
        ("new-xen01", 4, 128, "-b----"),
        ("old-xen01", 5, 32, "-b---d"),
        ("bad-xen01", 6, 64, "---sc-"),
        ("(null)", 7, 0, "--ps-d"),
    ]
    assert report["created"] == ["new-xen01"]
    assert report["updated"] == ["lws-xen01", "tomcat-xen01", "dasi-xen01"]  # first sighting
    assert report["unchanged"] == []
    reasons = {skip["name"]: skip["reason"] for skip in report["skipped"]}
    assert list(reasons) == ["old-xen01", "bad-xen01", "(null)"]
    assert reasons["old-xen01"].startswith("dying")
    assert reasons["bad-xen01"].startswith("crashed")
    assert reasons["(null)"].startswith("name is (null)")
    assert report["warnings"] == []
    assert report["not_running"] == [] and report["bridges_learned"] == []
    assert report["dom0_memory_mb"] == 320

    assert not VM.objects.filter(name__in=["old-xen01", "bad-xen01", "(null)"]).exists()
    assert Host.objects.get(name="xenka01").dom0_memory_mb == 320

    again = discover()
    assert again["created"] == [] and again["updated"] == []
    assert again["unchanged"] == ["lws-xen01", "tomcat-xen01", "dasi-xen01", "new-xen01"]


def test_discover_creates_an_unknown_domain_with_its_nics_and_disks_from_list_long(
    busy_ka: LabHandle,
) -> None:
    discover()

    vm = VM.objects.get(name="new-xen01")
    host = Host.objects.get(name="xenka01")
    assert (vm.home_host, vm.observed_host, vm.observed_state, vm.observed_memory_mb) == (
        host,
        host,
        "running",
        128,
    )
    assert vm.config_path == "/etc/xen/vm/new-xen01"
    assert [(i.index, i.mac, i.bridge, i.lan_role) for i in vm.interfaces.all()] == [
        (0, "00:16:3e:20:01:01", "xenbr0", "user"),
        (1, "00:16:3e:21:01:01", "xenbr1", "backup"),
    ]
    assert [(d.target, d.vdev, d.writable) for d in vm.disks.all()] == [
        ("/dev/vg_new01/lvol1", "xvda1", True),
        ("/dev/vg_new01/lvol2", "xvdb1", False),
    ]
    allocation = VMAllocation.objects.get(vm=vm, profile__name=NORMAL_PROFILE)
    assert (allocation.host, allocation.memory_mb) == (host, 128)


def test_discover_never_deletes_a_vm_that_is_not_running_any_more(lab_estate: LabHandle) -> None:
    discover()
    with lab_estate.connect("xenka01") as conn:
        XenDriver(conn, "xl").shutdown("tomcat-xen01", timeout_s=10)

    report = discover()

    assert "tomcat-xen01" not in [d["name"] for d in report["found"]]
    assert report["not_running"] == ["tomcat-xen01"]
    tomcat = VM.objects.get(name="tomcat-xen01")  # still in the inventory, with everything it had
    assert tomcat.interfaces.count() == 2 and tomcat.disks.count() == 1
    assert tomcat.allocations.count() == 2
    assert (tomcat.observed_state, tomcat.observed_memory_mb) == ("stopped", None)
    assert VM.objects.count() == len(reference.VMS)

    out = io.StringIO()
    call_command("discover", "xenka01", stdout=out)
    assert "  not running any more (kept): tomcat-xen01\n" in out.getvalue()


def test_discover_names_the_host_it_does_not_know(db) -> None:
    with pytest.raises(CommandError, match="no host 'xenka99'"):
        discover("xenka99")


def test_discover_reports_an_unreachable_host_as_a_command_error(lab_estate: LabHandle) -> None:
    lab_estate.fault("xenka01", "down")
    with pytest.raises(CommandError, match=r"^xenka01: cannot connect to xenka01 \(127\.0\.2\.1:\d+\)"):
        discover()
