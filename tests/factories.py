"""factory_boy factories for the estate."""

from __future__ import annotations

import factory

from hosts.models import (
    VM,
    DRGroup,
    Host,
    HostAllocation,
    MemoryProfile,
    Site,
    StorageArray,
    VMAllocation,
    VMInterface,
)


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"S{n}")
    name = factory.LazyAttribute(lambda o: f"Site {o.code}")
    role = "primary"


class ArrayFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StorageArray

    site = factory.SubFactory(SiteFactory)
    name = factory.Sequence(lambda n: f"array{n}")
    kind = "eva-ca"
    sssu_login_file = factory.LazyAttribute(lambda o: f"/etc/drportal/sssu/{o.name.upper()}.login")


class HostFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Host

    site = factory.SubFactory(SiteFactory)
    name = factory.Sequence(lambda n: f"dom0-{n}")
    address = "127.0.0.1"
    ram_mb = 4096
    bridges = factory.LazyFunction(lambda: ["xenbr0", "xenbr1"])


class VMFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VM

    name = factory.Sequence(lambda n: f"vm-{n}")
    home_host = factory.SubFactory(HostFactory)
    config_path = factory.LazyAttribute(lambda o: f"/etc/xen/vm/{o.name}")
    tier = 3


class InterfaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VMInterface

    vm = factory.SubFactory(VMFactory)
    mac = factory.Sequence(lambda n: f"00:16:3e:{(n >> 16) & 255:02x}:{(n >> 8) & 255:02x}:{n & 255:02x}")
    bridge = "xenbr0"
    lan_role = "user"


class DRGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DRGroup

    name = factory.Sequence(lambda n: f"DRG-{n}")
    source_array = factory.SubFactory(ArrayFactory)


class ProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MemoryProfile

    name = factory.Sequence(lambda n: f"profile {n}")


class VMAllocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VMAllocation

    profile = factory.SubFactory(ProfileFactory)
    vm = factory.SubFactory(VMFactory)
    host = factory.SelfAttribute("vm.home_host")
    memory_mb = 512


class HostAllocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = HostAllocation

    profile = factory.SubFactory(ProfileFactory)
    host = factory.SubFactory(HostFactory)
    dom0_memory_mb = 256
