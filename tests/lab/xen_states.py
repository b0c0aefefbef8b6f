"""Tiny dom0 states (schema: hosts/lab/tools/base.py) and an in-process Runner over the lab's
xl/xm, for the lab's own tests (tests/lab) and the Xen driver's (tests/xen).

The Runner is a test double at a boundary we own: it quotes the argv exactly as the SSH
layer does, splits it back as the lab server does, and calls the simulated tools. The
over-SSH integration tests against the real lab live elsewhere.
"""

from __future__ import annotations

import copy
import shlex
import time
from collections.abc import Sequence

import pytest

from hosts.drivers.base import CommandResult, quote_command
from hosts.drivers.xen_vmconfig import render_cfg
from hosts.lab.seed import add_eva_group, eva_array_host
from hosts.lab.tools.base import ToolContext

NOW = 1_750_000_000.0


def vm(name: str, memory_mb: int, *, vcpus: int = 1, max_memory_mb: int | None = None, slot: int = 1) -> dict:
    """A VM as the lab seeds it: two NICs (xenbr0 user LAN, xenbr1 backup LAN), one LVM disk."""
    stem = name.replace("-xen", "")
    return {
        "name": name,
        "memory_mb": memory_mb,
        "max_memory_mb": max_memory_mb or memory_mb,
        "vcpus": vcpus,
        "nics": [
            {"mac": f"00:16:3e:10:{slot:02x}:01", "bridge": "xenbr0"},
            {"mac": f"00:16:3e:11:{slot:02x}:01", "bridge": "xenbr1"},
        ],
        "disks": [{"target": f"/dev/vg_{stem}/lvol1", "vdev": "xvda1", "mode": "w"}],
    }


VMS = {
    "lws-xen01": vm("lws-xen01", 512, slot=1),
    "dasi-xen01": vm("dasi-xen01", 2048, vcpus=2, slot=2),
    "tomcat-xen01": vm("tomcat-xen01", 768, slot=3),
    "proxy-xen01": vm("proxy-xen01", 1792, vcpus=2, slot=4),
    "dns-xen01": vm("dns-xen01", 512, slot=5),
}


def dom0_host(
    *,
    toolstack: str = "xl",
    total_mb: int = 4096,
    dom0_mb: int = 256,
    running: Sequence[str] = (),
    xen_version: str = "4.17.3",
    **extra: object,
) -> dict:
    domains = [
        {
            "name": "Domain-0",
            "domid": 0,
            "memory_mb": dom0_mb,
            "max_memory_mb": total_mb,
            "vcpus": 4,
            "state": "r-----",
            "cpu_time": 48213.7,
            "uuid": "00000000-0000-0000-0000-000000000000",
            "config_path": None,
            "nics": [],
            "disks": [],
        }
    ]
    for domid, name in enumerate(running, start=1):
        spec = VMS[name]
        domains.append(
            {
                **copy.deepcopy(spec),
                "domid": domid,
                "state": "-b----",
                "cpu_time": 1000.5 * domid,
                "uuid": f"00000000-0000-4000-8000-{domid:012d}",
                "config_path": f"/etc/xen/vm/{name}",
            }
        )
    files = {
        f"/etc/xen/vm/{name}": render_cfg(
            name=name,
            memory_mb=spec["memory_mb"],
            max_memory_mb=spec["max_memory_mb"],
            vcpus=spec["vcpus"],
            nics=spec["nics"],
            disks=spec["disks"],
        )
        for name, spec in VMS.items()
    }
    return {
        "kind": "dom0",
        "site": "KA",
        "address": "127.0.2.1",
        "toolstack": toolstack,
        "total_memory_mb": total_mb,
        "nr_cpus": 4,
        "xen_version": xen_version,
        "bridges": ["xenbr0", "xenbr1"],
        "files": files,
        "domains": domains,
        "next_domid": len(domains),
        **extra,
    }


def lab_state(**hosts: dict) -> dict:
    """A state whose single EVA group presents every VM's disk to every given dom0."""
    devices = [disk["target"] for spec in VMS.values() for disk in spec["disks"]]
    array = eva_array_host(site="KA", address="127.0.2.2", system="EVA-KA")
    state = {
        "hosts": {**hosts, "eva-ka": array},
        "groups": {},
        "faults": {},
        "latency": {"default_seconds": 0.0, "per_command": {}},
    }
    add_eva_group(state, "DRG-all", devices=devices, sides={"eva-ka": "primary"}, presented_to=list(hosts))
    return state


def unpresent(state: dict, device: str) -> None:
    """The array stops presenting the vdisk that carries ``device`` (its LUNs are deleted)."""
    group = state["groups"]["DRG-all"]
    vdisk = group["sides"]["eva-ka"]["vdisks"][group["devices"].index(device)]["name"]
    for table in state["hosts"]["eva-ka"]["luns"].values():
        for lun in [lun for lun, name in table.items() if name == vdisk]:
            del table[lun]


class LabRunner:
    """Runner protocol over the lab's tool registry, in-process."""

    def __init__(self, state: dict, host: str = "xenka01") -> None:
        self.name = host
        self.state = state
        self.calls: list[tuple[tuple[str, ...], float | None]] = []

    def run(self, argv: Sequence[str], *, timeout: float | None = None) -> CommandResult:
        from hosts.lab.tools import resolve

        command = quote_command(argv)
        self.calls.append((tuple(argv), timeout))
        words = shlex.split(command)
        handler = resolve(words[0])
        started = time.monotonic()
        if handler is None:
            status, out, err = 127, "", f"bash: {words[0]}: command not found\n"
        else:
            status, out, err = handler(ToolContext(self.name, self.state, NOW), words)
        return CommandResult(self.name, tuple(argv), command, out, err, status, time.monotonic() - started)


def run_tool(state: dict, host: str, *argv: str) -> tuple[int, str, str]:
    from hosts.lab.tools.xen_tool import REGISTRY_ENTRIES

    return REGISTRY_ENTRIES[argv[0]](ToolContext(host, state, NOW), list(argv))


@pytest.fixture
def ka_state() -> dict:
    """xenka01 in normal operation: lws, tomcat, dasi running (256 + 512 + 768 + 2048 = 3584 of 4096)."""
    return lab_state(xenka01=dom0_host(running=("lws-xen01", "tomcat-xen01", "dasi-xen01")))


@pytest.fixture
def xm_state() -> dict:
    """An old SLES-style dom0 driven by xm (xend), Xen 3.2."""
    return lab_state(xenka01=dom0_host(toolstack="xm", xen_version="3.2.3", running=("lws-xen01",)))
