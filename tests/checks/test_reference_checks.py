"""The reference estate's functional test plan (thesis tables 3.1, 3.2), loaded and run
against the lab."""

from __future__ import annotations

from failover.actions.checks import run_check
from hosts import reference
from hosts.models import VM, FunctionalCheck
from hosts.services import estate_load_reference

from .conftest import Lab, port_open, wait_until


def test_the_reference_gets_the_thesis_test_plans_for_lws_and_tomcat(estate: Lab) -> None:
    plan = {
        vm: set(FunctionalCheck.objects.filter(vm__name=vm).values_list("name", "kind"))
        for vm in ("lws-xen01", "tomcat-xen01")
    }
    assert {
        ("LWS reachable with SSL", "http"),
        ("Statusboard reachable", "http"),
        ("Incident mail: SMTP relay on port 25", "tcp"),
        ("rsync restart works", "ssh"),
        ("Samba password reset page", "http"),
        ("Subversion active", "ssh"),
    } <= plan["lws-xen01"]
    assert plan["tomcat-xen01"] == {
        ("Printer DB reachable", "http"),
        ("Notes IDs by wget from the branches", "http"),
        ("Notes ID transfer via Samba mapping", "tcp"),
    }
    assert set(FunctionalCheck.objects.values_list("vm__name", flat=True)) == {
        v["name"] for v in reference.VMS
    }
    for check in FunctionalCheck.objects.all():
        check.full_clean()


def test_vms_get_their_service_address_and_pinned_ssh_identity(estate: Lab, vm_addresses) -> None:
    for vm in VM.objects.all():
        assert vm.address == vm_addresses[vm.name]
        assert vm.ssh_port == estate.port
        assert vm.host_key_fingerprint.startswith("SHA256:")


def test_the_reference_addresses_are_127_0_3_x_by_default(db) -> None:
    estate_load_reference()
    assert sorted(VM.objects.values_list("address", flat=True)) == [f"127.0.3.{i}" for i in range(1, 7)]
    assert set(VM.objects.values_list("host_key_fingerprint", flat=True)) == {""}


def test_loading_twice_leaves_the_checks_and_vm_identities_unchanged(estate: Lab) -> None:
    before = list(FunctionalCheck.objects.order_by("pk").values())
    vms = list(VM.objects.order_by("pk").values())
    report = estate_load_reference(**estate.load_kwargs)
    assert (report.created, report.updated) == (0, 0)
    assert list(FunctionalCheck.objects.order_by("pk").values()) == before
    assert list(VM.objects.order_by("pk").values()) == vms


def test_a_check_added_by_hand_survives_a_reload(estate: Lab) -> None:
    FunctionalCheck.objects.create(vm=VM.objects.get(name="dns-xen01"), name="by hand", kind="tcp", port=53)
    estate_load_reference()
    assert FunctionalCheck.objects.filter(name="by hand").exists()


def test_every_reference_check_is_ok_against_the_running_lab(estate: Lab) -> None:
    verdicts = {
        (check.vm.name, check.name): run_check(check)
        for check in FunctionalCheck.objects.select_related("vm")
    }
    assert len(verdicts) == len(reference.CHECKS)
    failing = {key: v for key, v in verdicts.items() if v.outcome != "ok"}
    assert failing == {}
    assert {v.outcome for v in verdicts.values()} == {"ok"}


def test_the_printer_db_down_in_the_thesis_can_be_replayed_with_a_lab_fault(estate: Lab) -> None:
    estate.fault("tomcat-xen01", "service-down", "8081")
    check = FunctionalCheck.objects.get(name="Printer DB reachable")
    wait_until(lambda: not port_open(check.vm.address, 8081), what="8081 closed")
    verdict = run_check(check)
    assert verdict.outcome == "down"
    assert verdict.detail == f"http://{check.vm.address}:8081/dbprinters/: connection refused"


def test_a_lab_without_root_moves_only_privileged_ports_by_the_offset(monkeypatch) -> None:
    monkeypatch.setattr(reference, "SERVICE_PORT_OFFSET", 10000)
    checks = {c["name"]: c for c in reference.functional_checks()}
    assert checks["Statusboard reachable"]["url"] == "https://{address}:10443/statusboard/"
    assert checks["Printer DB reachable"]["url"] == "http://{address}:8081/dbprinters/"
    assert checks["Notes IDs by wget from the branches"]["url"] == "http://{address}:10080/notesids/"
    assert checks["Incident mail: SMTP relay on port 25"]["port"] == 10025
    served = reference.vm_services("lws-xen01")
    assert sorted(p["port"] for p in served["ports"]) == [3306, 3690, 10025, 10443, 10873]
    assert served["units"]["postfix"] == [10025]
