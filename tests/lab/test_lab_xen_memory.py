"""Whatever sequence of create / mem-set / shutdown / destroy arrives, the simulated dom0
never hands out more memory than it has, and what it prints agrees with its state."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hosts.drivers.xen import parse_info, parse_list, parse_list_long
from tests.lab.xen_states import VMS, dom0_host, lab_state, run_tool

VM_NAMES = sorted(VMS)
TARGETS = [*VM_NAMES, "Domain-0", "ghost"]

operations = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(VM_NAMES), st.one_of(st.none(), st.integers(1, 3000))),
    st.tuples(
        st.just("mem-set"), st.sampled_from(TARGETS), st.integers(1, 4500), st.sampled_from(["", "m", "k"])
    ),
    st.tuples(st.just("shutdown"), st.sampled_from(TARGETS)),
    st.tuples(st.just("destroy"), st.sampled_from(TARGETS)),
)


def argv_of(op: tuple) -> list[str]:
    if op[0] == "create":
        _, name, memory = op
        return ["create", f"/etc/xen/vm/{name}", *([f"memory={memory}"] if memory else [])]
    if op[0] == "mem-set":
        _, name, mb, unit = op
        return ["mem-set", name, f"{mb * 1024}k" if unit == "k" else f"{mb}{unit}"]
    if op[0] == "shutdown":
        return ["shutdown", "-w", op[1]]
    return ["destroy", op[1]]


def check_accounting(state: dict, tool: str) -> None:
    host = state["hosts"]["xenka01"]
    used = sum(dom["memory_mb"] for dom in host["domains"])
    assert used <= host["total_memory_mb"]
    info = parse_info(run_tool(state, "xenka01", tool, "info")[1])
    assert info.free_memory_mb == host["total_memory_mb"] - used >= 0
    listed = parse_list(run_tool(state, "xenka01", tool, "list")[1])
    assert [(d.name, d.domid, d.memory_mb) for d in listed] == [
        (dom["name"], dom["domid"], dom["memory_mb"]) for dom in host["domains"]
    ]
    assert listed[0].is_dom0 and [d.domid for d in listed] == sorted(d.domid for d in listed)
    assert len({d.name for d in listed}) == len(listed)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(operations, max_size=25),
    tool=st.sampled_from(["xl", "xm"]),
    autoballoon=st.booleans(),
    total_mb=st.sampled_from([1024, 2048, 4096]),
)
def test_memory_is_never_overdrawn_and_refusals_change_nothing(ops, tool, autoballoon, total_mb):
    state = lab_state(
        xenka01=dom0_host(toolstack=tool, total_mb=total_mb, running=("lws-xen01",), autoballoon=autoballoon)
    )
    check_accounting(state, tool)
    for op in ops:
        before = copy.deepcopy(state)
        status, _, _ = run_tool(state, "xenka01", tool, *argv_of(op))
        if status != 0:
            # a refusal may only burn a domid (libxl allocated one before failing)
            before["hosts"]["xenka01"]["next_domid"] = state["hosts"]["xenka01"]["next_domid"]
            assert state == before, f"{op} was refused but changed the state"
        check_accounting(state, tool)


@settings(max_examples=60, deadline=None)
@given(
    running=st.lists(st.sampled_from(VM_NAMES), unique=True, max_size=3),
    shrink=st.lists(st.integers(128, 512), min_size=3, max_size=3),
)
def test_long_list_round_trips_through_the_parser(running, shrink):
    state = lab_state(xenka01=dom0_host(total_mb=8192, running=tuple(running)))
    for name, mb in zip(running, shrink, strict=False):
        run_tool(state, "xenka01", "xl", "mem-set", name, f"{mb}m")
    details = parse_list_long(run_tool(state, "xenka01", "xl", "list", "-l")[1])
    domus = state["hosts"]["xenka01"]["domains"][1:]
    assert [(d.name, d.domid, d.target_memory_mb, d.max_memory_mb, d.vcpus) for d in details] == [
        (dom["name"], dom["domid"], dom["memory_mb"], dom["max_memory_mb"], dom["vcpus"]) for dom in domus
    ]
    assert [[(n.mac, n.bridge) for n in d.nics] for d in details] == [
        [(nic["mac"], nic["bridge"]) for nic in dom["nics"]] for dom in domus
    ]
    assert [[(k.target, k.vdev, k.mode) for k in d.disks] for d in details] == [
        [(disk["target"], disk["vdev"], disk["mode"]) for disk in dom["disks"]] for dom in domus
    ]
