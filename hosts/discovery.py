"""Enrollment (pin a dom0's host key, learn its RAM and toolstack) and discovery (learn
its domains). Discovery creates and updates VMs; it never deletes anything."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from . import reference
from .choices import DomainStateChoices, LanRoleChoices
from .connect import ssh_target
from .drivers.ssh import SSHConnection, SSHTarget
from .drivers.xen import XenDriver, detect_toolstack
from .drivers.xen_parse import Domain, DomainDetail
from .models import VM, Host, MemoryProfile, Site, VMAllocation, VMDisk, VMInterface
from .services import NORMAL_PROFILE
from .validators import validate_bridge_name

LAN_ROLE_BY_BRIDGE = {"xenbr0": LanRoleChoices.USER, "xenbr1": LanRoleChoices.BACKUP}


@dataclass
class EnrollResult:
    host: str
    created: bool
    fingerprint: str
    toolstack: str
    ram_mb: int
    free_mb: int
    cpus: int
    xen_version: str


def host_enroll(
    *,
    name: str,
    site_code: str,
    address: str,
    port: int,
    user: str,
    key_path: str,
    fingerprint: str,
    bridges: list[str] | None = None,
) -> EnrollResult:
    """Pin ``fingerprint`` (already shown to and accepted by a person), connect with it,
    read `xl info` (or `xm info`) and record the host. Nothing is saved unless the
    connection with the pinned key worked."""
    try:
        site = Site.objects.get(code=site_code)
    except Site.DoesNotExist:
        known = ", ".join(Site.objects.values_list("code", flat=True)) or "none"
        raise ValidationError({"site": f"no site {site_code!r} (known: {known})"}) from None
    target = SSHTarget(
        name=name, address=address, port=port, user=user, key_path=key_path, fingerprint=fingerprint
    )
    with SSHConnection(target) as conn:
        toolstack = detect_toolstack(conn)
        info = XenDriver(conn, toolstack).info()
    host = Host.objects.filter(name=name).first()
    created = host is None
    host = host or Host(name=name)
    host.site = site
    host.address = address
    host.ssh_port = port
    host.ssh_user = user
    host.ssh_key_path = key_path
    host.host_key_fingerprint = fingerprint
    host.ram_mb = info.total_memory_mb
    host.cpus = info.nr_cpus
    host.toolstack = toolstack
    host.xen_version = info.xen_version
    if bridges is not None:
        host.bridges = bridges
    host.enrolled_at = host.last_seen = timezone.now()
    host.full_clean()
    host.save()
    return EnrollResult(
        host=name,
        created=created,
        fingerprint=fingerprint,
        toolstack=toolstack,
        ram_mb=info.total_memory_mb,
        free_mb=info.free_memory_mb,
        cpus=info.nr_cpus,
        xen_version=info.xen_version,
    )


@dataclass
class DiscoveryReport:
    host: str
    found: list[dict] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dom0_memory_mb: int | None = None
    # Inventory VMs last seen running here that the host no longer lists: kept, marked stopped.
    not_running: list[str] = field(default_factory=list)
    # Bridges the host's running domains are attached to that its record lacked.
    bridges_learned: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _skip_reason(domain: Domain) -> str | None:
    if domain.is_null_name:
        return "name is (null): the domain is being torn down and has no name any more"
    if domain.dying:
        return "dying: the domain is being destroyed"
    if domain.crashed:
        return "crashed: a person must look at it before drportal records it"
    if domain.is_inactive:
        return "defined but not running (no domain id)"
    return None


def _observed_state(domain: Domain) -> str:
    if domain.paused:
        return DomainStateChoices.PAUSED
    return DomainStateChoices.RUNNING if domain.is_alive else DomainStateChoices.STOPPED


def host_discover(*, host: Host) -> DiscoveryReport:
    """List the host's domains over SSH and bring the inventory up to date."""
    report = DiscoveryReport(host=host.name)
    with SSHConnection(ssh_target(host)) as conn:
        xen = XenDriver(conn, host.toolstack)
        domains = xen.list_domains()
        details, warnings = xen.list_long()
    report.warnings.extend(warnings)
    report.warnings.extend(
        f"{d.name}: NIC {nic.mac} not recorded: `{host.toolstack} list -l` does not say its bridge "
        "(xl's S-expression listing never prints one); add it by hand"
        for d in details
        for nic in d.nics
        if nic.bridge is None
    )
    by_name: dict[str, DomainDetail] = {d.name: d for d in details}
    now = timezone.now()
    with transaction.atomic():
        normal = MemoryProfile.objects.filter(name=NORMAL_PROFILE, lost_site__isnull=True).first()
        report.bridges_learned = _learn_bridges(host, domains, details)
        for domain in domains:
            report.found.append(
                {
                    "name": domain.name,
                    "domid": domain.domid,
                    "memory_mb": domain.memory_mb,
                    "state": domain.state,
                }
            )
            if domain.is_dom0:
                report.dom0_memory_mb = domain.memory_mb
                continue
            reason = _skip_reason(domain)
            if reason:
                report.skipped.append({"name": domain.name, "reason": reason})
                continue
            try:
                with transaction.atomic():
                    outcome = _record(host, domain, by_name.get(domain.name), normal, now)
            except ValidationError as exc:
                details_text = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
                report.skipped.append(
                    {"name": domain.name, "reason": f"refused by the inventory: {details_text}"}
                )
                continue
            getattr(report, outcome).append(domain.name)
        report.not_running = _mark_not_running(host, {domain.name for domain in domains}, now)
        host.last_seen = now
        update = ["last_seen"]
        if report.dom0_memory_mb is not None:
            host.dom0_memory_mb = report.dom0_memory_mb
            update.append("dom0_memory_mb")
        host.save(update_fields=update)
    return report


