"""The lab state file as a log (hosts/lab/store.py): line 1 the whole state at a base
revision, one appended line per commit with only what it changed; other stores catch up
from the lines they have not seen; a torn or bad-crc last line is ignored, then cut off;
compaction writes the whole state again when the lines outweigh the base."""

from __future__ import annotations

import json
import multiprocessing
import zlib
from pathlib import Path

import pytest

import hosts.lab.store as store_module
from hosts.lab.seed import seed_synthetic
from hosts.lab.store import LabStore, _dumps


def _lines(store: LabStore) -> list[bytes]:
    return store.state_path.read_bytes().splitlines(keepends=True)


def _entry(line: bytes) -> tuple[list, int]:
    """An appended line: its steps and revision, after checking its crc."""
    body, crc = line.rstrip(b"\n").rsplit(b"\t", 1)
    assert int(crc, 16) == zlib.crc32(body)
    steps, revision = body.rsplit(b"\t", 1)
    return json.loads(steps), int(revision)


def _seeded(tmp_path: Path, vms: int = 6) -> LabStore:
    store = LabStore(tmp_path)
    seed_synthetic(store, hosts=3, vms=vms)
    store.replace(store.read())  # the base alone
    return store


def _no_reparse(monkeypatch) -> None:
    """From here on, reading the base (the whole file) fails the test."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("the whole state file was parsed again")

    monkeypatch.setattr(store_module._Image, "parse", refuse)
    monkeypatch.setattr(store_module, "_state_of", refuse)


def test_a_commit_appends_one_line_with_only_what_it_changed_its_revision_and_crc(tmp_path: Path) -> None:
    store = _seeded(tmp_path)
    base = _lines(store)
    (header,) = base
    revision = json.loads(header)["revision"]
    with store.transaction() as state:
        state["faults"]["synth002"]["mode"] = "down"
        state["latency"]["default_seconds"] = 0.5
    with store.transaction() as state:
        del state["groups"]["DRG-synth-vm0002"]
    first, second, third = _lines(store)
    assert first == header  # `head -1 state.json` is still the base, plain JSON
    steps, number = _entry(second)
    assert number == revision + 1
    assert sorted(steps, key=json.dumps) == sorted(
        [[["faults", "synth002"], {**store.read()["faults"]["synth002"]}], [["latency"], state["latency"]]],
        key=json.dumps,
    )
    assert _entry(third) == ([[["groups", "DRG-synth-vm0002"]]], revision + 2)  # a removal: the path alone
    assert store.read()["revision"] == revision + 2 and "DRG-synth-vm0002" not in store.read()["groups"]


def test_another_store_sees_a_commit_from_the_appended_line_without_reading_the_base_again(
    tmp_path: Path, monkeypatch
) -> None:
    writer = _seeded(tmp_path)
    reader = LabStore(tmp_path)
    with reader.transaction() as state:
        assert state["faults"]["synth002"]["mode"] == "up"
    reader.snapshot()
    writer.snapshot()  # both have read the file once
    _no_reparse(monkeypatch)
    with writer.transaction() as state:
        state["faults"]["synth002"]["mode"] = "down"
        state["hosts"]["synth001"]["domains"].pop()
    assert reader.snapshot()["faults"]["synth002"]["mode"] == "down"
    with reader.transaction() as state:
        assert state["faults"]["synth002"]["mode"] == "down"
        assert state["hosts"]["synth001"]["domains"] == writer.snapshot()["hosts"]["synth001"]["domains"]
        state["faults"]["synth003"]["mode"] = "hang"  # and writes after it
    with writer.transaction() as state:
        assert state["faults"]["synth003"]["mode"] == "hang"
    monkeypatch.undo()
    assert json.dumps(reader.snapshot()) == json.dumps(LabStore(tmp_path).read())


def test_a_torn_last_line_is_ignored_by_readers_and_cut_off_by_the_next_writer(tmp_path: Path) -> None:
    store = _seeded(tmp_path)
    reader = LabStore(tmp_path)
    with store.transaction() as state:
        state["faults"]["synth002"]["mode"] = "down"
    before = store.read()
    reader.snapshot()
    with open(store.state_path, "ab") as handle:  # a writer killed mid-append
        handle.write(b'[[["faults","synth002"],{"mode":"ha')
    assert LabStore(tmp_path).read() == before
    assert reader.snapshot() == before and store.snapshot() == before
    with reader.transaction() as state:  # a read-only one leaves the file alone
        assert state == before
    assert _lines(store)[-1].endswith(b'"ha')
    with reader.transaction() as state:
        state["faults"]["synth002"]["mode"] = "hang"
    lines = _lines(store)
    assert all(line.endswith(b"\n") for line in lines)
    assert [_entry(line)[1] for line in lines[1:]] == [before["revision"], before["revision"] + 1]
    assert LabStore(tmp_path).read()["faults"]["synth002"]["mode"] == "hang"
    with store.transaction() as state:
        assert state["faults"]["synth002"]["mode"] == "hang"


def test_a_last_line_with_a_bad_crc_is_ignored_and_replaced_by_the_next_commit(tmp_path: Path) -> None:
    store = _seeded(tmp_path)
    with store.transaction() as state:
        state["faults"]["synth002"]["mode"] = "down"
    before = store.read()
    good = _lines(store)[-1]
    # The same line one revision on, its value changed and its crc not: damage, not a commit.
    forged = good.replace(b'"down"', b'"hang"').replace(
        b"\t%d\t" % before["revision"], b"\t%d\t" % (before["revision"] + 1)
    )
    with open(store.state_path, "ab") as handle:
        handle.write(forged)
    assert LabStore(tmp_path).read() == before
    assert store.snapshot() == before
    other = LabStore(tmp_path)
    with other.transaction() as state:
        assert state["faults"]["synth002"]["mode"] == "down"
        state["faults"]["synth003"]["mode"] = "down"
    assert forged not in _lines(store)
    assert _entry(_lines(store)[-1])[1] == before["revision"] + 1
    assert store.snapshot()["faults"]["synth002"]["mode"] == "down"


def test_compaction_comes_after_the_entry_limit_and_keeps_the_state_equal(tmp_path: Path) -> None:
    store = _seeded(tmp_path)
    store.compact_max_entries = 3
    reader = LabStore(tmp_path)
    reader.snapshot()
    for step in range(3):
        with store.transaction() as state:
            state["latency"]["default_seconds"] = float(step + 1)
        assert len(_lines(store)) == 2 + step
    expected = store.read()
    with store.transaction() as state:
        state["latency"]["default_seconds"] = 9.0
    (only,) = _lines(store)  # the fourth entry would exceed the limit: a new base instead
    assert only == _dumps({**expected, "latency": state["latency"]}, expected["revision"] + 1).encode()
    assert reader.snapshot() == store.read() == LabStore(tmp_path).read()  # the reader loads the new file
    with reader.transaction() as state:
        state["latency"]["default_seconds"] = 10.0
    assert len(_lines(store)) == 2
    with store.transaction() as state:
        assert state["latency"]["default_seconds"] == 10.0


def test_compaction_comes_when_the_entries_reach_the_minimum_and_outweigh_the_base(tmp_path: Path) -> None:
    store = LabStore(tmp_path)
    store.compact_min_bytes = 4096
    store.replace({"x": 0})
    base = len(_lines(store)[0])
    with store.transaction() as state:
        state["x"] = "a" * 2000  # far heavier than the base, but below the minimum
    assert len(_lines(store)) == 2
    with store.transaction() as state:
        state["x"] = "b" * 2200  # 4 kB appended: a new base
    assert _lines(store) == [_dumps({"x": "b" * 2200}, 3).encode()]

    big = _seeded(tmp_path / "big", vms=20)
    big.compact_min_bytes = 4096
    base = len(_lines(big)[0])
    assert base > 3 * 4096
    for step in range(3):
        with big.transaction() as state:
            state["extra"] = str(step) * 2000  # above the minimum, lighter than the base
    assert len(_lines(big)) == 4
    with big.transaction() as state:
        state["extra"] = "z" * (base - 5000)  # now heavier than the base
    assert len(_lines(big)) == 1
    assert LabStore(tmp_path / "big").read() == big.read() and big.read()["extra"] == "z" * (base - 5000)


def _alternate(lab_dir: str, parity: int, rounds: int, compact_max_entries: int) -> None:
    """Commit whenever the counter's parity is ours, until ``rounds`` commits: each commit
    needs the other process's last one. After each, this store's state is the file's."""
    store = LabStore(lab_dir)
    store.compact_max_entries = compact_max_entries
    done = 0
    while done < rounds:
        with store.transaction() as state:
            counter = state["latency"]["per_command"].get("counter", 0)
            if counter % 2 != parity:
                continue
            state["latency"]["per_command"]["counter"] = counter + 1
            state["faults"].setdefault(f"p{parity}", {})[str(counter)] = parity
        done += 1
        with store.locked():
            assert json.dumps(store.snapshot()) == json.dumps(LabStore(lab_dir).read())


