"""The lab's estates: the reference estate (hosts/reference.py) as a fresh lab state, and
synthetic estates for benchmarks; the builders of its EVA array hosts and groups.

Plain dicts in the schema of hosts/lab/tools/base.py. The functions that write a store
take any object with ``replace`` and ``transaction`` (store.py's ``LabStore``): the store
seeds a fresh lab directory from here, so this module does not import it back."""

from __future__ import annotations

import uuid
import zlib
from contextlib import AbstractContextManager
from typing import Protocol

from hosts import reference
from hosts.lab.tools import eva_model

_UUID_NAMESPACE = uuid.UUID("6f1d8a52-3c1e-4a8e-9a57-2d9f0c7f4b11")


class Store(Protocol):
    """What seeding needs of a lab store (hosts/lab/store.py: LabStore)."""

    def replace(self, state: dict) -> None: ...

    def transaction(self) -> AbstractContextManager[dict]: ...


# The lab's SSSU account. Its password is only ever in the array host's login file (run
# with SSSU's FILE) and in what sssu answers; never on a command line or in the journal.
LAB_SSSU_USER = "drportal"
LAB_SSSU_PASSWORD = "lab-sssu-7Qm2-not-secret"


def eva_array_host(*, site: str, address: str, system: str) -> dict:
    """An EVA array host of the lab: its own management host with the login script."""
    return {
        "kind": "array",
        "site": site,
        "address": address,
        "array_kind": "eva-ca",
        "system": system,
        "files": {
            reference.sssu_login_file(system): (
                f"SELECT MANAGER localhost USERNAME={LAB_SSSU_USER} PASSWORD={LAB_SSSU_PASSWORD}\n"
            )
        },
        "sssu_accounts": {LAB_SSSU_USER: LAB_SSSU_PASSWORD},
        "luns": {},
    }


def add_eva_group(
    state: dict,
    name: str,
    *,
    devices: list[str],
    sides: dict[str, str],
    presented_to: list[str],
    mode: str = "async",
) -> dict:
    """An EVA group (``sides``: array -> role) whose source copy is presented to
    ``presented_to``, one LUN per vdisk."""
    group = state["groups"][name] = eva_model.eva_group(devices=devices, sides=sides, group=name, mode=mode)
    source = next(array for array, role in sides.items() if role == "primary")
    for host in presented_to:
        for vdisk in group["sides"][source]["vdisks"]:
            eva_model.add_lun(state, source, host, vdisk["name"])
    return group


def default_faults() -> dict:
    return {"mode": "up", "slow_seconds": 0.0, "fail_next": None, "key_generation": 0}


def _uuid(name: str) -> str:
    return str(uuid.uuid5(_UUID_NAMESPACE, name))


def _cfg_text(vm: dict) -> str:
    """An xl.cfg for one VM: enough for `xl create` and for a human reading it."""
    vifs = ", ".join(f"'mac={nic['mac']},bridge={nic['bridge']}'" for nic in vm["nics"])
    disks = ", ".join(f"'phy:{disk['target']},{disk['vdev']},{disk['mode']}'" for disk in vm["disks"])
    return (
        f'name = "{vm["name"]}"\n'
        f'uuid = "{_uuid(vm["name"])}"\n'
        f"memory = {vm['memory_mb']}\n"
        f"maxmem = {vm['max_memory_mb']}\n"
        f"vcpus = {vm['vcpus']}\n"
        f"vif = [ {vifs} ]\n"
        f"disk = [ {disks} ]\n"
        'bootloader = "pygrub"\n'
        'on_poweroff = "destroy"\n'
        'on_reboot = "restart"\n'
        'on_crash = "restart"\n'
    )


def _dom0_domain(memory_mb: int, total_mb: int, cpus: int, cpu_time: float) -> dict:
    return {
        "name": "Domain-0",
        "domid": 0,
        "memory_mb": memory_mb,
        "max_memory_mb": total_mb,
        "vcpus": cpus,
        "state": "r-----",
        "cpu_time": cpu_time,
        "uuid": "00000000-0000-0000-0000-000000000000",
        "config_path": None,
        "nics": [],
        "disks": [],
    }


