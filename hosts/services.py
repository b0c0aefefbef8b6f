"""Writes to the estate. Multi-row rules and their locks live here (HackSoft style).

``estate_load_reference`` loads the thesis estate idempotently;
``profile_set_vm_memory`` is the memory-profile editor's single write, refused when
it would break the no-swap rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from . import reference
from .choices import ReplicationStateChoices
from .models import (
    VM,
    DRGroup,
    FunctionalCheck,
    Host,
    HostAllocation,
    MemoryProfile,
    Site,
    StorageArray,
    VMAllocation,
    VMDisk,
    VMInterface,
)
from .selectors import host_budget

NORMAL_PROFILE = "normal operation"


@dataclass
class LoadReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def count(self, obj, created: bool, changed: bool) -> None:
        if created:
            self.created += 1
        elif changed:
            self.updated += 1
        else:
            self.unchanged += 1


def _upsert(model, report: LoadReport, *, lookup: dict, values: dict):
    """update_or_create that only writes (and counts) when something differs, so a
    second load is a no-op and says so."""
    obj = model.objects.filter(**lookup).first()
    if obj is None:
        obj = model(**lookup, **values)
        obj.full_clean()
        obj.save()
        report.count(obj, True, False)
        return obj
    changed = [name for name, value in values.items() if getattr(obj, name) != value]
    for name in changed:
        setattr(obj, name, values[name])
    if changed:
        obj.full_clean()
        obj.save(update_fields=changed)
    report.count(obj, False, bool(changed))
    return obj


@transaction.atomic
def estate_load_reference(
    *,
    addresses: dict[str, str] | None = None,
    drill_addresses: dict[str, str] | None = None,
    ssh_port: int | None = None,
    ssh_key_path: str = "",
    fingerprints: dict[str, str] | None = None,
) -> LoadReport:
    """Load the thesis estate (seed digest) exactly. Running it twice changes nothing.

    ``addresses`` overrides the loopback lab addresses per host, array or VM name, and
    ``drill_addresses`` the addresses where the VMs' drill clones answer;
    ``fingerprints`` pins host keys (the lab's, when it has made them), per host, array or
    VM (a VM's own SSH, for its functional checks; on ``ssh_port`` like the dom0s).
    Functional checks (thesis tables 3.1, 3.2) are created or brought back to the
    reference; checks added by hand are left alone."""
    addresses = addresses or {}
    drill_addresses = drill_addresses or {}
    fingerprints = fingerprints or {}
    port = ssh_port or reference.LAB_PORT
    report = LoadReport()

    sites = {
        s["code"]: _upsert(
            Site, report, lookup={"code": s["code"]}, values={"name": s["name"], "role": s["role"]}
        )
        for s in reference.SITES
    }
    arrays = {}
    for a in reference.ARRAYS:
        arrays[a["name"]] = _upsert(
            StorageArray,
            report,
            lookup={"name": a["name"]},
            values={
                "site": sites[a["site"]],
                "kind": a["kind"],
                "model": a["model"],
                "system_name": a["name"].upper(),
                "management_address": addresses.get(a["name"], a["address"]),
                "management_port": port,
                "management_user": "root",
                "host_key_fingerprint": fingerprints.get(a["name"], ""),
                # The lab keeps its login script there (hosts/lab/seed.py); a real site
                # puts its own root-only script on the management host and this path in.
                "sssu_login_file": reference.sssu_login_file(a["name"].upper()),
            },
        )
    hosts = {}
    for h in reference.HOSTS:
        hosts[h["name"]] = _upsert(
            Host,
            report,
            lookup={"name": h["name"]},
            values={
                "site": sites[h["site"]],
                "address": addresses.get(h["name"], h["address"]),
                "ssh_port": port,
                "ssh_user": "root",
                "ssh_key_path": ssh_key_path,
                "host_key_fingerprint": fingerprints.get(h["name"], ""),
                "ram_mb": h["ram_mb"],
                "cpus": h["cpus"],
                "toolstack": h["toolstack"],
                "bridges": list(h["bridges"]),
            },
        )
    groups = {}
    for g in reference.dr_groups():
        groups[g["name"]] = _upsert(
            DRGroup,
            report,
            lookup={"name": g["name"]},
            values={
                "source_array": arrays[g["source_array"]],
                "target_array": arrays[g["target_array"]] if g["target_array"] else None,
                "mode": g["mode"],
                **({} if g["target_array"] else {"replication_state": ReplicationStateChoices.NONE}),
            },
        )
    vms = {}
    for v in reference.VMS:
        vms[v["name"]] = vm = _upsert(
            VM,
            report,
            lookup={"name": v["name"]},
            values={
                "home_host": hosts[v["home"]],
                "dr_group": groups[reference.dr_group_name(v["name"])],
                "vcpus": v["vcpus"],
                "storage_gb": v["storage_gb"],
                "config_path": reference.vm_config_path(v["name"]),
                "tier": v["tier"],
                "description": v["description"],
                "address": addresses.get(v["name"], v["address"]),
                "drill_address": drill_addresses.get(v["name"], reference.vm_drill_address(v["name"])),
                "ssh_port": port,
                "ssh_user": "root",
                "host_key_fingerprint": fingerprints.get(v["name"], ""),
            },
        )
        for index, nic in enumerate(reference.vm_nics(v)):
            _upsert(
                VMInterface,
                report,
                lookup={"mac": nic["mac"]},
                values={"vm": vm, "index": index, "bridge": nic["bridge"], "lan_role": nic["role"]},
            )
        for disk in reference.vm_disks(v["name"]):
            _upsert(
                VMDisk,
                report,
                lookup={"vm": vm, "vdev": disk["vdev"]},
                values={"target": disk["target"], "writable": disk["mode"] == "w"},
            )
    for c in reference.functional_checks():
        _upsert(
            FunctionalCheck,
            report,
            lookup={"vm": vms[c["vm"]], "name": c["name"]},
            values={
                field: c[field]
                for field in (
                    "kind",
                    "url",
                    "expect_status",
                    "expect_text",
                    "verify_tls",
                    "port",
                    "command",
                    "expect_exit",
                    "timeout_s",
                )
            },
        )
    for v in reference.VMS:
        wanted = {vms[name].pk for name in v["depends_on"]}
        have = set(vms[v["name"]].depends_on.values_list("pk", flat=True))
        if wanted != have:
            vms[v["name"]].depends_on.set(wanted)
            report.updated += 1

    normal = _upsert(
        MemoryProfile,
        report,
        lookup={"name": NORMAL_PROFILE},
        values={"lost_site": None, "description": "Thesis tables 3 and 4: every VM on its home host."},
    )
    wsl_lost = _upsert(
        MemoryProfile,
        report,
        lookup={"name": "WSL lost"},
        values={
            "lost_site": sites["WSL"],
            "description": "Thesis table 5: everything on xenka01 with its disaster memory; no swapping.",
        },
    )
    for h in reference.HOSTS:
        _upsert(
            HostAllocation,
            report,
            lookup={"profile": normal, "host": hosts[h["name"]]},
            values={"dom0_memory_mb": h["dom0_normal_mb"]},
        )
        if h["site"] != "WSL":
            _upsert(
                HostAllocation,
                report,
                lookup={"profile": wsl_lost, "host": hosts[h["name"]]},
                values={"dom0_memory_mb": h["dom0_dr_mb"]},
            )
    for v in reference.VMS:
        _upsert(
            VMAllocation,
            report,
            lookup={"profile": normal, "vm": vms[v["name"]]},
            values={"host": hosts[v["home"]], "memory_mb": v["normal_mb"]},
        )
        _upsert(
            VMAllocation,
            report,
            lookup={"profile": wsl_lost, "vm": vms[v["name"]]},
            values={"host": hosts["xenka01"], "memory_mb": v["dr_mb"]},
        )
    return report


def profile_set_vm_memory(*, allocation_id: int, memory_mb: int) -> VMAllocation:
    """Set one VM's memory in one profile, refusing what would make its host swap.

    Locks the profile's allocation rows on that host (in pk order) so two admins editing
    the same host at once cannot both squeeze in under the limit."""
    with transaction.atomic():
        allocation = VMAllocation.objects.select_related("host", "profile", "vm").get(pk=allocation_id)
        list(
            VMAllocation.objects.select_for_update()
            .filter(profile_id=allocation.profile_id, host_id=allocation.host_id)
            .order_by("pk")
        )
        allocation.memory_mb = memory_mb
        # The row's own rules first: "more than the host's RAM" says more than the database
        # column's limit (9223372036854775807 on SQLite) that full_clean would add.
        allocation.clean()
        allocation.full_clean()
        budget = host_budget(
            profile=allocation.profile, host=allocation.host, override={allocation.pk: memory_mb}
        )
        if budget.used_mb > budget.capacity_mb:
            raise ValidationError(
                {
                    "memory_mb": _(
                        "%(host)s would need %(need)s MB (%(vms)s MB for VMs + %(dom0)s MB dom0) but has "
                        "%(cap)s MB: %(short)s MB short. Nothing was saved; lower another VM first."
                    )
                    % {
                        "host": allocation.host.name,
                        "need": budget.used_mb,
                        "vms": budget.vm_mb,
                        "dom0": budget.dom0_mb,
                        "cap": budget.capacity_mb,
                        "short": budget.used_mb - budget.capacity_mb,
                    }
                }
            )
        allocation.save(update_fields=["memory_mb"])
    return allocation
