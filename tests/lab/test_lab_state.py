"""The lab state: the seeded reference estate, transactions, the journal, synthetic hosts."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from hosts import reference
from hosts.lab.journal import read_journal
from hosts.lab.seed import reference_state, reset, seed_synthetic
from hosts.lab.store import LabStore, StateWatch
from hosts.lab.tools.base import visible_devices
from hosts.lab.tools.eva_model import ArrayIndex, eva_arrays, presented_hosts


def _domains(state: dict, host: str) -> dict[str, int]:
    return {d["name"]: d["memory_mb"] for d in state["hosts"][host]["domains"]}


def test_the_reference_estate_runs_the_thesis_memory_profile() -> None:
    state = reference_state()
    assert _domains(state, "xenwsl01") == {
        "Domain-0": 256,
        "dns-xen01": 512,
        "proxy-xen01": 1792,
        "rsync-xen01": 1024,
    }
    assert _domains(state, "xenka01") == {
        "Domain-0": 256,
        "lws-xen01": 512,
        "tomcat-xen01": 768,
        "dasi-xen01": 2048,
    }
    for host in ("xenwsl01", "xenka01"):
        info = state["hosts"][host]
        assert info["domains"][0]["name"] == "Domain-0"
        assert [d["domid"] for d in info["domains"]] == [0, 1, 2, 3] and info["next_domid"] == 4
        assert (info["total_memory_mb"], info["nr_cpus"], info["xen_version"]) == (4096, 4, "4.17.3")
        assert info["bridges"] == ["xenbr0", "xenbr1", "xenbr-drill"] and info["toolstack"] == "xl"
        assert sum(_domains(state, host).values()) == 3584


def test_every_dom0_has_every_vm_config_so_any_vm_can_start_anywhere() -> None:
    state = reference_state()
    for host in ("xenwsl01", "xenka01"):
        files = state["hosts"][host]["files"]
        assert set(files) == {f"/etc/xen/vm/{vm['name']}" for vm in reference.VMS}
    cfg = state["hosts"]["xenka01"]["files"]["/etc/xen/vm/proxy-xen01"]
    assert 'name = "proxy-xen01"' in cfg and "memory = 1792" in cfg and "maxmem = 1792" in cfg
    assert "vif = [ 'mac=00:16:3e:10:04:01,bridge=xenbr0', 'mac=00:16:3e:11:04:01,bridge=xenbr1' ]" in cfg
    assert "disk = [ 'phy:/dev/vg_proxy01/lvol1,xvda1,w' ]" in cfg


def test_groups_replicate_wsl_to_ka_and_leave_ka_vms_unreplicated() -> None:
    state = reference_state()
    proxy = state["groups"]["DRG-proxy-xen01"]
    assert {array: (side["role"], side["disk_state"]) for array, side in proxy["sides"].items()} == {
        "eva-wsl": ("primary", "UpToDate"),
        "eva-ka": ("secondary", "UpToDate"),
    }
    # One virtual disk per device on each array, same name, each array's own WWID.
    names = {array: [v["name"] for v in side["vdisks"]] for array, side in proxy["sides"].items()}
    assert names == {"eva-wsl": ["DRG-proxy-xen01-1"], "eva-ka": ["DRG-proxy-xen01-1"]}
    assert proxy["sides"]["eva-wsl"]["vdisks"][0]["wwid"] != proxy["sides"]["eva-ka"]["vdisks"][0]["wwid"]
    assert (proxy["replication"], proxy["lag_seconds"], proxy["kind"]) == ("consistent", 2.0, "eva-ca")
    assert presented_hosts(state, "DRG-proxy-xen01", "eva-wsl") == ["xenwsl01"]
    assert presented_hosts(state, "DRG-proxy-xen01", "eva-ka") == []
    assert "DRG-proxy-xen01-1" in state["hosts"]["eva-wsl"]["luns"]["xenwsl01"].values()
    lws = state["groups"]["DRG-lws-xen01"]
    assert list(lws["sides"]) == ["eva-ka"] and presented_hosts(state, "DRG-lws-xen01", "eva-ka") == [
        "xenka01"
    ]
    assert (lws["replication"], lws["lag_seconds"]) == ("none", None)
    assert "/dev/vg_proxy01/lvol1" in visible_devices(state, "xenwsl01")
    assert "/dev/vg_proxy01/lvol1" not in visible_devices(state, "xenka01")
    assert (
        state["hosts"]["eva-ka"]["system"] == "EVA-KA" and state["hosts"]["eva-wsl"]["array_kind"] == "eva-ca"
    )
    assert all(
        f == {"mode": "up", "slow_seconds": 0.0, "fail_next": None, "key_generation": 0}
        for f in state["faults"].values()
    )
    assert state["latency"] == {"default_seconds": 0.0, "per_command": {}}


def test_a_transaction_saves_on_success_and_discards_on_error(tmp_path: Path) -> None:
    store = LabStore(tmp_path)
    start = store.read()["revision"]
    with store.transaction():
        pass
    assert store.read()["revision"] == start  # nothing changed, nothing written
    with store.transaction() as state:
        state["faults"]["xenka01"]["mode"] = "down"
    assert store.read()["faults"]["xenka01"]["mode"] == "down"
    assert store.snapshot()["revision"] == start + 1
    with pytest.raises(RuntimeError), store.transaction() as state:
        state["faults"]["xenka01"]["mode"] = "hang"
        raise RuntimeError("boom")
    assert store.snapshot()["faults"]["xenka01"]["mode"] == "down"
    with store.transaction() as state:
        assert state["faults"]["xenka01"]["mode"] == "down"
    other = LabStore(tmp_path)  # another process, as far as the cache can tell
    with other.transaction() as state:
        state["faults"]["xenka01"]["slow_seconds"] = 3.0
    with store.transaction() as state:
        assert state["faults"]["xenka01"]["slow_seconds"] == 3.0
    reset(store)
    assert store.snapshot()["faults"]["xenka01"]["mode"] == "up"


def _hammer(lab_dir: str) -> None:
    store = LabStore(lab_dir)
    for _ in range(25):
        with store.locked(), store.transaction() as state:
            state["latency"]["default_seconds"] += 1
            store.journal.append(host="x", command="inc", exit_status=0, seconds=0.0)


def test_processes_never_lose_an_update_or_share_a_journal_seq(tmp_path: Path) -> None:
    LabStore(tmp_path).read()
    # spawn, not fork: a fork copies the locks other threads of this test session hold
    # (a lab server, a log handler), and a child that needs one of them waits forever.
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_hammer, args=(str(tmp_path),)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert LabStore(tmp_path).read()["latency"]["default_seconds"] == 100
    assert [entry["seq"] for entry in read_journal(tmp_path)] == list(range(1, 101))
    assert [entry["seq"] for entry in read_journal(tmp_path, since_seq=95)] == [96, 97, 98, 99, 100]


def test_synthetic_hosts_get_unique_addresses_and_fitting_vms(tmp_path: Path) -> None:
    store = LabStore(tmp_path)
    names = seed_synthetic(store, hosts=50, vms=500)
    state = store.read()
    assert len(names) == 50 and {"xenka01", "eva-ka"} <= set(state["hosts"])
    addresses = [info["address"] for info in state["hosts"].values()]
    assert len(addresses) == len(set(addresses))
    for name in names:
        info = state["hosts"][name]
        assert len(info["domains"]) == 11
        assert sum(d["memory_mb"] for d in info["domains"]) <= info["total_memory_mb"]
        assert set(info["files"]) == {d["config_path"] for d in info["domains"][1:]}
        assert {d["disks"][0]["target"] for d in info["domains"][1:]} <= visible_devices(state, name)
    assert len(state["groups"]) == 6 + 500


def test_a_state_watch_wakes_when_another_process_writes_the_state_and_when_told_to(tmp_path: Path) -> None:
    store = LabStore(tmp_path)
    store.replace(reference_state())
    watch = StateWatch(store.state_path)
    try:
        assert watch.event_driven  # inotify: the lab's supervisor sleeps until a write
        store.journal.append(host="xenwsl01", command="true", exit_status=0, seconds=0.0)
        assert watch.wait(0.3) is False  # another file of the lab directory is no change
        writer = multiprocessing.get_context("spawn").Process(target=_bump_revision, args=(str(tmp_path),))
        writer.start()
        assert watch.wait(30) is True
        writer.join(30)
        watch.wake()
        assert watch.wait(30) is False
    finally:
        watch.close()


def _bump_revision(lab_dir: str) -> None:
    with LabStore(lab_dir).transaction() as state:
        state["latency"]["default_seconds"] = 0.5


def test_an_array_index_finds_a_vdisks_presentations_as_its_full_lun_index_does(tmp_path: Path) -> None:
    store = LabStore(tmp_path)
    store.replace(reference_state())
    with store.transaction() as state:
        for array in eva_arrays(state):
            lookup, full = ArrayIndex(state, array), ArrayIndex(state, array)
            assert full.presented, array
            for name in full.vdisks:
                assert lookup.presentations(name) == full.presented.get(name, [])