def _domu(name: str, domid: int, memory_mb: int, vcpus: int, nics: list, disks: list) -> dict:
    return {
        "name": name,
        "domid": domid,
        "memory_mb": memory_mb,
        "max_memory_mb": memory_mb,
        "vcpus": vcpus,
        "state": "-b----",
        # Deterministic but different per VM, so listings look lived-in and stay reproducible.
        "cpu_time": float(1000 + zlib.crc32(name.encode()) % 90000) + 0.5,
        "uuid": _uuid(name),
        "config_path": reference.vm_config_path(name),
        "nics": nics,
        "disks": disks,
    }


def _reference_vm(vm: dict) -> dict:
    return {
        "name": vm["name"],
        "memory_mb": vm["normal_mb"],
        "max_memory_mb": vm["normal_mb"],
        "vcpus": vm["vcpus"],
        "nics": [{"mac": nic["mac"], "bridge": nic["bridge"]} for nic in reference.vm_nics(vm)],
        "disks": [dict(disk) for disk in reference.vm_disks(vm["name"])],
    }


def reference_state() -> dict:
    """The reference estate in normal operation, as a fresh lab state."""
    vms = [_reference_vm(vm) for vm in reference.VMS]
    # Every dom0 carries every VM's config, so any VM can start on either (thesis).
    config_files = {reference.vm_config_path(vm["name"]): _cfg_text(vm) for vm in vms}
    home = {vm["name"]: vm["home"] for vm in reference.VMS}
    boot_order = sorted(reference.VMS, key=lambda vm: (vm["tier"], vm["name"]))
    hosts: dict[str, dict] = {}
    for host in reference.HOSTS:
        domains = [_dom0_domain(host["dom0_normal_mb"], host["ram_mb"], host["cpus"], 48213.7)]
        for vm in (_reference_vm(vm) for vm in boot_order if home[vm["name"]] == host["name"]):
            domains.append(
                _domu(vm["name"], len(domains), vm["memory_mb"], vm["vcpus"], vm["nics"], vm["disks"])
            )
        hosts[host["name"]] = {
            "kind": "dom0",
            "site": host["site"],
            "address": host["address"],
            "toolstack": host["toolstack"],
            "total_memory_mb": host["ram_mb"],
            "nr_cpus": host["cpus"],
            "xen_version": "4.17.3",
            "bridges": list(host["bridges"]),
            "files": dict(config_files),
            "domains": domains,
            "next_domid": len(domains),
        }
    for array in reference.ARRAYS:
        assert array["kind"] == "eva-ca"  # the reference estate's arrays are both EVAs
        hosts[array["name"]] = eva_array_host(
            site=array["site"], address=array["address"], system=array["name"].upper()
        )
    state: dict = {"hosts": hosts, "groups": {}}
    for group in reference.dr_groups():
        sides = {group["source_array"]: "primary"}
        if group["target_array"]:
            sides[group["target_array"]] = "secondary"
        add_eva_group(
            state,
            group["name"],
            devices=[disk["target"] for name in group["vms"] for disk in reference.vm_disks(name)],
            sides=sides,
            presented_to=sorted({home[name] for name in group["vms"]}),
            mode=group["mode"],
        )
    return {
        "revision": 0,
        "hosts": hosts,
        "groups": state["groups"],
        "faults": {name: default_faults() for name in hosts},
        "latency": {"default_seconds": 0.0, "per_command": {}},
        # What each VM serves on its address while it runs (hosts/lab/vm_services.py), and
        # where its drill clone ("drill-<vm>") serves the same.
        "services": {
            vm["name"]: {
                **reference.vm_services(vm["name"]),
                "drill_address": default_drill_address(reference.vm_services(vm["name"])["address"]),
            }
            for vm in reference.VMS
        },
    }


def default_drill_address(address: str) -> str:
    """A VM's drill address in the lab: 127.0.4.<i> beside its 127.0.3.<i>."""
    return f"127.0.4.{address.rsplit('.', 1)[-1]}"


