"""The thesis estate, loaded exactly, and the capacity figures the issue names."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from hosts.models import VM, DRGroup, Host, HostAllocation, MemoryProfile, Site, VMAllocation, VMInterface

pytestmark = pytest.mark.django_db

NORMAL = {
    "lws-xen01": ("xenka01", 512),
    "dasi-xen01": ("xenka01", 2048),
    "tomcat-xen01": ("xenka01", 768),
    "proxy-xen01": ("xenwsl01", 1792),
    "dns-xen01": ("xenwsl01", 512),
    "rsync-xen01": ("xenwsl01", 1024),
}
DR = {
    "lws-xen01": 512,
    "dasi-xen01": 1024,
    "tomcat-xen01": 512,
    "proxy-xen01": 512,
    "dns-xen01": 256,
    "rsync-xen01": 512,
}


def test_it_loads_the_thesis_estate_exactly(load_reference_command):
    load_reference_command()
    assert sorted(Site.objects.values_list("code", "role")) == [("KA", "alternate"), ("WSL", "primary")]
    assert sorted(Host.objects.values_list("name", "ram_mb")) == [("xenka01", 4096), ("xenwsl01", 4096)]
    normal = MemoryProfile.objects.get(name="normal operation")
    wsl_lost = MemoryProfile.objects.get(name="WSL lost")
    assert {
        a.vm.name: (a.host.name, a.memory_mb) for a in normal.vm_allocations.select_related("vm", "host")
    } == NORMAL
    assert {a.vm.name: a.memory_mb for a in wsl_lost.vm_allocations.select_related("vm")} == DR
    assert set(wsl_lost.vm_allocations.values_list("host__name", flat=True)) == {"xenka01"}
    assert set(HostAllocation.objects.filter(profile=normal).values_list("dom0_memory_mb", flat=True)) == {
        256
    }
    assert list(
        HostAllocation.objects.filter(profile=wsl_lost).values_list("host__name", "dom0_memory_mb")
    ) == [("xenka01", 128)]
    for vm in VM.objects.all():
        assert sorted(vm.interfaces.values_list("bridge", flat=True)) == ["xenbr0", "xenbr1"]
        assert vm.config_path == f"/etc/xen/vm/{vm.name}"
    assert VMInterface.objects.count() == 12


def test_dr_groups_follow_the_digest_wsl_replicates_to_ka_and_ka_has_no_replica(load_reference_command):
    load_reference_command()
    for vm in VM.objects.select_related(
        "home_host__site", "dr_group__source_array", "dr_group__target_array"
    ):
        group = vm.dr_group
        if vm.home_host.site.code == "WSL":
            assert (group.source_array.name, group.target_array.name, group.mode) == (
                "eva-wsl",
                "eva-ka",
                "async",
            )
        else:
            assert (group.source_array.name, group.target_array) == ("eva-ka", None)
            assert group.replication_state == "none"


def test_loading_twice_changes_nothing(load_reference_command):
    load_reference_command()
    counts = [m.objects.count() for m in (Site, Host, VM, DRGroup, VMAllocation, HostAllocation, VMInterface)]
    out = StringIO()
    call_command("load_reference_estate", "--no-lab-keys", stdout=out)
    assert "0 created, 0 updated" in out.getvalue()
    assert counts == [
        m.objects.count() for m in (Site, Host, VM, DRGroup, VMAllocation, HostAllocation, VMInterface)
    ]


def test_host_addresses_are_settable(load_reference_command):
    load_reference_command("--address", "xenka01=10.96.180.11", "--port", "22")
    host = Host.objects.get(name="xenka01")
    assert (host.address, host.ssh_port) == ("10.96.180.11", 22)


def test_an_unknown_address_override_is_refused_by_name(load_reference_command):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="unknown name 'nosuch'"):
        load_reference_command("--address", "nosuch=1.2.3.4")
    assert Host.objects.count() == 0


def _capacity(*args) -> list[dict]:
    out = StringIO()
    call_command("capacity", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def test_capacity_of_the_reference_estate_matches_the_thesis(reference_estate):
    scenarios = {s["scenario"]: s for s in _capacity()}
    normal = scenarios["normal operation"]
    assert normal["fits"] is True
    assert {h["host"]: (h["used_mb"], h["ram_mb"]) for h in normal["hosts"]} == {
        "xenka01": (3584, 4096),
        "xenwsl01": (3584, 4096),
    }
    wsl_lost = scenarios["WSL lost"]
    assert wsl_lost["fits"] is True
    assert [(h["host"], h["used_mb"], h["ram_mb"]) for h in wsl_lost["hosts"]] == [("xenka01", 3456, 4096)]
    assert {p["vm"]: p["memory_mb"] for p in wsl_lost["hosts"][0]["placed"]} == DR
    ka_lost = scenarios["KA lost"]
    assert sorted(u["vm"] for u in ka_lost["unrecoverable"]) == ["dasi-xen01", "lws-xen01", "tomcat-xen01"]
    assert all("no replica" in u["reason"] for u in ka_lost["unrecoverable"])


def test_capacity_can_be_asked_for_one_lost_site(reference_estate):
    assert [s["scenario"] for s in _capacity("--lost-site", "KA")] == ["KA lost"]


def test_capacity_names_an_unknown_site(reference_estate):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--lost-site 'XX': no such site"):
        _capacity("--lost-site", "XX")
