"""Reads of the estate for views, commands and (later) the failover plan.

Every selector fetches what it needs in a fixed number of queries, whatever the size
of the estate (tests bound them with django_assert_max_num_queries).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.db.models import ManyToManyField, ManyToOneRel, Model

from . import capacity
from .models import VM, DRGroup, Host, HostAllocation, MemoryProfile, Site, StorageArray, VMAllocation


@dataclass(frozen=True)
class Budget:
    host: str
    ram_mb: int
    reserve_mb: int
    dom0_mb: int
    vm_mb: int

    @property
    def capacity_mb(self) -> int:
        return self.ram_mb - self.reserve_mb

    @property
    def used_mb(self) -> int:
        return self.dom0_mb + self.vm_mb


def reserve_mb() -> int:
    return settings.DRPORTAL_HYPERVISOR_RESERVE_MB


def host_budget(*, profile: MemoryProfile, host: Host, override: dict[int, int] | None = None) -> Budget:
    """Memory a profile puts on one host; ``override`` maps allocation ids to proposed MB."""
    override = override or {}
    vm_mb = sum(
        override.get(pk, mb)
        for pk, mb in VMAllocation.objects.filter(profile=profile, host=host).values_list("pk", "memory_mb")
    )
    dom0 = (
        HostAllocation.objects.filter(profile=profile, host=host)
        .values_list("dom0_memory_mb", flat=True)
        .first()
    )
    return Budget(host=host.name, ram_mb=host.ram_mb, reserve_mb=reserve_mb(), dom0_mb=dom0 or 0, vm_mb=vm_mb)


@dataclass
class EstateInputs:
    hosts: list[capacity.HostSpec]
    vms: list[capacity.VMSpec]
    scenarios: list[capacity.Scenario]


# What capacity_inputs reads of every VM (a caller that hands it the VMs fetches at least this).
CAPACITY_VM_RELATED = ("home_host__site", "dr_group__source_array__site", "dr_group__target_array__site")


def prefetched(obj: Model, name: str) -> Iterable:
    """``obj.<name>.all()`` of a relation already prefetched (``estate_vms``'s prefetch,
    or a cache filled as prefetch_related fills it): the same rows, in the same order,
    without a related manager made for every call (5,000 VMs made some 30,000 of them
    for the plan of the preview). Not prefetched: ``obj.<name>.all()`` itself."""
    cache = getattr(obj, "_prefetched_objects_cache", None)
    if cache is not None and name in cache:
        return cache[name]  # what the related manager's all() returns for a prefetched relation
    return getattr(obj, name).all()


def estate_vms(*prefetch: str) -> list[VM]:
    """Every VM, in the model's order, with what CAPACITY_VM_RELATED names already set
    (and ``prefetch`` prefetched): as ``select_related(*CAPACITY_VM_RELATED)`` gives them,
    except that each site, array, host and DR group is one instance shared by its VMs,
    read once each, not a joined copy per VM (5,000 VMs were 40,000 model instances).
    Each table is read before the ones it points to (VMs, groups, hosts, arrays, sites): a
    row pointed to cannot go while it is (PROTECT), so a row added meanwhile is read too, and
    only one moved off and removed during the read could be missing: then the joined read
    is made instead, which is consistent row by row.

    The VM's own rows (interfaces, disks, checks) and its dependencies are prefetched as
    lists (``_prefetch_lists``): iterate them (``prefetched(vm, name)`` or ``.all()``); a
    query (``filter``, ``count``) goes to the model's own manager."""
    lists = {name: rel for name in prefetch if (rel := _list_prefetch(name)) is not None}
    rows = list(VM.objects.prefetch_related(*(name for name in prefetch if name not in lists)))
    groups = {group.pk: group for group in DRGroup.objects.all()}
    hosts = {host.pk: host for host in Host.objects.all()}
    arrays = {array.pk: array for array in StorageArray.objects.all()}
    sites = {site.pk: site for site in Site.objects.all()}
    try:
        for array in arrays.values():
            array.site = sites[array.site_id]
        for host in hosts.values():
            host.site = sites[host.site_id]
        for group in groups.values():
            group.source_array = arrays[group.source_array_id]
            group.target_array = arrays[group.target_array_id] if group.target_array_id is not None else None
        for vm in rows:
            vm.home_host = hosts[vm.home_host_id]
            vm.dr_group = groups[vm.dr_group_id] if vm.dr_group_id is not None else None
        _prefetch_lists(rows, lists)
    except KeyError:
        # An inventory edit between two of the reads (a host emptied and removed, a VM
        # added and made a dependency): no half-linked VM leaves here.
        return list(VM.objects.select_related(*CAPACITY_VM_RELATED).prefetch_related(*prefetch))
    return rows


