"""Small lab states per the schema in hosts/lab/tools/base.py, and an in-process Runner
that hands commands to the simulated tools the way the lab's SSH server does
(quote, shlex.split, handler) - a double at a boundary we own."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from hosts.drivers.base import CommandResult, DriverError, quote_command
from hosts.lab.seed import LAB_SSSU_PASSWORD, add_eva_group, eva_array_host
from hosts.lab.tools import REGISTRY
from hosts.lab.tools.base import ToolContext
from hosts.reference import sssu_login_file

EVA_GROUP = "DRG-proxy-xen01"  # WSL -> KA, presented to xenwsl01
LOCAL_GROUP = "DRG-lws-xen01"  # on the KA array only, no replica
DRBD_GROUP = "DRG-dns-xen01"  # DRBD between the two dom0s
EVA_DEVICE = "/dev/vg_proxy01/lvol1"
EVA_VDISK = f"\\Virtual Disks\\{EVA_GROUP}-1\\ACTIVE"
DRBD_DEVICE = "/dev/drbd0"
PASSWORD = LAB_SSSU_PASSWORD


def login(system: str) -> str:
    """The login file of the lab array ``system``, as the inventory names it."""
    return sssu_login_file(system)


def make_state(*, drbd_version: str = "9", resync_seconds: float = 0.0) -> dict:
    def dom0(site: str) -> dict:
        return {
            "kind": "dom0",
            "site": site,
            "address": {"WSL": "127.0.1.1", "KA": "127.0.2.1"}[site],  # the reference estate's
            "toolstack": "xl",
            "drbd_version": drbd_version,
            "domains": [{"name": "Domain-0", "domid": 0, "state": "r-----", "disks": []}],
            "next_domid": 1,
        }

    hosts = {
        "xenwsl01": dom0("WSL"),
        "xenka01": dom0("KA"),
        "eva-wsl": eva_array_host(site="WSL", address="127.0.0.1", system="EVA-WSL"),
        "eva-ka": eva_array_host(site="KA", address="127.0.0.1", system="EVA-KA"),
    }
    state = {"hosts": hosts, "groups": {}, "faults": {name: {"mode": "up"} for name in hosts}}
    add_eva_group(
        state,
        EVA_GROUP,
        devices=[EVA_DEVICE],
        sides={"eva-wsl": "primary", "eva-ka": "secondary"},
        presented_to=["xenwsl01"],
    )
    state["groups"][EVA_GROUP]["resync_seconds"] = resync_seconds
    add_eva_group(
        state,
        LOCAL_GROUP,
        devices=["/dev/vg_lws01/lvol1"],
        sides={"eva-ka": "primary"},
        presented_to=["xenka01"],
    )
    state["groups"][DRBD_GROUP] = {
        "kind": "drbd",
        "mode": "sync",
        "devices": [DRBD_DEVICE],
        "sides": {
            "xenwsl01": {"role": "primary", "presented_to": ["xenwsl01"], "disk_state": "UpToDate"},
            "xenka01": {"role": "secondary", "presented_to": [], "disk_state": "UpToDate"},
        },
        "replication": "consistent",
        "lag_seconds": 0.0,
        "resync_seconds": resync_seconds,
    }
    return state


def run_domain(state: dict, host: str, name: str, device: str) -> None:
    host_state = state["hosts"][host]
    domid = host_state["next_domid"]
    host_state["next_domid"] += 1
    host_state["domains"].append(
        {
            "name": name,
            "domid": domid,
            "state": "-b----",
            "disks": [{"target": device, "vdev": "xvda1", "mode": "w"}],
        }
    )


def set_down(state: dict, host: str, down: bool = True) -> None:
    state["faults"][host]["mode"] = "down" if down else "up"


def tool(state: dict, host: str, *argv: str, now: float = 1000.0) -> tuple[int, str, str]:
    ctx = ToolContext(host=host, state=state, now=now)
    return REGISTRY[argv[0]](ctx, list(argv))


def reachable_primaries(state: dict, group: str) -> list[str]:
    sides = state["groups"][group]["sides"]
    return [
        name
        for name, side in sides.items()
        if side["role"] == "primary" and state["faults"][name]["mode"] == "up"
    ]


class LabRunner:
    """Runs a command on one lab host in-process; a down host raises like SSH would."""

    def __init__(self, state: dict, host: str, now: float = 1000.0) -> None:
        self.name = host
        self.state = state
        self.now = now
        self.commands: list[str] = []
        self.argvs: list[list[str]] = []

    def run(self, argv: Sequence[str], *, timeout: float | None = None) -> CommandResult:
        assert timeout is not None, "every driver call must carry a timeout"
        command = quote_command(argv)
        self.commands.append(command)
        self.argvs.append([str(word) for word in argv])
        if self.state["faults"][self.name]["mode"] != "up":
            raise DriverError(f"{self.name}: connection timed out (lab host down)")
        words = shlex.split(command)
        status, out, err = tool(self.state, self.name, *words, now=self.now)
        return CommandResult(
            host=self.name,
            argv=tuple(argv),
            command=command,
            stdout=out,
            stderr=err,
            exit_status=status,
            seconds=0.0,
        )
