"""The readiness check against the lab: the reference verdicts, each injected problem
flagged and cleared when fixed, and the DR groups' replication recorded."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from failover.readiness.models import ReadinessCheck, SiteVerdict
from hosts.lab.keys import fingerprints
from hosts.models import DRGroup, Host, VMAllocation

from .conftest import check, codes, latest, make_verdict, messages

pytestmark = pytest.mark.django_db(transaction=True)

DNS_CFG = "/etc/xen/vm/dns-xen01"


def test_the_reference_estate_is_ready_to_lose_wsl_but_losing_ka_loses_three_vms(ready):
    result = check()
    assert result.verdicts == {"KA": "not-ready", "WSL": "ready"}
    # Nobody drilled yet: worth a warning, not a reason to call WSL not ready.
    assert codes("WSL") == {"never-drilled"}
    # Seed digest: the VMs homed at KA have no replica at WSL; the check says so.
    ka = latest("KA")
    unrecoverable = ka.findings.filter(code="unrecoverable", severity="critical")
    assert set(unrecoverable.values_list("subject", flat=True)) == {"lws-xen01", "dasi-xen01", "tomcat-xen01"}
    assert "no replica at WSL" in messages("KA")
    assert codes("KA", "critical") == {"unrecoverable"}


def _lab_state(lab, change):
    with lab.store.transaction() as state:
        change(state)


def _remove_config(lab, estate):
    _lab_state(lab, lambda s: s["hosts"]["xenka01"]["files"].pop(DNS_CFG))


def _restore_config(lab, estate):
    text = lab.store.read()["hosts"]["xenwsl01"]["files"][DNS_CFG]
    _lab_state(lab, lambda s: s["hosts"]["xenka01"]["files"].__setitem__(DNS_CFG, text))


def _remove_bridge(lab, estate):
    _lab_state(lab, lambda s: s["hosts"]["xenka01"]["bridges"].remove("xenbr1"))


def _restore_bridge(lab, estate):
    _lab_state(lab, lambda s: s["hosts"]["xenka01"]["bridges"].append("xenbr1"))


def _replication(value: str):
    def change(lab, estate):
        _lab_state(lab, lambda s: s["groups"]["DRG-dns-xen01"].__setitem__("replication", value))

    return change


def _lag(seconds: float):
    def change(lab, estate):
        _lab_state(lab, lambda s: s["groups"]["DRG-proxy-xen01"].__setitem__("lag_seconds", seconds))

    return change


def _dr_memory(mb: int):
    def change(lab, estate):
        VMAllocation.objects.filter(profile__name="WSL lost", vm__name="dns-xen01").update(memory_mb=mb)

    return change


def _rekey(lab, estate):
    lab.fault("xenka01", "rekey")


def _repin(lab, estate):
    # The fix of a changed key is a person checking it and enrolling the host again.
    Host.objects.filter(name="xenka01").update(host_key_fingerprint=fingerprints(lab.lab_dir)["xenka01"])


def _fault(host: str, mode: str):
    def change(lab, estate):
        lab.fault(host, mode)
        time.sleep(0.3)  # the lab's supervisor closes or reopens the listener within 0.2 s

    return change


INJECTED = {
    # name: (inject, fix, the finding's code, a word its message must name)
    "config file removed on xenka01": (_remove_config, _restore_config, "config-missing", DNS_CFG),
    "bridge removed on xenka01": (_remove_bridge, _restore_bridge, "bridge-missing", "xenbr1"),
    "replication broken": (
        _replication("broken"),
        _replication("consistent"),
        "replication",
        "DRG-dns-xen01",
    ),
    "replication suspended": (
        _replication("suspended"),
        _replication("consistent"),
        "replication",
        "DRG-dns-xen01",
    ),
    "lag above the RPO": (_lag(3600.0), _lag(2.0), "rpo", "DRG-proxy-xen01"),
    "capacity exceeded": (_dr_memory(1024), _dr_memory(256), "capacity", "xenka01"),
    "host key of xenka01 changed": (_rekey, _repin, "host-key", "xenka01"),
    "xenka01 down": (_fault("xenka01", "down"), _fault("xenka01", "up"), "unreachable", "xenka01"),
    "eva-ka down": (_fault("eva-ka", "down"), _fault("eva-ka", "up"), "groups-unreadable", "eva-ka"),
}


def test_readiness_flags_each_injected_problem_and_clears_when_it_is_fixed(ready, lab):
    """One estate for all the problems in turn (each is fixed before the next), so the
    suite stays fast; a failure names the problem."""
    check()
    assert latest("WSL").ready, messages("WSL")
    for problem, (inject, fix, code, word) in INJECTED.items():
        inject(lab, ready)
        check()
        wsl = latest("WSL")
        assert not wsl.ready, f"{problem}: not flagged\n{messages('WSL')}"
        flagged = wsl.findings.filter(code=code, severity="critical").first()
        assert flagged is not None, f"{problem}: no critical {code}\n{messages('WSL')}"
        assert word in flagged.message and flagged.fix, f"{problem}: {flagged.message} → {flagged.fix}"

        fix(lab, ready)
        check()
        assert latest("WSL").ready, f"{problem}: not cleared after the fix\n{messages('WSL')}"
        assert code not in codes("WSL"), f"{problem}: {messages('WSL')}"


def test_a_dom0_that_cannot_be_used_is_critical_for_the_other_site_and_a_warning_for_its_own(ready, lab):
    _fault("xenka01", "down")(lab, ready)
    lab.fault("xenwsl01", "rekey")
    check()
    # WSL's VMs would start on xenka01, which is down.
    wsl_down = latest("WSL").findings.get(code="unreachable", subject="xenka01")
    assert wsl_down.severity == "critical"
    # KA's would need xenwsl01, whose key is not the pinned one: said as such.
    ka_key = latest("KA").findings.get(code="host-key", subject="xenwsl01")
    assert ka_key.severity == "critical" and "pinned" in ka_key.message
    assert not latest("KA").findings.filter(code="unreachable", subject="xenwsl01").exists()
    # Each for its own site: a warning (a site down may be the disaster itself).
    ka_down = latest("KA").findings.get(code="unreachable", subject="xenka01")
    assert ka_down.severity == "warning" and "declare" in ka_down.fix
    assert latest("WSL").findings.get(code="host-key", subject="xenwsl01").severity == "warning"


def test_it_records_each_groups_replication_and_keeps_the_last_known_when_the_array_is_silent(ready, lab):
    check()
    replicated = DRGroup.objects.filter(target_array__isnull=False)
    assert replicated.count() == 3
    for group in replicated:
        assert (group.replication_state, group.replication_lag_s) == ("consistent", 2.0)
        assert group.state_checked_at is not None
    assert set(
        DRGroup.objects.filter(target_array__isnull=True).values_list("replication_state", flat=True)
    ) == {"none"}

    _replication("syncing")(lab, ready)
    check()
    assert DRGroup.objects.get(name="DRG-dns-xen01").replication_state == "syncing"
    assert latest("WSL").ready  # still copying: a warning
    assert "replication" in codes("WSL", "warning")

    before = DRGroup.objects.get(name="DRG-dns-xen01").state_checked_at
    _fault("eva-ka", "down")(lab, ready)
    check()
    group = DRGroup.objects.get(name="DRG-dns-xen01")
    assert (group.replication_state, group.state_checked_at) == ("syncing", before)


def test_every_pass_is_recorded_and_old_passes_without_a_change_are_pruned(ready, settings):
    old = timezone.now() - dt.timedelta(days=settings.DRPORTAL_READINESS_KEEP_DAYS + 1)
    kept = make_verdict("WSL", "not-ready", at=old, changed=True).readiness_check_id
    pruned = make_verdict("WSL", "not-ready", at=old + dt.timedelta(minutes=5)).readiness_check_id
    check()
    check()
    assert ReadinessCheck.objects.filter(pk=pruned).count() == 0
    assert ReadinessCheck.objects.filter(pk=kept).count() == 1
    assert ReadinessCheck.objects.count() == 3
    new = SiteVerdict.objects.filter(checked_at__gt=old + dt.timedelta(days=1))
    assert new.count() == 4  # two passes, a verdict per site each
    # WSL recovered since the kept verdict, KA is checked for the first time: two changes;
    # the second pass repeated both.
    assert sorted(new.filter(changed=True).values_list("site__code", flat=True)) == ["KA", "WSL"]


def _array_sessions(lab, array: str, since: int) -> list[str]:
    from hosts.lab.journal import read_journal

    return [e["command"] for e in read_journal(lab.lab_dir, since) if e["host"] == array]


def _last_seq(lab) -> int:
    from hosts.lab.journal import read_journal

    return max((e["seq"] for e in read_journal(lab.lab_dir, 0)), default=0)


def test_a_pass_reads_all_the_groups_of_an_eva_in_one_session_and_a_group_it_lacks_is_that_groups_error(
    ready, lab
):
    replicated = list(DRGroup.objects.filter(target_array__isnull=False).select_related("target_array"))
    array = replicated[0].target_array.name
    on_array = [g for g in replicated if g.target_array.name == array]
    assert len(on_array) >= 2 and replicated[0].target_array.kind.startswith("eva")

    since = _last_seq(lab)
    check()
    sessions = _array_sessions(lab, array, since)
    assert len(sessions) == 1 and "LS DR_GROUP FULL" in sessions[0], sessions
    assert all(
        g.state_checked_at is not None for g in DRGroup.objects.filter(pk__in=[g.pk for g in on_array])
    )

    model = on_array[0]
    DRGroup.objects.create(name="DRG-ghost", source_array=model.source_array, target_array=model.target_array)
    since = _last_seq(lab)
    check()
    # The bulk answer, then the ghost asked on its own (and the list that says it is not there).
    assert len(_array_sessions(lab, array, since)) <= 3
    ghost = latest("WSL").findings.get(code="replication", subject="DRG-ghost")
    assert ghost.severity == "critical" and "not found" in ghost.message, ghost.message
    assert (
        not latest("WSL").findings.filter(code="replication", subject__in=[g.name for g in on_array]).exists()
    )
