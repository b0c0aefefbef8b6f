"""Property: no sequence of storage commands and host faults ever leaves a DR group with
two reachable primaries (nor, in the lab's stronger form, two stored primaries)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.lab.storage_states import (
    DRBD_DEVICE,
    DRBD_GROUP,
    EVA_DEVICE,
    EVA_GROUP,
    LOCAL_GROUP,
    login,
    make_state,
    reachable_primaries,
    run_domain,
    tool,
)

DOM0S = ("xenwsl01", "xenka01")
ARRAYS = ("eva-wsl", "eva-ka")
SYSTEMS = ("EVA-WSL", "EVA-KA")
SET_ACTIONS = (
    "SET DR_GROUP {group} FAILOVER",
    "SET DR_GROUP {group} FAILOVER_SUSPEND",
    "SET DR_GROUP {group} SUSPEND",
    "SET DR_GROUP {group} NOSUSPEND",
    "SET DR_GROUP {group} FORCEFULLCOPY",
    "SET DR_GROUP {group} ACCESSMODE=READONLY",
    'ADD LUN 0 VDISK="{vdisk}" HOST="\\Hosts\\xenka01"',
    'ADD LUN 0 VDISK="{vdisk}" HOST="\\Hosts\\xenwsl01"',
    'DELETE LUN "\\Hosts\\xenwsl01\\1"',
    'DELETE LUN "\\Hosts\\xenka01\\1"',
)
DRBD_VERBS = (
    ("primary",),
    ("primary", "--force"),
    ("secondary",),
    ("connect",),
    ("connect", "--discard-my-data"),
    ("disconnect",),
)

fault = st.tuples(st.just("fault"), st.sampled_from(DOM0S + ARRAYS), st.sampled_from(["up", "down", "hang"]))
sssu_step = st.tuples(
    st.just("sssu"),
    st.sampled_from(ARRAYS),
    st.sampled_from(SYSTEMS),
    st.sampled_from((EVA_GROUP, LOCAL_GROUP)),
    st.sampled_from(SET_ACTIONS),
)
drbd_step = st.tuples(st.just("drbdadm"), st.sampled_from(DOM0S), st.sampled_from(DRBD_VERBS))
domain = st.tuples(
    st.just("domain"), st.sampled_from(DOM0S), st.sampled_from((EVA_DEVICE, DRBD_DEVICE)), st.booleans()
)
tick = st.tuples(st.just("tick"), st.floats(min_value=0.0, max_value=30.0))
steps = st.lists(st.one_of(fault, sssu_step, drbd_step, domain, tick), max_size=40)


def _apply(state: dict, step: tuple, now: float) -> float:
    kind = step[0]
    if kind == "fault":
        state["faults"][step[1]]["mode"] = step[2]
    elif kind == "tick":
        now += step[1]
    elif kind == "domain":
        _, host, device, start = step
        domains = state["hosts"][host]["domains"]
        if start:
            run_domain(state, host, f"vm{len(domains)}", device)
        else:
            domains[:] = [d for d in domains if d["domid"] == 0 or d["disks"][0]["target"] != device]
    elif state["faults"][step[1]]["mode"] == "up":  # the SSH server only delivers to live hosts
        if kind == "sssu":
            _, host, system, group, action = step
            path = f'"\\Data Replication\\{group}"'
            vdisk = f"\\Virtual Disks\\{group}-1\\ACTIVE"
            result = tool(
                state,
                host,
                "sssu",
                f'FILE "{login(host.upper())}"',
                f'SELECT SYSTEM "{system}"',
                action.format(group=path, vdisk=vdisk),
                now=now,
            )
        else:
            _, host, verb = step
            result = tool(state, host, "drbdadm", *verb, DRBD_GROUP, now=now)
        assert isinstance(result[0], int)
    return now


@settings(max_examples=300, deadline=None)
@given(steps=steps, resync=st.sampled_from([0.0, 10.0]), version=st.sampled_from(["9", "8.4"]))
def test_no_command_sequence_leaves_two_reachable_primaries(steps, resync, version):
    state = make_state(drbd_version=version, resync_seconds=resync)
    now = 1000.0
    for step in steps:
        now = _apply(state, step, now)
        for name, group in state["groups"].items():
            assert len(reachable_primaries(state, name)) <= 1, (step, group)
            stored = [s for s in group["sides"].values() if s["role"] == "primary"]
            assert len(stored) <= 1, (step, group)
