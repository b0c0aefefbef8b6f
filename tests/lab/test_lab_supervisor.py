"""The lab's supervisor reads again only the hosts a commit changed: the store's revisions
share the entries a commit left alone, so a pass over 5,000 unchanged domains is a lookup."""

from __future__ import annotations


def test_a_supervisor_pass_reuses_what_it_took_from_unchanged_hosts_and_sees_a_changed_one(lab):
    server = lab.server
    assert server is not None
    store = server.store  # its own revisions (another store's are other objects)
    first = server._supervision_inputs(store.snapshot())
    host = next(name for name, info in store.snapshot()["hosts"].items() if info.get("domains"))

    with store.transaction() as state:  # a change elsewhere: every host entry stays as it was
        state["faults"]["nobody"] = {"mode": "up"}
    again = server._supervision_inputs(store.snapshot())
    assert again[2] == first[2] and all(a is b for a, b in zip(again[2], first[2], strict=True))

    with store.transaction() as state:
        state["hosts"][host]["domains"][-1]["state"] = "paused"
    changed = server._supervision_inputs(store.snapshot())
    mine = next(entry for entry in changed[2] if entry[0] == host)
    assert mine != next(entry for entry in first[2] if entry[0] == host)
    assert all(a is b for a, b in zip(changed[2], first[2], strict=True) if a[0] != host)
