"""Issue 17 item 10: the admin's inventory forms refuse reserved VM names, 0 vCPUs, host
addresses that are options or shell text, SSH users that are not POSIX names and key
files outside the key directories, each on its field with the reason; rows already in
the database that break a rule are named by a system check (hosts.W010). The DR admin
reaches the inventory in the admin and changes a host there; the helpdesk does not."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.forms.models import model_to_dict
from django.test import RequestFactory
from django.urls import reverse

from hosts.checks import check_inventory_rows
from hosts.models import VM, Host

pytestmark = pytest.mark.django_db


def _admin_form(model, obj, user, **changes):
    request = RequestFactory().get("/")
    request.user = user
    form_class = admin.site._registry[model].get_form(request, obj)
    data = {k: v for k, v in model_to_dict(obj).items() if v is not None}
    data.update(changes)
    return form_class(data=data, instance=obj)


@pytest.mark.parametrize(
    "field,value,reason",
    [
        ("name", "Domain-0", "is reserved"),
        ("name", "domain-0", "is reserved"),
        ("name", "drill-proxy-xen01", "is reserved"),
        ("vcpus", "0", "greater than or equal to 1"),
        ("address", "-oProxyCommand=x", "not a host name or an IP address"),
        ("address", "127.0.3.5;id", "not a host name or an IP address"),
        ("drill_address", "10.0.0.1 && id", "not a host name or an IP address"),
        ("ssh_user", "root;id", "not a POSIX user name"),
    ],
)
def test_the_vm_admin_form_refuses_a_bad_value_on_its_field(reference_estate, users, field, value, reason):
    vm = VM.objects.get(name="proxy-xen01")
    form = _admin_form(VM, vm, users["dradmin"], **{field: value})
    assert not form.is_valid()
    assert any(reason in message for message in form.errors[field]), form.errors


@pytest.mark.parametrize(
    "field,value,reason",
    [
        ("address", "-oProxyCommand=x", "not a host name or an IP address"),
        ("address", "127.0.3.5;id", "not a host name or an IP address"),
        ("address", "$(reboot)", "not a host name or an IP address"),
        ("ssh_user", "root;id", "not a POSIX user name"),
        ("ssh_user", "Root", "not a POSIX user name"),
        ("ssh_key_path", "/etc/shadow", "outside the key directories"),
        ("ssh_key_path", "/run/secrets/../../etc/shadow", "outside the key directories"),
    ],
)
def test_the_host_admin_form_refuses_a_bad_value_on_its_field(reference_estate, users, field, value, reason):
    host = Host.objects.get(name="xenka01")
    form = _admin_form(Host, host, users["dradmin"], **{field: value})
    assert not form.is_valid()
    assert any(reason in message for message in form.errors[field]), form.errors


@pytest.mark.parametrize(
    "field,value",
    [
        ("address", "xenka01.example.org"),
        ("address", "127.0.3.5"),
        ("address", "fd00::5"),
        ("ssh_user", "drportal_ops"),
        ("ssh_key_path", "/run/secrets/drportal_ssh_key"),
    ],
)
def test_good_host_values_pass(reference_estate, users, field, value):
    host = Host.objects.get(name="xenka01")
    form = _admin_form(Host, host, users["dradmin"], **{field: value})
    form.is_valid()
    assert field not in form.errors


def test_the_key_directories_are_a_setting(reference_estate, users, settings, tmp_path):
    settings.DRPORTAL_SSH_KEY_DIR = [str(tmp_path)]
    host = Host.objects.get(name="xenka01")
    inside = _admin_form(Host, host, users["dradmin"], ssh_key_path=str(tmp_path / "id_xenka01"))
    inside.is_valid()
    assert "ssh_key_path" not in inside.errors
    outside = _admin_form(Host, host, users["dradmin"], ssh_key_path="/run/secrets/drportal_ssh_key")
    assert not outside.is_valid() and str(tmp_path) in outside.errors["ssh_key_path"][0]


def test_existing_bad_rows_are_named_by_a_system_check(reference_estate):
    assert check_inventory_rows(databases=["default"]) == []
    Host.objects.filter(name="xenka01").update(address="-oProxyCommand=x", ssh_key_path="/etc/shadow")
    VM.objects.filter(name="proxy-xen01").update(name="Domain-0", vcpus=0)
    found = check_inventory_rows(databases=["default"])
    assert {w.id for w in found} == {"hosts.W010"}
    text = "\n".join(w.msg for w in found)
    assert "'xenka01': address:" in text and "'xenka01': private key:" in text
    assert "'Domain-0': domain name:" in text and "'Domain-0': vCPUs:" in text
    assert check_inventory_rows(databases=None) == []  # only with the database (migrate, check --database)


def test_the_reference_estate_as_the_demo_loads_it_passes_every_rule(db):
    call_command("load_reference_estate")
    assert check_inventory_rows(databases=["default"]) == []


def test_the_dr_admin_changes_a_host_in_the_admin_and_the_helpdesk_is_kept_out(
    reference_estate, users, client
):
    host = Host.objects.get(name="xenka01")
    change = reverse("admin:hosts_host_change", args=[host.pk])
    client.force_login(users["helpdesk"])
    assert client.get(reverse("admin:index")).status_code == 302
    assert client.get(change).status_code == 302
    client.force_login(users["dradmin"])
    index = client.get(reverse("admin:index"))
    assert index.status_code == 200 and reverse("admin:hosts_host_changelist").encode() in index.content
    data = {k: v for k, v in model_to_dict(host).items() if v is not None}
    data.update(ram_mb=host.ram_mb + 1024, bridges='["' + '", "'.join(host.bridges) + '"]')
    response = client.post(change, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    host.refresh_from_db()
    assert host.ram_mb == data["ram_mb"]
    refused = client.post(change, {**data, "address": "127.0.3.5;id"})
    assert refused.status_code == 200 and "not a host name or an IP address" in refused.content.decode()


def test_without_the_setting_any_labs_client_key_is_accepted_but_not_with_it(
    reference_estate, users, settings
):
    host = Host.objects.get(name="xenka01")
    lab_key = "/tmp/some-lab/keys/id_drportal"
    accepted = _admin_form(Host, host, users["dradmin"], ssh_key_path=lab_key)
    accepted.is_valid()
    assert "ssh_key_path" not in accepted.errors
    settings.DRPORTAL_SSH_KEY_DIR = ["/run/secrets"]
    assert not _admin_form(Host, host, users["dradmin"], ssh_key_path=lab_key).is_valid()
