"""What keeps a command on the lab cheap at 5,000 VMs: the state store encodes only the
shards a transaction changed and appends them (a compaction still writes exactly what
json.dumps would), and the SSH server answers without Nagle's delay. The log itself:
test_lab_store_log.py."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from hosts.lab.seed import seed_synthetic
from hosts.lab.store import LabStore, _dumps

from .conftest import exec_on


def _on_disk(store: LabStore) -> str:
    return store.state_path.read_text(encoding="utf-8")


@pytest.mark.parametrize("compacting", [False, True], ids=["appended", "compacted"])
def test_a_commit_saves_exactly_the_json_of_the_whole_state_whatever_it_changed(
    tmp_path: Path, compacting: bool
) -> None:
    """Appended, another store reads the state back in the same order of keys; compacted
    (every commit here), the file is what json.dumps writes."""
    store = LabStore(tmp_path)
    seed_synthetic(store, hosts=3, vms=9)
    if compacting:
        store.compact_max_entries = 0
    reader = LabStore(tmp_path)  # catches up commit by commit (appended) or reloads (compacted)
    reader.snapshot()
    edits = [
        lambda s: s["hosts"]["synth001"]["domains"][1].update(memory_mb=128),  # inside one shard
        lambda s: s["groups"].pop("DRG-synth-vm0002"),  # a shard removed
        lambda s: s["faults"].update({"new-host": {"mode": "down"}}),  # a shard added
        lambda s: s["faults"].__setitem__(
            "synth001", {**s["faults"].pop("synth001"), "mode": "hang"}
        ),  # to the end
        lambda s: (
            s["groups"].pop("DRG-synth-vm0003") and s["groups"].setdefault("DRG-x", {})
        ),  # one for another
        lambda s: s["latency"].update(default_seconds=0.5),  # a small top-level key
        lambda s: s.update(extra={"a": [1, 2]}),  # a top-level key added
        lambda s: s.pop("extra"),  # and removed
        lambda s: s.update(hosts={**s["hosts"], "synth002": {"kind": "gone"}}),  # a shard replaced
    ]
    for edit in edits:
        with store.transaction() as state:
            edit(state)
            expected = json.loads(json.dumps(state))
        revision = store.read()["revision"]
        if compacting:
            assert _on_disk(store) == _dumps(expected, revision)
        else:
            assert _on_disk(store).count("\n") > 1  # the base and the entries
        # As another process sees it, in the same order (json.dumps of it: _dumps).
        assert _dumps(LabStore(tmp_path).read(), revision) == _dumps(expected, revision)
        assert _dumps(reader.snapshot(), revision) == _dumps(expected, revision)


def test_a_read_only_command_writes_nothing_and_a_write_is_shared_with_snapshot_readers(
    tmp_path: Path,
) -> None:
    store = LabStore(tmp_path)
    seed_synthetic(store, hosts=2, vms=4)
    with store.transaction() as state:
        assert state["hosts"]["synth001"]["kind"] == "dom0"
    before = _on_disk(store)
    with store.transaction() as state:
        _ = [group["sides"] for group in state["groups"].values()]
    assert _on_disk(store) == before
    with store.transaction() as state:
        state["faults"]["synth002"]["mode"] = "down"
    snapshot = store.snapshot()
    assert snapshot["faults"]["synth002"]["mode"] == "down"
    assert store.snapshot() is snapshot  # no re-read of the file this store just wrote
    with store.transaction() as state:  # the working copy is not the snapshot
        state["faults"]["synth002"]["mode"] = "up"
    assert snapshot["faults"]["synth002"]["mode"] == "down"
    assert store.snapshot()["faults"]["synth002"]["mode"] == "up"


def test_a_failed_transaction_leaves_the_next_one_the_saved_state(tmp_path: Path) -> None:
    store = LabStore(tmp_path)
    seed_synthetic(store, hosts=2, vms=4)
    try:
        with store.transaction() as state:
            state["hosts"]["synth001"]["domains"].clear()
            raise RuntimeError("a tool crashed")
    except RuntimeError:
        pass
    with store.transaction() as state:
        assert len(state["hosts"]["synth001"]["domains"]) == 3
        state["latency"]["default_seconds"] = 0.25
    assert (
        LabStore(tmp_path).read()["hosts"]["synth001"]["domains"]
        == store.snapshot()["hosts"]["synth001"]["domains"]
    )


def test_the_lab_ssh_server_sends_without_nagles_delay(lab) -> None:
    client = lab.connect("xenka01")
    try:
        assert exec_on(client, "xl list")[0] == 0
        (transport,) = lab.server._transports["xenka01"]
        assert transport.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        client.close()


def _store_with(tmp_path: Path, vms: int = 6) -> LabStore:
    store = LabStore(tmp_path)
    seed_synthetic(store, hosts=3, vms=vms)
    return store


def test_every_way_into_a_section_is_seen_and_written(tmp_path: Path) -> None:
    """Only the entries a transaction reached are compared; these are the ways a tool
    reaches one, and each change must land on disk exactly as the full comparison says."""
    store = _store_with(tmp_path)
    edits = [
        lambda s: s["hosts"]["synth001"]["domains"].append({"name": "x"}),  # by name
        lambda s: s["groups"].get("DRG-synth-vm0001")["sides"].clear(),  # get()
        lambda s: next(iter(s["hosts"].values()))["files"].clear(),  # values()
        lambda s: [g.update(lag_seconds=9.0) for _n, g in s["groups"].items()],  # items()
        lambda s: dict(s["faults"])["synth002"].update(mode="down"),  # a copy of the section
        lambda s: {**s["faults"]}["synth003"].update(mode="hang"),  # unpacked
        lambda s: s["faults"].setdefault("new-host", {}).update(mode="down"),  # added
        lambda s: s["groups"].pop("DRG-synth-vm0002"),  # removed
        lambda s: s["hosts"].__delitem__("synth003"),  # deleted
        lambda s: [s["faults"][name].update(slow_seconds=1.0) for name in s["faults"]],  # iterated by name
    ]
    for edit in edits:
        expected = store.read()  # plain dicts: the same edit, without any tracking
        edit(expected)
        with store.transaction() as state:
            edit(state)  # (json.dumps(state) in here would reach every entry itself)
        assert LabStore(tmp_path).read() == {**expected, "revision": expected["revision"] + 1}


def test_a_change_that_bypasses_the_tracking_is_caught_in_the_test_suite(tmp_path: Path, monkeypatch) -> None:
    """The suite runs every lab command with DRPORTAL_LAB_VERIFY_TRACKING=1, so a tool that
    reached an entry some way the tracking misses fails its test instead of losing a write."""
    monkeypatch.setenv("DRPORTAL_LAB_VERIFY_TRACKING", "1")
    store = _store_with(tmp_path)
    with pytest.raises(AssertionError, match="tracking missed a change"), store.transaction() as state:
        dict.__getitem__(state["hosts"], "synth001")["nr_cpus"] = 64  # behind the section's back
    assert LabStore(tmp_path).read()["hosts"]["synth001"]["nr_cpus"] == 8  # and nothing was written


def test_a_read_compares_only_what_it_reached(tmp_path: Path) -> None:
    store = _store_with(tmp_path, vms=30)
    with store.transaction() as state:
        assert state["hosts"]["synth001"]["kind"] == "dom0"
        assert state["hosts"].touched == {"synth001"} and not state["hosts"].everything
        assert not state["groups"].touched
    with store.transaction() as state:  # a new transaction starts untouched
        assert not state["hosts"].touched


def test_an_sssu_command_finds_a_vdisk_without_walking_every_group_and_sees_a_new_group(
    tmp_path: Path,
) -> None:
    """The arrays' vdisk index is derived once from the groups' layout (no command changes
    it), not by every SSSU command walking all groups (and making the store compare them);
    a commit that changes the layout (a group added) is seen by the next command."""
    from hosts.lab.seed import add_eva_group
    from hosts.lab.tools.eva_model import ArrayIndex, eva_arrays

    store = LabStore(tmp_path)
    seed_synthetic(store, hosts=2, vms=4)
    with store.transaction() as state:
        first = ArrayIndex(state, "eva-ka").vdisks
        assert state["groups"].everything is False  # no walk that the store must compare
    with store.transaction() as state:
        again = ArrayIndex(state, "eva-ka").vdisks
        assert state["groups"].touched == set()
    assert again == first and all(again[name] is first[name] for name in first)  # derived once
    with store.transaction() as state:
        add_eva_group(
            state,
            "DRG-new",
            devices=["/dev/vg_new/lvol1"],
            sides={"eva-ka": "primary", "eva-x": "secondary"},
            presented_to=[],
        )
    with store.transaction() as state:
        index = ArrayIndex(state, "eva-ka")
        assert any(v.group == "DRG-new" for v in index.vdisks.values())
        assert "eva-x" in set(eva_arrays(state))
    # Another process's store reads the same from disk.
    assert any(v.group == "DRG-new" for v in ArrayIndex(LabStore(tmp_path).read(), "eva-ka").vdisks.values())


def test_a_snapshot_of_a_revision_a_few_commits_old_is_shared_not_parsed_when_this_store_wrote_it(
    tmp_path: Path,
) -> None:
    # A reader that read an older revision from the file's last line, then waited while
    # commits went by (a loaded machine): here the older file put back stands for what
    # that reader saw.
    store = LabStore(tmp_path)
    seed_synthetic(store, hosts=2, vms=4)
    with store.transaction() as state:
        state["faults"]["synth002"]["mode"] = "down"
    older, older_text = store.snapshot(), _on_disk(store)
    for mode in ("up", "down", "up"):
        with store.transaction() as state:
            state["faults"]["synth002"]["mode"] = mode
        store.snapshot()  # other readers came by meanwhile
    store.state_path.write_text(older_text, encoding="utf-8")
    assert store.snapshot() is older