def test_two_processes_writing_alternately_agree_through_appends_and_compactions(tmp_path: Path) -> None:
    _seeded(tmp_path)
    context = multiprocessing.get_context("spawn")  # see test_lab_state.py: no fork
    workers = [
        context.Process(target=_alternate, args=(str(tmp_path), parity, 15, limit))
        for parity, limit in ((0, 1000), (1, 4))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    state = LabStore(tmp_path).read()
    assert state["latency"]["per_command"]["counter"] == 30
    assert state["faults"]["p0"] == {str(n): 0 for n in range(0, 30, 2)}
    assert state["faults"]["p1"] == {str(n): 1 for n in range(1, 30, 2)}
    assert len(_lines(LabStore(tmp_path))) <= 5  # the second one compacted


def test_a_read_only_transaction_and_an_unchanged_snapshot_read_nothing_and_write_nothing(
    tmp_path: Path, monkeypatch
) -> None:
    store = _seeded(tmp_path)
    with store.transaction() as state:
        state["faults"]["synth002"]["mode"] = "down"
    store.snapshot()
    stat = store.state_path.stat()
    content = store.state_path.read_bytes()

    def refuse(*_args, **_kwargs):
        raise AssertionError("read the state file's entries")

    monkeypatch.setattr(store_module, "_pread_all", refuse)
    _no_reparse(monkeypatch)
    for _ in range(3):
        with store.transaction() as state:
            assert state["faults"]["synth002"]["mode"] == "down"
            _ = [group["sides"] for group in state["groups"].values()]
        assert store.snapshot()["faults"]["synth002"]["mode"] == "down"
    after = store.state_path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    assert store.state_path.read_bytes() == content


def test_a_plain_json_state_file_is_a_base_without_entries(tmp_path: Path) -> None:
    """A lab directory from before the log: its state.json is one JSON document."""
    (tmp_path / "state.json").write_text(json.dumps({"revision": 7, "latency": {"default_seconds": 0.0}}))
    store = LabStore(tmp_path)
    assert store.snapshot() == {"revision": 7, "latency": {"default_seconds": 0.0}}
    with store.transaction() as state:
        state["latency"]["default_seconds"] = 1.0
    assert LabStore(tmp_path).read() == {"revision": 8, "latency": {"default_seconds": 1.0}}


@pytest.mark.parametrize("damage", [b"", b"garbage\n"], ids=["empty-tail", "foreign-line"])
def test_a_store_reads_the_whole_file_again_after_an_in_place_rewrite(tmp_path: Path, damage: bytes) -> None:
    """Same inode, other first bytes: not the file this store knows."""
    store = _seeded(tmp_path)
    with store.transaction() as state:
        state["faults"]["synth002"]["mode"] = "down"
    store.snapshot()
    with open(store.state_path, "r+b") as handle:
        handle.truncate(0)
        handle.write(_dumps({"latency": {"default_seconds": 2.0}, "padding": "p" * 200_000}, 50).encode())
        handle.write(damage)
    with store.transaction() as state:
        assert state["latency"] == {"default_seconds": 2.0} and "hosts" not in state
