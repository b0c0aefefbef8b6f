"""The lab serves a VM's services while its domain runs, and only then."""

from __future__ import annotations

from failover.actions.checks import run_check
from hosts.connect import ssh_target
from hosts.drivers.ssh import SSHConnection
from hosts.models import VM, FunctionalCheck, Host

from .conftest import Lab, port_open, wait_until


def on_dom0(host: str, *argv: str) -> None:
    with SSHConnection(ssh_target(Host.objects.get(name=host))) as conn:
        result = conn.run(list(argv))
    assert result.exit_status == 0, result.stderr


def verdicts(vm: str) -> dict[str, str]:
    return {
        c.name: run_check(c).outcome for c in FunctionalCheck.objects.filter(vm__name=vm).select_related("vm")
    }


def test_destroying_a_domain_closes_its_listeners_and_its_checks_go_down(lab_vms: Lab) -> None:
    lws = VM.objects.get(name="lws-xen01")
    assert set(verdicts("lws-xen01").values()) == {"ok"}
    on_dom0("xenka01", "xl", "destroy", "lws-xen01")
    lab_vms.wait_serving("lws-xen01", False)
    after = {c.name: run_check(c) for c in FunctionalCheck.objects.filter(vm=lws).select_related("vm")}
    assert {v.outcome for v in after.values()} == {"down"}
    assert after["Statusboard reachable"].detail == f"https://{lws.address}/statusboard/: connection refused"
    assert after["Incident mail: SMTP relay on port 25"].detail == f"tcp {lws.address}:25: connection refused"
    assert "cannot connect to lws-xen01" in after["Subversion active"].detail
    assert set(verdicts("tomcat-xen01").values()) == {"ok"}  # its neighbours go on

    on_dom0("xenka01", "xl", "create", "/etc/xen/vm/lws-xen01")
    lab_vms.wait_serving("lws-xen01")
    assert set(verdicts("lws-xen01").values()) == {"ok"}


def test_a_dom0_that_goes_down_takes_its_vms_services_with_it(lab_vms: Lab) -> None:
    lab_vms.fault("xenwsl01", "down")
    for vm in ("dns-xen01", "proxy-xen01", "rsync-xen01"):
        lab_vms.wait_serving(vm, False)
    assert set(verdicts("dns-xen01").values()) == {"down"}
    assert set(verdicts("lws-xen01").values()) == {"ok"}  # at the other site


def test_a_vm_answers_on_its_address_from_whichever_dom0_runs_it(lab_vms: Lab) -> None:
    lab_vms.fault("xenwsl01", "down")
    lab_vms.wait_serving("proxy-xen01", False)
    with lab_vms.store.transaction() as state:  # what the failover does, in one step
        domains = state["hosts"]["xenwsl01"]["domains"]
        moved = next(d for d in domains if d["name"] == "proxy-xen01")
        domains.remove(moved)
        state["hosts"]["xenka01"]["domains"].append({**moved, "domid": 99, "memory_mb": 512})
    lab_vms.wait_serving("proxy-xen01")
    assert set(verdicts("proxy-xen01").values()) == {"ok"}


def test_service_down_closes_one_port_and_fails_its_unit_and_service_up_restores_it(lab_vms: Lab) -> None:
    lws = VM.objects.get(name="lws-xen01")
    assert lab_vms.fault("lws-xen01", "service-down", "873").startswith("lws-xen01")
    wait_until(lambda: not port_open(lws.address, 873), what="rsync to close")
    now = verdicts("lws-xen01")
    assert now["rsync restart works"] == "down"
    assert {name for name, outcome in now.items() if outcome != "ok"} == {"rsync restart works"}
    check = FunctionalCheck.objects.get(name="rsync restart works")
    assert "exited 1, expected 0 ('Job for rsync.service failed" in run_check(check).detail

    lab_vms.fault("lws-xen01", "service-up", "873")
    lab_vms.wait_serving("lws-xen01")
    assert set(verdicts("lws-xen01").values()) == {"ok"}


def test_service_down_all_takes_every_port_and_ssh_and_service_up_brings_all_back(lab_vms: Lab) -> None:
    lab_vms.fault("tomcat-xen01", "service-down", "all")
    lab_vms.wait_serving("tomcat-xen01", False)
    assert set(verdicts("tomcat-xen01").values()) == {"down"}
    lab_vms.fault("tomcat-xen01", "service-up")
    lab_vms.wait_serving("tomcat-xen01")
    assert set(verdicts("tomcat-xen01").values()) == {"ok"}


def test_a_live_ssh_session_to_a_vm_is_cut_when_the_vm_stops(lab_vms: Lab) -> None:
    from failover.actions.checks import vm_ssh_target

    lws = VM.objects.get(name="lws-xen01")
    conn = SSHConnection(vm_ssh_target(lws, timeout=3.0))
    conn.connect()
    try:
        assert conn.run(["hostname"]).stdout == "lws-xen01\n"
        lab_vms.fault("lws-xen01", "service-down", "ssh")
        wait_until(lambda: not conn.is_connected, what="the session to be cut")
    finally:
        conn.close()