def _list_prefetch(name: str) -> ManyToManyField | ManyToOneRel | None:
    """The VM relation ``name`` if ``_prefetch_lists`` reads it: a VM's dependencies on
    other VMs, or a VM's own rows (a reverse foreign key whose model orders by the VM
    first, so that one VM's rows keep their order); None for any other (prefetch_related
    reads it)."""
    try:
        field = VM._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    if isinstance(field, ManyToManyField) and field.related_model is VM:
        return field
    if isinstance(field, ManyToOneRel) and _own_order(field)[:1] == (field.field.name,):
        return field
    return None


def _own_order(rel: ManyToOneRel) -> tuple[str, ...]:
    model = rel.related_model
    return tuple(model._meta.ordering or ()) if isinstance(model, type) else ()


def _prefetch_lists(rows: list[VM], relations: dict[str, ManyToManyField | ManyToOneRel]) -> None:
    """``prefetch_related(*names)`` for ``rows`` (every VM), one query each, the same rows in
    the same order, without the queryset and related manager prefetch_related makes for
    every VM and relation (20,000 of them for 5,000 VMs: 0.4 s of the 5,000-VM preview's
    0.65 s inventory read). A VM's dependencies are the instances of ``rows`` themselves;
    one not among them (added after the VM read) raises KeyError, as a missing host does."""
    if not rows or not relations:
        return  # nothing to read for (prefetch_related does not ask either)
    by_pk = {vm.pk: vm for vm in rows}
    caches: dict[int, dict[str, list]] = {vm.pk: {} for vm in rows}
    for name, relation in relations.items():
        found: dict[int, list] = defaultdict(list)
        if isinstance(relation, ManyToManyField):
            through: Any = relation.remote_field.through  # a model class (the stubs allow a name)
            source = through._meta.get_field(relation.m2m_field_name()).attname
            target = through._meta.get_field(relation.m2m_reverse_field_name()).attname
            place = {pk: i for i, pk in enumerate(by_pk)}  # the VMs' order is the model's
            pairs = [pair for pair in through.objects.values_list(source, target) if pair[0] in by_pk]
            for source_pk, target_pk in sorted(pairs, key=lambda pair: (pair[0], place[pair[1]])):
                found[source_pk].append(by_pk[target_pk])
        else:
            to_vm = relation.field  # the related model's foreign key to the VM
            model = to_vm.model
            for obj in model._default_manager.order_by(to_vm.attname, *_own_order(relation)[1:]):
                vm = by_pk.get(getattr(obj, to_vm.attname))
                if vm is not None:  # a VM added after the VM read is not in the estate read
                    to_vm.set_cached_value(obj, vm)
                    found[vm.pk].append(obj)
        for pk, cache in caches.items():
            cache[name] = found.get(pk, [])
    for vm in rows:  # beside what prefetch_related has put there
        vm._prefetched_objects_cache = {**getattr(vm, "_prefetched_objects_cache", {}), **caches[vm.pk]}  # type: ignore[attr-defined]