def _learn_bridges(host: Host, domains: list[Domain], details: list[DomainDetail]) -> list[str]:
    """A running domain's vifs are attached to bridges the host has. Without this, every
    NIC of a host enrolled without ``--bridge`` is refused by the inventory."""
    alive = {d.name for d in domains if not d.is_dom0 and _skip_reason(d) is None}
    seen = {nic.bridge for d in details if d.name in alive for nic in d.nics if nic.bridge}
    learned = []
    for bridge in sorted(seen - set(host.bridges or ())):
        try:
            validate_bridge_name(bridge)
        except ValidationError:
            continue  # the NIC itself will be refused, with the reason
        learned.append(bridge)
    if learned:
        host.bridges = [*(host.bridges or ()), *learned]
        host.save(update_fields=["bridges"])
    return learned


def _mark_not_running(host: Host, listed: set[str], now) -> list[str]:
    """VMs last observed on ``host`` that it no longer lists: never deleted, but no longer
    shown as running there either."""
    names = []
    for vm in VM.objects.filter(observed_host=host).exclude(name__in=listed).order_by("name"):
        names.append(vm.name)
        if vm.observed_state != DomainStateChoices.STOPPED or vm.observed_memory_mb is not None:
            vm.observed_state = DomainStateChoices.STOPPED
            vm.observed_memory_mb = None
            vm.observed_at = now
            vm.save(update_fields=["observed_state", "observed_memory_mb", "observed_at"])
    return names


def _record(host: Host, domain: Domain, detail: DomainDetail | None, normal, now) -> str:
    vm = VM.objects.filter(name=domain.name).first()
    outcome = "created" if vm is None else "updated"
    before = None if vm is None else (vm.vcpus, vm.observed_state, vm.observed_host_id, vm.observed_memory_mb)
    if vm is None:
        vm = VM(name=domain.name, home_host=host, config_path=reference.vm_config_path(domain.name), tier=3)
    vm.vcpus = domain.vcpus
    vm.observed_state = _observed_state(domain)
    vm.observed_host = host
    vm.observed_memory_mb = domain.memory_mb
    vm.observed_at = now
    vm.full_clean()
    vm.save()
    changed = before != (vm.vcpus, vm.observed_state, vm.observed_host_id, vm.observed_memory_mb)
    if detail is not None:
        for nic in detail.nics:
            if nic.mac and nic.bridge and not VMInterface.objects.filter(mac=nic.mac).exists():
                row = VMInterface(
                    vm=vm,
                    index=vm.interfaces.count(),
                    mac=nic.mac,
                    bridge=nic.bridge,
                    lan_role=LAN_ROLE_BY_BRIDGE.get(nic.bridge, LanRoleChoices.USER),
                )
                row.full_clean()
                row.save()
                changed = True
        for disk in detail.disks:
            if not vm.disks.filter(vdev=disk.vdev).exists():
                row = VMDisk(vm=vm, target=disk.target, vdev=disk.vdev, writable=disk.mode == "w")
                row.full_clean()
                row.save()
                changed = True
    if normal is not None and not VMAllocation.objects.filter(profile=normal, vm=vm).exists():
        VMAllocation.objects.create(profile=normal, vm=vm, host=host, memory_mb=domain.memory_mb)
        changed = True
    if outcome == "updated" and not changed:
        return "unchanged"
    return outcome