def seed_reference(store: Store, *, drill_addresses: dict[str, str] | None = None) -> dict:
    """The reference estate; ``drill_addresses`` ({VM: address}) replace the default
    drill addresses (127.0.4.<i>) of the VMs named."""
    state = reference_state()
    for vm, address in (drill_addresses or {}).items():
        if vm not in state["services"]:
            known = ", ".join(sorted(state["services"]))
            raise ValueError(f"no drill address for unknown VM {vm!r}; known: {known}")
        state["services"][vm]["drill_address"] = address
    store.replace(state)
    return state


def reset(store: Store) -> dict:
    """Back to the reference estate. The journal is kept (seq keeps counting) because it
    records what the lab received, and a reset is one of those things worth seeing."""
    return seed_reference(store)


def synthetic_address(index: int, base_octet: int = 100) -> str:
    """127.0.<base+i//250>.<1+i%250>: clear of the reference estate's 127.0.1.x/127.0.2.x."""
    return f"127.0.{base_octet + index // 250}.{1 + index % 250}"


def seed_synthetic(
    store: Store,
    *,
    hosts: int = 50,
    vms: int = 500,
    vm_memory_mb: int = 256,
    dom0_memory_mb: int = 256,
    base_octet: int = 100,
    prefix: str = "synth",
) -> list[str]:
    """Add ``hosts`` dom0s (``synth001``...) running ``vms`` VMs round-robin, plus two
    arrays (``synth-eva-a`` primary, ``synth-eva-b`` secondary) replicating one group per
    VM, to the current state. Returns the dom0 names. For benchmarks, not for realism."""
    if hosts < 1 or vms < 0:
        raise ValueError("need at least one host and a non-negative number of VMs")
    names = [f"{prefix}{index + 1:03d}" for index in range(hosts)]
    per_host = -(-vms // hosts)
    total_mb = max(4096, dom0_memory_mb + per_host * vm_memory_mb * 2)
    array_a, array_b = f"{prefix}-eva-a", f"{prefix}-eva-b"
    with store.transaction() as state:
        for index, name in enumerate(names):
            state["hosts"][name] = {
                "kind": "dom0",
                "site": "SYN",
                "address": synthetic_address(index, base_octet),
                "toolstack": "xl",
                "total_memory_mb": total_mb,
                "nr_cpus": 8,
                "xen_version": "4.17.3",
                "bridges": list(reference.BRIDGES),
                "files": {},
                "domains": [_dom0_domain(dom0_memory_mb, total_mb, 8, 1000.0)],
                "next_domid": 1,
            }
            state["faults"][name] = default_faults()
        for index, array in enumerate((array_a, array_b)):
            state["hosts"][array] = eva_array_host(
                site="SYN", address=synthetic_address(hosts + index, base_octet), system=array.upper()
            )
            state["faults"][array] = default_faults()
        for number in range(vms):
            host = state["hosts"][names[number % hosts]]
            vm_name = f"{prefix}-vm{number + 1:04d}"
            stem = f"{prefix}vm{number + 1:04d}"
            vm = {
                "name": vm_name,
                "memory_mb": vm_memory_mb,
                "max_memory_mb": vm_memory_mb,
                "vcpus": 1,
                "nics": [
                    {
                        "mac": f"00:16:3e:{number >> 8 & 0xFF:02x}:{number & 0xFF:02x}:{slot + 1:02x}",
                        "bridge": br,
                    }
                    for slot, br in enumerate(reference.BRIDGES)
                ],
                "disks": [{"target": f"/dev/vg_{stem}/lvol1", "vdev": "xvda1", "mode": "w"}],
            }
            host["files"][reference.vm_config_path(vm_name)] = _cfg_text(vm)
            domid = host["next_domid"]
            host["domains"].append(_domu(vm_name, domid, vm_memory_mb, 1, vm["nics"], vm["disks"]))
            host["next_domid"] = domid + 1
            add_eva_group(
                state,
                f"DRG-{vm_name}",
                devices=[vm["disks"][0]["target"]],
                sides={array_a: "primary", array_b: "secondary"},
                presented_to=[names[number % hosts]],
            )
    return names
