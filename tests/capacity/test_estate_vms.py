"""estate_vms: every VM with what the capacity model reads of it, each host, group, array and
site read once and shared by its VMs (the failover survey reads 5,000 VMs this way)."""

from __future__ import annotations

from hosts.models import VM
from hosts.selectors import CAPACITY_VM_RELATED, estate_vms, prefetched


def _seen(vm: VM) -> tuple:
    group = vm.dr_group
    return (
        vm.name,
        vm.home_host.name,
        vm.home_host.site.code,
        group.name if group else None,
        group.source_array.site.code if group else None,
        group.target_array.site.code if group and group.target_array else None,
        [nic.bridge for nic in vm.interfaces.all()],
    )


def test_estate_vms_answer_as_the_joined_read_when_every_vm_is_read(reference_estate):
    joined = VM.objects.select_related(*CAPACITY_VM_RELATED).prefetch_related("interfaces")
    assert [_seen(vm) for vm in estate_vms("interfaces")] == [_seen(vm) for vm in joined]


def test_estate_vms_share_one_instance_per_host_and_group_when_vms_share_them(reference_estate):
    rows = estate_vms()
    assert len({id(vm.home_host) for vm in rows}) == len({vm.home_host_id for vm in rows}) < len(rows)
    grouped = [vm for vm in rows if vm.dr_group_id is not None]
    assert len({id(vm.dr_group) for vm in grouped}) == len({vm.dr_group_id for vm in grouped})
    assert len({id(vm.home_host.site) for vm in rows}) == len({vm.home_host.site_id for vm in rows})


def test_estate_vms_read_the_estate_in_a_fixed_number_of_queries_when_asked_for_related_rows(
    reference_estate, django_assert_num_queries
):
    with django_assert_num_queries(5 + 2):  # sites, arrays, hosts, groups, VMs; one per prefetch
        rows = estate_vms("interfaces", "disks")
    with django_assert_num_queries(0):
        for vm in rows:
            _seen(vm)
            list(vm.disks.all())


def test_estate_vms_fall_back_to_the_joined_read_when_a_host_is_emptied_and_removed_mid_read(db):
    from django.db import connection

    from hosts.models import Host
    from tests.factories import HostFactory, VMFactory

    stays = HostFactory(name="xenka01")
    going = HostFactory(name="xenka09", site=stays.site)
    moved = VMFactory(name="app01", home_host=going)
    VMFactory(name="app02", home_host=stays)
    edited = []

    def edit_after_the_vm_read(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not edited and 'FROM "hosts_vm"' in sql:
            edited.append(sql)  # an admin moves app01 and removes its emptied host meanwhile
            VM.objects.filter(pk=moved.pk).update(home_host=stays)
            Host.objects.filter(pk=going.pk).delete()
        return result

    with connection.execute_wrapper(edit_after_the_vm_read):
        rows = estate_vms()

    assert edited
    assert [(vm.name, vm.home_host.name) for vm in rows] == [("app01", "xenka01"), ("app02", "xenka01")]


def test_prefetched_answers_what_all_answers_without_a_query_when_the_relation_is_prefetched(
    reference_estate, django_assert_num_queries
):
    rows = estate_vms("interfaces", "depends_on", "checks", "disks")
    with django_assert_num_queries(0):
        for name in ("interfaces", "depends_on", "checks", "disks"):
            assert all(list(prefetched(vm, name)) == list(getattr(vm, name).all()) for vm in rows)


def test_prefetched_reads_the_relation_when_it_is_not_prefetched(reference_estate, django_assert_num_queries):
    vm = VM.objects.order_by("name").first()
    expected = list(vm.interfaces.all())
    assert expected
    with django_assert_num_queries(1):
        assert list(prefetched(vm, "interfaces")) == expected


RELATIONS = ("interfaces", "depends_on", "checks", "disks")


def _related(vm: VM) -> list[list[int]]:
    return [[row.pk for row in prefetched(vm, name)] for name in RELATIONS]


def test_estate_vms_prefetch_the_rows_and_dependencies_prefetch_related_gives_in_its_order(
    reference_estate, django_assert_num_queries
):
    from hosts.models import VMInterface

    app = VM.objects.get(name="dns-xen01")
    bridge = app.interfaces.first().bridge
    # Out of insertion order: the model orders a VM's interfaces by index.
    for index, mac in ((7, "00:16:3e:7f:00:07"), (5, "00:16:3e:7f:00:05")):
        VMInterface.objects.create(
            vm=app, index=index, mac=mac, bridge=bridge, lan_role=app.interfaces.first().lan_role
        )
    first, second, *_, last = VM.objects.all()
    last.depends_on.add(second)
    last.depends_on.add(first)  # in the model's order, not the order they were added
    django = list(VM.objects.prefetch_related(*RELATIONS))
    with django_assert_num_queries(5 + len(RELATIONS)):
        rows = estate_vms(*RELATIONS)
    assert [vm.name for vm in rows] == [vm.name for vm in django]
    assert [_related(vm) for vm in rows] == [_related(vm) for vm in django]
    assert any(len(vm.depends_on.all()) > 1 for vm in rows) and any(
        len(vm.interfaces.all()) > 1 for vm in rows
    )
    by_name = {vm.name: vm for vm in rows}
    with django_assert_num_queries(0):
        for vm in rows:
            # A dependency is the estate's own instance; a row knows its VM without a query.
            assert all(dep is by_name[dep.name] for dep in vm.depends_on.all())
            assert all(
                row.vm is vm for name in ("interfaces", "checks", "disks") for row in prefetched(vm, name)
            )


def test_estate_vms_fall_back_to_the_joined_read_when_a_vm_added_mid_read_becomes_a_dependency(db):
    from django.db import connection

    from tests.factories import VMFactory

    web = VMFactory(name="web01")
    edited = []

    def add_after_the_vm_read(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not edited and 'FROM "hosts_vm"' in sql:
            edited.append(sql)  # an admin adds db01 and makes web01 depend on it meanwhile
            web.depends_on.add(VMFactory(name="db01", home_host=web.home_host))
        return result

    with connection.execute_wrapper(add_after_the_vm_read):
        rows = estate_vms("depends_on")

    assert edited
    assert [(vm.name, [dep.name for dep in prefetched(vm, "depends_on")]) for vm in rows] == [
        ("db01", []),
        ("web01", ["db01"]),
    ]


def test_estate_vms_keep_what_prefetch_related_reads_beside_the_lists(
    reference_estate, django_assert_num_queries
):
    expected = [sorted(a.pk for a in vm.allocations.all()) for vm in VM.objects.all()]
    assert any(expected)
    rows = estate_vms("interfaces", "allocations")  # allocations: prefetch_related's
    with django_assert_num_queries(0):
        assert [sorted(a.pk for a in prefetched(vm, "allocations")) for vm in rows] == expected
        assert all(list(prefetched(vm, "interfaces")) == list(vm.interfaces.all()) for vm in rows)


def test_estate_vms_of_an_empty_estate_read_no_related_rows(db, django_assert_num_queries):
    with django_assert_num_queries(5):  # sites, arrays, hosts, groups, VMs
        assert estate_vms("interfaces", "depends_on", "checks", "disks") == []
