"""The estate: sites, arrays, dom0 hosts, VMs, DR groups and memory profiles.

Row-local facts and invariants live here (``clean()`` and database constraints);
rules that span rows (does a profile still fit in RAM?) live in ``hosts.services``.

Longer than 400 lines on purpose: the inventory's models written out in full (NetBox's
habit: every field with its verbose name, constraints and clean()), one app's schema.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from .choices import (
    ArrayKindChoices,
    DomainStateChoices,
    LanRoleChoices,
    ReplicationModeChoices,
    ReplicationStateChoices,
    SiteRoleChoices,
    ToolstackChoices,
)
from .validators import (
    validate_abs_path,
    validate_address,
    validate_bridge_list,
    validate_bridge_name,
    validate_domain_name,
    validate_fingerprint,
    validate_host_name,
    validate_key_path_in_dir,
    validate_mac,
    validate_private_key_path,
    validate_ssh_user,
    validate_vm_name_not_reserved,
)


class Site(models.Model):
    code = models.CharField(
        verbose_name=_("code"),
        max_length=16,
        unique=True,
        validators=[validate_host_name],
        help_text=_("Short code such as WSL or KA."),
    )
    name = models.CharField(verbose_name=_("name"), max_length=100, unique=True)
    role = models.CharField(verbose_name=_("role"), max_length=16, choices=SiteRoleChoices.choices)
    description = models.TextField(verbose_name=_("description"), blank=True)

    class Meta:
        ordering = ("code",)
        verbose_name = _("site")
        verbose_name_plural = _("sites")

    def __str__(self) -> str:
        return f"{self.code} ({self.name})"


class StorageArray(models.Model):
    site = models.ForeignKey(
        to="hosts.Site", on_delete=models.PROTECT, related_name="arrays", verbose_name=_("site")
    )
    name = models.CharField(
        verbose_name=_("name"), max_length=64, unique=True, validators=[validate_host_name]
    )
    kind = models.CharField(verbose_name=_("kind"), max_length=16, choices=ArrayKindChoices.choices)
    model = models.CharField(verbose_name=_("model"), max_length=100, blank=True)
    system_name = models.CharField(
        verbose_name=_("system name"),
        max_length=64,
        blank=True,
        validators=[validate_host_name],
        help_text=_("The array's name as its management tool knows it (SSSU: SELECT SYSTEM)."),
    )
    management_address = models.CharField(
        verbose_name=_("management address"), max_length=255, blank=True, validators=[validate_address]
    )
    management_port = models.PositiveIntegerField(
        verbose_name=_("management SSH port"), default=22, validators=[MaxValueValidator(65535)]
    )
    management_user = models.CharField(verbose_name=_("management user"), max_length=32, default="root")
    host_key_fingerprint = models.CharField(
        verbose_name=_("pinned host key"), max_length=51, blank=True, validators=[validate_fingerprint]
    )
    sssu_login_file = models.CharField(
        verbose_name=_("SSSU login file"),
        max_length=255,
        blank=True,
        validators=[validate_abs_path],
        help_text=_(
            "HP EVA only: path, on the management host, of the root-only (0600) SSSU script holding "
            "SELECT MANAGER <manager> USERNAME=<user> PASSWORD=<password>. drportal runs it with SSSU's "
            "FILE command and never sees the password."
        ),
    )

    class Meta:
        ordering = ("site__code", "name")
        verbose_name = _("storage array")
        verbose_name_plural = _("storage arrays")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.kind == ArrayKindChoices.EVA_CA and not self.sssu_login_file:
            raise ValidationError(
                {
                    "sssu_login_file": _(
                        "An HP EVA array needs its SSSU login file: the path, on the management host, of "
                        "the root-only script with SELECT MANAGER ... USERNAME=... PASSWORD=... (SSSU "
                        "needs the password, and drportal never puts it on a command line)."
                    )
                }
            )


class Host(models.Model):
    """A Xen dom0."""

    site = models.ForeignKey(
        to="hosts.Site", on_delete=models.PROTECT, related_name="hosts", verbose_name=_("site")
    )
    name = models.CharField(
        verbose_name=_("name"), max_length=64, unique=True, validators=[validate_host_name]
    )
    address = models.CharField(verbose_name=_("address"), max_length=255, validators=[validate_address])
    ssh_port = models.PositiveIntegerField(
        verbose_name=_("SSH port"), default=22, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    ssh_user = models.CharField(
        verbose_name=_("SSH user"), max_length=32, default="root", validators=[validate_ssh_user]
    )
    ssh_key_path = models.CharField(
        verbose_name=_("private key"),
        max_length=255,
        blank=True,
        help_text=_("Path of the private key on the workers (never the key itself)."),
        validators=[validate_private_key_path, validate_key_path_in_dir],
    )
    host_key_fingerprint = models.CharField(
        verbose_name=_("pinned host key"),
        max_length=51,
        blank=True,
        validators=[validate_fingerprint],
        help_text=_("SHA256 fingerprint pinned at enrollment; every connection is checked against it."),
    )
    ram_mb = models.PositiveIntegerField(verbose_name=_("RAM (MB)"), validators=[MinValueValidator(1)])
    cpus = models.PositiveSmallIntegerField(verbose_name=_("CPUs"), default=1)
    toolstack = models.CharField(
        verbose_name=_("toolstack"), max_length=2, choices=ToolstackChoices.choices, default="xl"
    )
    bridges = models.JSONField(
        verbose_name=_("bridges"), default=list, blank=True, validators=[validate_bridge_list]
    )
    xen_version = models.CharField(verbose_name=_("Xen version"), max_length=32, blank=True)
    dom0_memory_mb = models.PositiveIntegerField(
        verbose_name=_("observed dom0 memory (MB)"),
        null=True,
        blank=True,
        help_text=_("Domain-0's memory as discovery last saw it."),
    )
    enrolled_at = models.DateTimeField(verbose_name=_("enrolled at"), null=True, blank=True)
    last_seen = models.DateTimeField(verbose_name=_("last seen"), null=True, blank=True)

    class Meta:
        ordering = ("site__code", "name")
        verbose_name = _("host (dom0)")
        verbose_name_plural = _("hosts (dom0)")
        constraints = [
            models.CheckConstraint(condition=Q(ram_mb__gt=0), name="hosts_host_ram_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("dashboard") + f"#host-{self.pk}"

    def missing_bridges(self, wanted) -> list[str]:
        return sorted(set(wanted) - set(self.bridges or ()))


class VM(models.Model):
    name = models.CharField(
        verbose_name=_("domain name"),
        max_length=64,
        unique=True,
        validators=[validate_domain_name, validate_vm_name_not_reserved],
    )
    home_host = models.ForeignKey(
        to="hosts.Host", on_delete=models.PROTECT, related_name="home_vms", verbose_name=_("home host")
    )
    dr_group = models.ForeignKey(
        to="hosts.DRGroup",
        on_delete=models.PROTECT,
        related_name="vms",
        null=True,
        blank=True,
        verbose_name=_("DR group"),
    )
    vcpus = models.PositiveSmallIntegerField(
        verbose_name=_("vCPUs"), default=1, validators=[MinValueValidator(1)]
    )
    storage_gb = models.PositiveIntegerField(verbose_name=_("storage (GB)"), default=0)
    config_path = models.CharField(
        verbose_name=_("config file"),
        max_length=255,
        validators=[validate_abs_path],
        help_text=_("Domain config on the dom0, e.g. /etc/xen/vm/lws-xen01."),
    )
    tier = models.PositiveSmallIntegerField(
        verbose_name=_("priority tier"),
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        help_text=_("1 starts first and is shed last; 5 starts last and is shed first."),
    )
    depends_on = models.ManyToManyField(
        to="self", symmetrical=False, blank=True, related_name="dependants", verbose_name=_("depends on")
    )
    description = models.TextField(verbose_name=_("what it does"), blank=True)
    address = models.CharField(
        verbose_name=_("service address"),
        max_length=255,
        blank=True,
        validators=[validate_address],
        help_text=_("Where its functional checks reach it (IP or DNS name)."),
    )
    drill_address = models.CharField(
        verbose_name=_("drill address"),
        max_length=255,
        blank=True,
        validators=[validate_address],
        help_text=_(
            "Where its drill clone answers on the isolated drill network (IP or DNS name); "
            "without one, a drill records its checks as 'note'."
        ),
    )
    # The VM's own SSH, for functional checks that run a command on it (the workers' key,
    # settings.DRPORTAL_SSH_KEY, logs in; the host key is pinned like a dom0's).
    ssh_port = models.PositiveIntegerField(
        verbose_name=_("SSH port"), default=22, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    ssh_user = models.CharField(
        verbose_name=_("SSH user"), max_length=32, default="root", validators=[validate_ssh_user]
    )
    host_key_fingerprint = models.CharField(
        verbose_name=_("pinned host key"),
        max_length=51,
        blank=True,
        validators=[validate_fingerprint],
        help_text=_("SHA256 fingerprint of the VM's SSH host key; SSH checks refuse any other key."),
    )
    observed_state = models.CharField(
        verbose_name=_("observed state"),
        max_length=16,
        choices=DomainStateChoices.choices,
        default=DomainStateChoices.UNKNOWN,
    )
    observed_host = models.ForeignKey(
        to="hosts.Host",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("observed on"),
    )
    observed_memory_mb = models.PositiveIntegerField(
        verbose_name=_("observed memory (MB)"), null=True, blank=True
    )
    observed_at = models.DateTimeField(verbose_name=_("observed at"), null=True, blank=True)

    class Meta:
        ordering = ("tier", "name")
        verbose_name = _("virtual machine")
        verbose_name_plural = _("virtual machines")
        constraints = [
            models.CheckConstraint(condition=Q(tier__gte=1) & Q(tier__lte=5), name="hosts_vm_tier_1_to_5"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.pk and self.home_host_id:
            needed = set(self.interfaces.values_list("bridge", flat=True))
            missing = self.home_host.missing_bridges(needed)
            if missing:
                raise ValidationError(
                    {
                        "home_host": _("%(host)s lacks bridge(s) %(missing)s that this VM's NICs use.")
                        % {"host": self.home_host, "missing": ", ".join(missing)}
                    }
                )


class VMInterface(models.Model):
    vm = models.ForeignKey(
        to="hosts.VM", on_delete=models.CASCADE, related_name="interfaces", verbose_name=_("VM")
    )
    index = models.PositiveSmallIntegerField(verbose_name=_("index"), default=0)
    mac = models.CharField(verbose_name=_("MAC"), max_length=17, unique=True, validators=[validate_mac])
    bridge = models.CharField(verbose_name=_("bridge"), max_length=15, validators=[validate_bridge_name])
    lan_role = models.CharField(verbose_name=_("LAN role"), max_length=16, choices=LanRoleChoices.choices)

    class Meta:
        ordering = ("vm", "index")
        verbose_name = _("VM interface")
        verbose_name_plural = _("VM interfaces")
        constraints = [
            models.UniqueConstraint(fields=("vm", "index"), name="hosts_vminterface_unique_vm_index"),
        ]

    def __str__(self) -> str:
        return f"{self.vm} vif{self.index} {self.mac} on {self.bridge}"

    def clean(self) -> None:
        super().clean()
        if self.mac:
            self.mac = self.mac.lower()
        if self.vm_id and self.bridge:
            missing = self.vm.home_host.missing_bridges([self.bridge])
            if missing:
                raise ValidationError(
                    {
                        "bridge": _("Host %(host)s has no bridge %(bridge)s (it offers: %(offers)s).")
                        % {
                            "host": self.vm.home_host,
                            "bridge": self.bridge,
                            "offers": ", ".join(self.vm.home_host.bridges) or "none",
                        }
                    }
                )


class VMDisk(models.Model):
    vm = models.ForeignKey(
        to="hosts.VM", on_delete=models.CASCADE, related_name="disks", verbose_name=_("VM")
    )
    target = models.CharField(verbose_name=_("block device"), max_length=255, validators=[validate_abs_path])
    vdev = models.CharField(
        verbose_name=_("virtual device"), max_length=16, validators=[validate_bridge_name]
    )
    writable = models.BooleanField(verbose_name=_("writable"), default=True)

    class Meta:
        ordering = ("vm", "vdev")
        verbose_name = _("VM disk")
        verbose_name_plural = _("VM disks")
        constraints = [
            models.UniqueConstraint(fields=("vm", "vdev"), name="hosts_vmdisk_unique_vm_vdev"),
        ]

    def __str__(self) -> str:
        return f"{self.target},{self.vdev},{'w' if self.writable else 'r'}"


class DRGroup(models.Model):
    """A replicated LUN (HP Continuous Access DR group, a DRBD resource, an RBD image)."""

    name = models.CharField(
        verbose_name=_("name"), max_length=64, unique=True, validators=[validate_domain_name]
    )
    source_array = models.ForeignKey(
        to="hosts.StorageArray",
        on_delete=models.PROTECT,
        related_name="source_groups",
        verbose_name=_("source array"),
    )
    target_array = models.ForeignKey(
        to="hosts.StorageArray",
        on_delete=models.PROTECT,
        related_name="target_groups",
        null=True,
        blank=True,
        verbose_name=_("target array"),
        help_text=_("Empty when the group has no replica: losing its site loses its VMs."),
    )
    mode = models.CharField(
        verbose_name=_("replication mode"),
        max_length=8,
        choices=ReplicationModeChoices.choices,
        default=ReplicationModeChoices.ASYNC,
    )
    replication_state = models.CharField(
        verbose_name=_("last known replication state"),
        max_length=16,
        choices=ReplicationStateChoices.choices,
        default=ReplicationStateChoices.UNKNOWN,
    )
    replication_lag_s = models.FloatField(verbose_name=_("replication lag (s)"), null=True, blank=True)
    state_checked_at = models.DateTimeField(verbose_name=_("state checked at"), null=True, blank=True)

    class Meta:
        ordering = ("name",)
        verbose_name = _("DR group")
        verbose_name_plural = _("DR groups")
        constraints = [
            models.CheckConstraint(
                condition=~Q(source_array=models.F("target_array")),
                name="hosts_drgroup_source_is_not_target",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def replicated(self) -> bool:
        return self.target_array_id is not None

    def clean(self) -> None:
        super().clean()
        same_site = (
            self.source_array_id
            and self.target_array_id
            and self.source_array.site_id == self.target_array.site_id
        )
        if same_site:
            raise ValidationError(
                {
                    "target_array": _(
                        "Source and target array are both at %(site)s: a DR group must replicate to another site."
                    )
                    % {"site": self.source_array.site.code}
                }
            )
        if self.target_array_id is None and self.replication_state not in (
            ReplicationStateChoices.NONE,
            ReplicationStateChoices.UNKNOWN,
        ):
            raise ValidationError(
                {"replication_state": _("A group with no target array has no replication state.")}
            )


class MemoryProfile(models.Model):
    """A named scenario: where each VM runs and with how much memory, and each dom0's memory."""

    name = models.CharField(verbose_name=_("name"), max_length=64, unique=True)
    lost_site = models.ForeignKey(
        to="hosts.Site",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="disaster_profiles",
        verbose_name=_("lost site"),
        help_text=_("Empty for normal operation; the site whose loss this profile plans for otherwise."),
    )
    description = models.TextField(verbose_name=_("description"), blank=True)

    class Meta:
        ordering = ("lost_site__code", "name")
        verbose_name = _("memory profile")
        verbose_name_plural = _("memory profiles")
        constraints = [
            models.UniqueConstraint(
                fields=("lost_site",),
                condition=Q(lost_site__isnull=False),
                name="hosts_memoryprofile_one_per_lost_site",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_normal(self) -> bool:
        return self.lost_site_id is None


class VMAllocation(models.Model):
    profile = models.ForeignKey(
        to="hosts.MemoryProfile",
        on_delete=models.CASCADE,
        related_name="vm_allocations",
        verbose_name=_("profile"),
    )
    vm = models.ForeignKey(
        to="hosts.VM", on_delete=models.CASCADE, related_name="allocations", verbose_name=_("VM")
    )
    host = models.ForeignKey(
        to="hosts.Host", on_delete=models.PROTECT, related_name="vm_allocations", verbose_name=_("host")
    )
    memory_mb = models.PositiveIntegerField(verbose_name=_("memory (MB)"))

    class Meta:
        ordering = ("profile", "host", "vm")
        verbose_name = _("VM allocation")
        verbose_name_plural = _("VM allocations")
        constraints = [
            models.UniqueConstraint(fields=("profile", "vm"), name="hosts_vmallocation_unique_profile_vm"),
            models.CheckConstraint(condition=Q(memory_mb__gt=0), name="hosts_vmallocation_memory_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.profile}: {self.vm} on {self.host} with {self.memory_mb} MB"

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str] = {}
        if self.memory_mb is not None and self.memory_mb <= 0:
            errors["memory_mb"] = _("Memory must be more than 0 MB.")
        if self.host_id and self.memory_mb and self.memory_mb > self.host.ram_mb:
            errors["memory_mb"] = _("%(mb)s MB is more than %(host)s's RAM of %(ram)s MB.") % {
                "mb": self.memory_mb,
                "host": self.host,
                "ram": self.host.ram_mb,
            }
        if self.host_id and self.vm_id:
            missing = self.host.missing_bridges(self.vm.interfaces.values_list("bridge", flat=True))
            if missing:
                errors["host"] = _("%(host)s lacks bridge(s) %(missing)s that %(vm)s needs.") % {
                    "host": self.host,
                    "missing": ", ".join(missing),
                    "vm": self.vm,
                }
        if self.host_id and self.profile_id and self.profile.lost_site_id == self.host.site_id:
            errors["host"] = _("%(host)s is at %(site)s, the site this profile plans to lose.") % {
                "host": self.host,
                "site": self.host.site.code,
            }
        if errors:
            raise ValidationError(errors)


class HostAllocation(models.Model):
    profile = models.ForeignKey(
        to="hosts.MemoryProfile",
        on_delete=models.CASCADE,
        related_name="host_allocations",
        verbose_name=_("profile"),
    )
    host = models.ForeignKey(
        to="hosts.Host", on_delete=models.CASCADE, related_name="dom0_allocations", verbose_name=_("host")
    )
    dom0_memory_mb = models.PositiveIntegerField(verbose_name=_("dom0 memory (MB)"))

    class Meta:
        ordering = ("profile", "host")
        verbose_name = _("dom0 allocation")
        verbose_name_plural = _("dom0 allocations")
        constraints = [
            models.UniqueConstraint(
                fields=("profile", "host"), name="hosts_hostallocation_unique_profile_host"
            ),
            models.CheckConstraint(
                condition=Q(dom0_memory_mb__gt=0), name="hosts_hostallocation_dom0_memory_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.profile}: dom0 of {self.host} with {self.dom0_memory_mb} MB"

    def clean(self) -> None:
        super().clean()
        if self.host_id and self.dom0_memory_mb and self.dom0_memory_mb > self.host.ram_mb:
            raise ValidationError(
                {
                    "dom0_memory_mb": _("%(mb)s MB is more than %(host)s's RAM of %(ram)s MB.")
                    % {"mb": self.dom0_memory_mb, "host": self.host, "ram": self.host.ram_mb}
                }
            )


class FunctionalCheck(models.Model):
    """One line of a VM's test plan (thesis tables 3.1, 3.2): HTTP(S), a TCP port, or a
    command over SSH on the VM with its expected exit code."""

    class Kind(models.TextChoices):
        HTTP = "http", _("HTTP(S)")
        TCP = "tcp", _("TCP port")
        SSH = "ssh", _("Command over SSH")

    vm = models.ForeignKey(
        to="hosts.VM", on_delete=models.CASCADE, related_name="checks", verbose_name=_("VM")
    )
    name = models.CharField(verbose_name=_("name"), max_length=200)
    kind = models.CharField(verbose_name=_("kind"), max_length=8, choices=Kind.choices)
    url = models.CharField(verbose_name=_("URL"), max_length=500, blank=True, help_text=_("http(s)://..."))
    expect_status = models.PositiveSmallIntegerField(verbose_name=_("expected HTTP status"), default=200)
    expect_text = models.CharField(verbose_name=_("expected text"), max_length=200, blank=True)
    verify_tls = models.BooleanField(verbose_name=_("verify TLS"), default=True)
    port = models.PositiveIntegerField(
        verbose_name=_("TCP port"), null=True, blank=True, validators=[MaxValueValidator(65535)]
    )
    command = models.CharField(
        verbose_name=_("command"), max_length=500, blank=True, help_text=_("words, split like a shell would")
    )
    expect_exit = models.SmallIntegerField(verbose_name=_("expected exit code"), default=0)
    timeout_s = models.FloatField(verbose_name=_("timeout (s)"), default=10.0)

    class Meta:
        ordering = ("vm", "name")
        verbose_name = _("functional check")
        verbose_name_plural = _("functional checks")
        constraints = [models.UniqueConstraint(fields=("vm", "name"), name="hosts_check_unique_vm_name")]

    def __str__(self) -> str:
        return f"{self.vm}: {self.name}"

    def clean(self) -> None:
        super().clean()
        if self.kind == self.Kind.HTTP and not self.url.startswith(("http://", "https://")):
            raise ValidationError({"url": _("An HTTP check needs a URL starting with http:// or https://.")})
        if self.kind == self.Kind.TCP and not self.port:
            raise ValidationError({"port": _("A TCP check needs a port.")})
        if self.kind == self.Kind.SSH and not self.command.strip():
            raise ValidationError({"command": _("An SSH check needs a command.")})
