"""The contract between the lab's SSH server and the simulated tools it serves.

The server parses one command line (shlex.split), takes the lab state under its file
lock, finds the handler for ``argv[0]`` in the registry (``hosts.lab.tools.REGISTRY``)
and calls it. The handler reads and mutates ``ctx.state`` in place and returns
``(exit_status, stdout, stderr)``; the server saves the state and journals the call.
A handler never sleeps and never does I/O besides the state: latency and faults are
the server's job. (One exception: drbdadm/drbdsetup ask the real drbd-utils to judge each
call, a cached dry run; see drbd_check.py. DRBD's extra state keys: drbd_view.py.)

Lab state schema (state.json, a log of JSON lines: hosts/lab/store.py loads and saves it, hosts/lab/seed.py seeds it):

state["hosts"][name] = {
    "kind": "dom0" | "array",
    "site": "WSL", "address": "127.0.1.1",
    # dom0 only:
    "toolstack": "xl" | "xm", "total_memory_mb": 4096, "nr_cpus": 4, "xen_version": "4.17.3",
    "bridges": ["xenbr0", "xenbr1"],
    "files": {"/etc/xen/vm/lws-xen01": "<xl.cfg text>", ...},
    "domains": [  # Domain-0 first, then by domid
        {"name": "Domain-0", "domid": 0, "memory_mb": 256, "max_memory_mb": 4096, "vcpus": 4,
         "state": "r-----", "cpu_time": 1234.5, "uuid": "...", "config_path": None,
         "nics": [{"mac": "...", "bridge": "xenbr0"}], "disks": [{"target": "/dev/..", "vdev": "xvda1", "mode": "w"}]},
    ],
    "next_domid": 4,
    # array only:
    "array_kind": "eva-ca" | "drbd", "system": "EVA-KA",
}
state["groups"][group_name] = {
    "kind": "eva-ca" | "drbd",
    "mode": "async" | "sync",
    "devices": ["/dev/vg_proxy01/lvol1"],          # block devices the group carries, in order
    "sides": {                                      # keyed by the lab host that serves the tool:
        # DRBD (the dom0s): who has it open
        "xenwsl01": {"role": "primary", "presented_to": ["xenwsl01"], "disk_state": "UpToDate"},
        # EVA (the arrays): one vdisk per device; presentations are the array's LUN table
        "eva-ka": {"role": "secondary", "disk_state": "UpToDate",
                   "vdisks": [{"name": "DRG-proxy-xen01-1", "wwid": "6005-08b4-...."}]},
    },
    "replication": "consistent" | "syncing" | "broken" | "suspended" | "none",
    "lag_seconds": 2.0 | None,
    "accessmode": "disable" | "readonly" | "presentonly",  # EVA: the destination's host access
}
state["hosts"][array]["luns"] = {"xenka01": {"1": "DRG-proxy-xen01-1"}}  # EVA LUN table
state["hosts"][array]["files"] = {"/etc/drportal/sssu/EVA-KA.login": "SELECT MANAGER ..."}
state["hosts"][array]["sssu_accounts"] = {"drportal": "<password>"}  # who may SELECT MANAGER
state["snapshots"][vdisk name] = {                # EVA snapshots: one snapshot vdisk each
    "array": "eva-ka", "parent": "DRG-proxy-xen01-1", "group": "DRG-proxy-xen01",
    "device": "/dev/vg_proxy01/lvol1",             # the parent's device: what it copies
    "wwid": "6005-08b4-....", "created_at": 1700000000.0,
}
state["faults"][host] = {"mode": "up" | "down" | "hang", "slow_seconds": 0.0,
                          "fail_next": None | "message", "key_generation": 0,
                          # `lab fault DOM0 crash` (a power cut): mode "down", guests gone:
                          "crashed": True, "lost_domains": ["lws-xen01", ...]}  # until `up`
state["latency"] = {"default_seconds": 0.0, "per_command": {"xl create": 0.0, ...}}
state["services"][vm_name] = {                     # served while the domain runs (hosts/lab/vm_services.py)
    "address": "127.0.3.1",
    "ports": [{"port": 443, "kind": "https", "pages": {"/statusboard/": "<html>..."}},
              {"port": 3128, "kind": "http", "status": 400, "body": "..."},
              {"port": 25, "kind": "tcp", "banner": "220 ..."}],
    "units": {"apache2": [443], "dhcpd": []},      # systemd units and the ports they need
    "files": {"/etc/statusboard/config.php": "..."},
    "down": [] | [25, "ssh"] | ["all"],            # lab fault VM service-down PORT|ssh|all
    "key_generation": 0,                           # bumped by lab fault VM rekey
    "drill_address": "127.0.4.1",                  # where a running domain "drill-<vm>" serves
}                                                  # the same ports and SSH (same host key)

Invariant the array tools enforce: at most one side of a group has role "primary" among
sides whose host is not down; split brain is refused as an error, never stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

ToolResult = tuple[int, str, str]  # exit status, stdout, stderr


@dataclass
class ToolContext:
    host: str  # the lab host the command arrived at, e.g. "xenka01" or "eva-ka"
    state: dict  # the whole lab state, mutable
    now: float  # time.time() when the command arrived
    notes: list[str] = field(default_factory=list)  # extra lines for the journal

    @property
    def host_state(self) -> dict:
        return self.state["hosts"][self.host]

    def host_is_down(self, name: str) -> bool:
        return self.state.get("faults", {}).get(name, {}).get("mode", "up") != "up"


Handler = Callable[[ToolContext, list[str]], ToolResult]


def visible_devices(state: dict, host: str) -> set[str]:
    """Block devices a dom0 can see: those of every DRBD side that is primary and presented
    to it, and those of every EVA virtual disk the array presents to it as a LUN (a
    destination copy only while its DR group's access mode is READONLY; eva_model.py)."""
    from hosts.lab.tools.eva_model import drbd_group_names, eva_visible_devices

    seen: set[str] = set()
    groups = state.get("groups", {})
    for name in drbd_group_names(groups):  # not every group: the store compares what is read
        group = groups[name]
        for side in group["sides"].values():
            if side["role"] == "primary" and host in side.get("presented_to", ()):
                seen.update(group["devices"])
    return seen | eva_visible_devices(state, host)
