"""Model rules: every refusal names the field and the reason."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from hosts.models import VM, DRGroup

from .factories import (
    ArrayFactory,
    DRGroupFactory,
    HostFactory,
    InterfaceFactory,
    ProfileFactory,
    SiteFactory,
    VMAllocationFactory,
    VMFactory,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["a;b", "$(x)", "two words", "back`tick`", "quo'te", "-leading", "x" * 65])
def test_it_refuses_vm_names_a_shell_or_xen_would_misread(name):
    vm = VMFactory.build(name=name, home_host=HostFactory())
    with pytest.raises(ValidationError) as exc:
        vm.full_clean()
    assert "name" in exc.value.message_dict
    assert "not a valid Xen domain name" in exc.value.message_dict["name"][0]


def test_it_accepts_the_thesis_vm_names():
    for name in ("lws-xen01", "dasi-xen01", "proxy_xen.01"):
        VMFactory.build(name=name, home_host=HostFactory()).full_clean()


def test_it_refuses_a_duplicate_mac_naming_the_field():
    nic = InterfaceFactory(mac="00:16:3e:00:00:01")
    twin = InterfaceFactory.build(vm=VMFactory(home_host=nic.vm.home_host), mac="00:16:3e:00:00:01")
    with pytest.raises(ValidationError) as exc:
        twin.full_clean()
    assert "mac" in exc.value.message_dict


def test_the_database_refuses_a_duplicate_mac_too():
    nic = InterfaceFactory(mac="00:16:3e:00:00:02")
    with pytest.raises(IntegrityError), transaction.atomic():
        InterfaceFactory(vm=nic.vm, index=1, mac="00:16:3e:00:00:02")


def test_it_refuses_a_duplicate_vm_name():
    VMFactory(name="dup-xen01")
    twin = VMFactory.build(name="dup-xen01", home_host=HostFactory())
    with pytest.raises(ValidationError) as exc:
        twin.full_clean()
    assert "name" in exc.value.message_dict


def test_it_refuses_a_nic_on_a_bridge_the_home_host_lacks():
    host = HostFactory(bridges=["xenbr0"])
    nic = InterfaceFactory.build(vm=VMFactory(home_host=host), bridge="xenbr9")
    with pytest.raises(ValidationError) as exc:
        nic.full_clean()
    message = exc.value.message_dict["bridge"][0]
    assert "xenbr9" in message and host.name in message and "xenbr0" in message


def test_it_refuses_placing_a_vm_on_a_host_that_lacks_one_of_its_bridges():
    vm = VMFactory(home_host=HostFactory(bridges=["xenbr0", "xenbr1"]))
    InterfaceFactory(vm=vm, bridge="xenbr1")
    other = HostFactory(bridges=["xenbr0"])
    allocation = VMAllocationFactory.build(profile=ProfileFactory(), vm=vm, host=other, memory_mb=512)
    with pytest.raises(ValidationError) as exc:
        allocation.full_clean()
    assert "xenbr1" in exc.value.message_dict["host"][0]


@pytest.mark.parametrize("memory", [0, 5000])
def test_it_refuses_memory_of_zero_or_above_the_hosts_ram(memory):
    vm = VMFactory(home_host=HostFactory(ram_mb=4096))
    allocation = VMAllocationFactory.build(
        profile=ProfileFactory(), vm=vm, host=vm.home_host, memory_mb=memory
    )
    with pytest.raises(ValidationError) as exc:
        allocation.full_clean()
    assert "memory_mb" in exc.value.message_dict


def test_it_refuses_a_dr_group_whose_arrays_share_a_site():
    site = SiteFactory(code="ONE")
    group = DRGroupFactory.build(source_array=ArrayFactory(site=site), target_array=ArrayFactory(site=site))
    with pytest.raises(ValidationError) as exc:
        group.full_clean()
    assert "another site" in exc.value.message_dict["target_array"][0]


def test_it_accepts_a_dr_group_across_sites():
    group = DRGroupFactory.build(
        source_array=ArrayFactory(site=SiteFactory(code="AA")),
        target_array=ArrayFactory(site=SiteFactory(code="BB")),
    )
    group.full_clean()


def assert_refused(row, field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        row.full_clean()
    assert field in exc.value.message_dict


def test_it_refuses_a_host_key_that_is_not_a_sha256_fingerprint():
    assert_refused(
        HostFactory.build(site=SiteFactory(), host_key_fingerprint="MD5:aa:bb"), "host_key_fingerprint"
    )


def test_it_refuses_a_profile_placement_on_the_site_it_plans_to_lose():
    site = SiteFactory(code="LOST")
    vm = VMFactory(home_host=HostFactory(site=site))
    profile = ProfileFactory(lost_site=site)
    allocation = VMAllocationFactory.build(profile=profile, vm=vm, host=vm.home_host)
    with pytest.raises(ValidationError) as exc:
        allocation.full_clean()
    assert "LOST" in exc.value.message_dict["host"][0]


def test_an_inventory_row_in_use_cannot_be_deleted_from_under_a_vm():
    vm = VMFactory()
    with pytest.raises(ProtectedError), transaction.atomic():
        vm.home_host.delete()
    assert VM.objects.filter(pk=vm.pk).exists()
    assert DRGroup.objects.count() == 0


def test_it_refuses_an_eva_array_without_its_sssu_login_file_naming_the_field():
    array = ArrayFactory.build(site=SiteFactory(), sssu_login_file="")
    with pytest.raises(ValidationError) as exc:
        array.full_clean()
    assert list(exc.value.message_dict) == ["sssu_login_file"]
    assert "PASSWORD=" in exc.value.message_dict["sssu_login_file"][0]
    array.sssu_login_file = "/etc/drportal/sssu/EVA-KA.login"
    array.full_clean()
    ArrayFactory.build(site=SiteFactory(), kind="drbd", sssu_login_file="").full_clean()  # EVA only


def test_it_refuses_an_sssu_login_file_that_is_not_a_plain_absolute_path():
    assert_refused(
        ArrayFactory.build(site=SiteFactory(), sssu_login_file='/etc/x" PASSWORD=1'), "sssu_login_file"
    )


def test_the_storage_driver_of_an_eva_without_a_login_file_is_refused_naming_array_and_field():
    from hosts.connect import storage_driver
    from hosts.drivers.storage import StorageError

    array = ArrayFactory(site=SiteFactory(), name="eva-x", sssu_login_file="")
    with pytest.raises(
        StorageError, match=r"array eva-x: no SSSU login file in the inventory \(field sssu_login_file\)"
    ):
        storage_driver(array, runner=None)