def capacity_inputs(*, lost_site: str | None = None, vm_rows: list[VM] | None = None) -> EstateInputs:
    """Turn the inventory into the pure capacity model: one scenario per memory profile,
    plus a "<SITE> lost" what-if for every site no profile plans for (with each VM's
    disaster memory taken from the disaster profiles, or its normal memory if none).

    ``vm_rows``: every VM of the estate, already fetched with CAPACITY_VM_RELATED and
    their interfaces (the failover survey reads them anyway); else fetched here."""
    sites = list(Site.objects.values_list("code", flat=True))
    host_rows = list(Host.objects.select_related("site").order_by("site__code", "name"))
    if vm_rows is None:
        vm_rows = estate_vms("interfaces")
    profiles = list(MemoryProfile.objects.select_related("lost_site").order_by("pk"))
    vm_alloc: dict[int, dict[str, tuple[str, int]]] = defaultdict(dict)
    for profile_id, vm_name, host_name, mb in VMAllocation.objects.values_list(
        "profile_id", "vm__name", "host__name", "memory_mb"
    ):
        vm_alloc[profile_id][vm_name] = (host_name, mb)
    dom0_alloc: dict[int, dict[str, int]] = defaultdict(dict)
    for profile_id, host_name, mb in HostAllocation.objects.values_list(
        "profile_id", "host__name", "dom0_memory_mb"
    ):
        dom0_alloc[profile_id][host_name] = mb

    normal = next((p for p in profiles if p.is_normal), None)
    normal_vm = {name: mb for name, (_, mb) in vm_alloc[normal.pk].items()} if normal else {}
    normal_dom0 = dict(dom0_alloc[normal.pk]) if normal else {}
    dr_vm: dict[str, int] = {}
    dr_dom0: dict[str, int] = {}
    for p in profiles:
        if not p.is_normal:
            for name, (_, mb) in vm_alloc[p.pk].items():
                dr_vm.setdefault(name, mb)
            for name, mb in dom0_alloc[p.pk].items():
                dr_dom0.setdefault(name, mb)

    hosts = [
        capacity.HostSpec(
            name=h.name,
            site=h.site.code,
            ram_mb=h.ram_mb,
            dom0_mb=normal_dom0.get(h.name, 0),
            bridges=frozenset(h.bridges or ()),
        )
        for h in host_rows
    ]
    vms = []
    for vm in vm_rows:
        replica_sites = {vm.home_host.site.code}
        if vm.dr_group is not None:
            replica_sites.add(vm.dr_group.source_array.site.code)
            if vm.dr_group.target_array is not None:
                replica_sites.add(vm.dr_group.target_array.site.code)
        vms.append(
            capacity.VMSpec(
                name=vm.name,
                home_host=vm.home_host.name,
                memory_mb=normal_vm.get(vm.name, 0),
                priority=vm.tier,
                replica_sites=frozenset(replica_sites),
                bridges=frozenset(nic.bridge for nic in prefetched(vm, "interfaces")),
            )
        )

    scenarios = []
    planned_sites = set()
    for p in profiles:
        code = p.lost_site.code if p.lost_site else None
        if code:
            planned_sites.add(code)
        if lost_site is not None and code != lost_site:
            continue
        scenarios.append(
            capacity.Scenario(
                name=p.name,
                lost_site=code,
                vm_memory={name: mb for name, (_, mb) in vm_alloc[p.pk].items()},
                dom0_memory={h.name: dom0_alloc[p.pk].get(h.name, normal_dom0.get(h.name, 0)) for h in hosts},
                placement={name: host for name, (host, _) in vm_alloc[p.pk].items()},
            )
        )
    for code in sites:
        if code in planned_sites or (lost_site is not None and code != lost_site):
            continue
        scenarios.append(
            capacity.Scenario(
                name=f"{code} lost",
                lost_site=code,
                vm_memory={vm.name: dr_vm.get(vm.name, vm.memory_mb) for vm in vms},
                dom0_memory={h.name: dr_dom0.get(h.name, h.dom0_mb) for h in hosts},
                placement=None,
            )
        )
    return EstateInputs(hosts=hosts, vms=vms, scenarios=scenarios)


def capacity_report(*, lost_site: str | None = None) -> list[capacity.CapacityResult]:
    inputs = capacity_inputs(lost_site=lost_site)
    return [
        capacity.check_scenario(inputs.hosts, inputs.vms, scenario, reserve_mb=reserve_mb())
        for scenario in inputs.scenarios
    ]


def profile_rows(*, profile: MemoryProfile) -> list[VMAllocation]:
    return list(
        VMAllocation.objects.filter(profile=profile)
        .select_related("vm", "host__site", "vm__dr_group")
        .order_by("host__name", "vm__tier", "vm__name")
    )


def dashboard_data() -> dict:
    sites = list(Site.objects.prefetch_related("hosts", "arrays").order_by("code"))
    vms = list(
        VM.objects.select_related("home_host", "dr_group__source_array", "dr_group__target_array")
        .prefetch_related("interfaces", "allocations__profile", "allocations__host", "depends_on")
        .order_by("tier", "name")
    )
    profiles = list(MemoryProfile.objects.select_related("lost_site").order_by("lost_site__code", "name"))
    return {"sites": sites, "vms": vms, "profiles": profiles, "capacity": capacity_report()}
