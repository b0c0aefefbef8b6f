"""Shapes of the API: inventory rows (read-only model serializers), the dicts the
selectors return (plain serializers, so the schema describes what is really sent: every
response goes through one), and the inputs of the write endpoints.

Longer than 400 lines on purpose: it is the API's whole vocabulary (the OpenAPI schema's
components), one short section per resource, read together whenever the schema changes.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate
from django.utils import timezone
from rest_framework import serializers

from failover.choices import (
    ActionStateChoices,
    DisasterClassChoices,
    EventCategoryChoices,
    RunKindChoices,
    RunModeChoices,
    RunStateChoices,
    StepStateChoices,
)
from failover.models import Disaster, Run
from failover.readiness.choices import SeverityChoices, VerdictChoices
from failover.runs.drill import DRILL_HOLD_MAX_MINUTES
from hosts.choices import ReplicationModeChoices, ReplicationStateChoices
from hosts.models import (
    VM,
    DRGroup,
    Host,
    HostAllocation,
    MemoryProfile,
    Site,
    VMAllocation,
    VMDisk,
    VMInterface,
)


def _name(**kwargs) -> serializers.SlugRelatedField:
    return serializers.SlugRelatedField(slug_field="name", read_only=True, **kwargs)


def _code(**kwargs) -> serializers.SlugRelatedField:
    return serializers.SlugRelatedField(slug_field="code", read_only=True, **kwargs)


# -- inventory -------------------------------------------------------------------------------


class SiteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = ("id", "code", "name", "role", "description")


class HostSerializer(serializers.ModelSerializer):
    site = _code()

    class Meta:
        model = Host
        fields = (
            "id",
            "name",
            "site",
            "address",
            "ssh_port",
            "ssh_user",
            "host_key_fingerprint",
            "ram_mb",
            "cpus",
            "toolstack",
            "bridges",
            "xen_version",
            "dom0_memory_mb",
            "enrolled_at",
            "last_seen",
        )


class InterfaceSerializer(serializers.ModelSerializer):
    class Meta:
        model = VMInterface
        fields = ("index", "mac", "bridge", "lan_role")


class DiskSerializer(serializers.ModelSerializer):
    class Meta:
        model = VMDisk
        fields = ("target", "vdev", "writable")


class VMAllocationOfVMSerializer(serializers.ModelSerializer):
    profile = _name()
    host = _name()

    class Meta:
        model = VMAllocation
        fields = ("profile", "host", "memory_mb")


class VMSerializer(serializers.ModelSerializer):
    home_host = _name()
    home_site = serializers.CharField(source="home_host.site.code", read_only=True)
    dr_group = _name(allow_null=True)
    depends_on = _name(many=True)
    observed_host = _name(allow_null=True)
    interfaces = InterfaceSerializer(many=True, read_only=True)
    disks = DiskSerializer(many=True, read_only=True)
    allocations = VMAllocationOfVMSerializer(many=True, read_only=True)

    class Meta:
        model = VM
        fields = (
            "id",
            "name",
            "home_host",
            "home_site",
            "dr_group",
            "tier",
            "vcpus",
            "storage_gb",
            "config_path",
            "depends_on",
            "description",
            "address",
            "observed_state",
            "observed_host",
            "observed_memory_mb",
            "observed_at",
            "interfaces",
            "disks",
            "allocations",
        )


class DRGroupSerializer(serializers.ModelSerializer):
    source_array = _name()
    source_site = serializers.CharField(source="source_array.site.code", read_only=True)
    target_array = _name(allow_null=True)
    target_site = serializers.CharField(
        source="target_array.site.code", read_only=True, allow_null=True, default=None
    )
    vms = _name(many=True)

    class Meta:
        model = DRGroup
        fields = (
            "id",
            "name",
            "source_array",
            "source_site",
            "target_array",
            "target_site",
            "mode",
            "replication_state",
            "replication_lag_s",
            "state_checked_at",
            "vms",
        )


class ProfileVMAllocationSerializer(serializers.ModelSerializer):
    vm = _name()
    host = _name()

    class Meta:
        model = VMAllocation
        fields = ("id", "vm", "host", "memory_mb")


class ProfileHostAllocationSerializer(serializers.ModelSerializer):
    host = _name()

    class Meta:
        model = HostAllocation
        fields = ("id", "host", "dom0_memory_mb")


class MemoryProfileSerializer(serializers.ModelSerializer):
    lost_site = _code(allow_null=True)
    vm_allocations = ProfileVMAllocationSerializer(many=True, read_only=True)
    host_allocations = ProfileHostAllocationSerializer(many=True, read_only=True)

    class Meta:
        model = MemoryProfile
        fields = ("id", "name", "lost_site", "description", "vm_allocations", "host_allocations")


# -- capacity and readiness ------------------------------------------------------------------


class PlacedSerializer(serializers.Serializer):
    vm = serializers.CharField()
    memory_mb = serializers.IntegerField()


class HostResultSerializer(serializers.Serializer):
    host = serializers.CharField()
    site = serializers.CharField()
    ram_mb = serializers.IntegerField()
    reserve_mb = serializers.IntegerField()
    dom0_mb = serializers.IntegerField()
    used_mb = serializers.IntegerField(help_text="VMs + dom0")
    free_mb = serializers.IntegerField()
    fits = serializers.BooleanField()
    shortfall_mb = serializers.IntegerField()
    placed = PlacedSerializer(many=True)


class UnrecoverableSerializer(serializers.Serializer):
    vm = serializers.CharField()
    reason = serializers.CharField()


class CapacityResultSerializer(serializers.Serializer):
    scenario = serializers.CharField()
    lost_site = serializers.CharField(allow_null=True, help_text="null: normal operation")
    fits = serializers.BooleanField()
    shortfall_mb = serializers.IntegerField()
    hosts = HostResultSerializer(many=True, help_text="the surviving hosts")
    unrecoverable = UnrecoverableSerializer(many=True)
    unplaced = serializers.ListField(child=serializers.CharField())
    unplaced_reasons = serializers.DictField(child=serializers.CharField())
    shed = serializers.ListField(
        child=serializers.CharField(), help_text="VMs to leave off to make it fit, least important first"
    )


class CapacityQuerySerializer(serializers.Serializer):
    lost_site = serializers.CharField(
        required=False, help_text="only the what-if of losing this site (its code); all of them without"
    )

    def validate_lost_site(self, value: str) -> str:
        if not Site.objects.filter(code=value).exists():
            raise serializers.ValidationError(f"no site {value!r}")
        return value


class FindingSerializer(serializers.Serializer):
    severity = serializers.ChoiceField(choices=SeverityChoices.choices)
    code = serializers.CharField(help_text="what it is about, e.g. config-missing, rpo, capacity")
    subject = serializers.CharField(help_text="the host, DR group or VM")
    message = serializers.CharField()
    fix = serializers.CharField(help_text="what to do")


class SiteReadinessSerializer(serializers.Serializer):
    site = serializers.CharField()
    name = serializers.CharField()
    verdict = serializers.ChoiceField(
        choices=VerdictChoices.choices, allow_null=True, help_text="null: not checked yet"
    )
    ready = serializers.BooleanField(help_text="this site could be lost today")
    checked_at = serializers.DateTimeField(allow_null=True)
    since = serializers.DateTimeField(allow_null=True, help_text="when the verdict last changed")
    findings = FindingSerializer(many=True, help_text="critical first")


class GroupReadinessSerializer(serializers.Serializer):
    name = serializers.CharField()
    source_site = serializers.CharField()
    target_site = serializers.CharField(allow_null=True)
    mode = serializers.ChoiceField(choices=ReplicationModeChoices.choices)
    replication_state = serializers.ChoiceField(choices=ReplicationStateChoices.choices)
    replication_lag_s = serializers.FloatField(allow_null=True)
    state_checked_at = serializers.DateTimeField(allow_null=True)


class ReadinessSerializer(serializers.Serializer):
    sites = SiteReadinessSerializer(many=True)
    groups = GroupReadinessSerializer(many=True)


# -- runs ------------------------------------------------------------------------------------


class DisasterSerializer(serializers.ModelSerializer):
    lost_site = _code()
    declared_by = serializers.CharField(source="declared_by.get_username", read_only=True)
    approved_by = serializers.CharField(
        source="approved_by.get_username", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = Disaster
        fields = (
            "id",
            "lost_site",
            "disaster_class",
            "category",
            "detected_at",
            "declared_at",
            "declared_by",
            "approved_by",
            "deadline",
            "notes",
        )


class RunSerializer(serializers.ModelSerializer):
    lost_site = _code()
    target_site = _code()
    created_by = serializers.CharField(source="created_by.get_username", read_only=True)
    disaster = DisasterSerializer(read_only=True, allow_null=True)
    run_seconds = serializers.SerializerMethodField()
    recovery_seconds = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = (
            "id",
            "kind",
            "mode",
            "state",
            "lost_site",
            "target_site",
            "created_by",
            "created_at",
            "finished_at",
            "run_seconds",
            "recovery_seconds",
            "disaster",
        )

    def get_run_seconds(self, run: Run) -> float | None:
        return run.summary.get("run_seconds")

    def get_recovery_seconds(self, run: Run) -> float | None:
        return run.summary.get("recovery_seconds")


class RunFilterSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=RunKindChoices.choices, required=False)
    state = serializers.ChoiceField(choices=RunStateChoices.choices, required=False)


class SummaryActionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    target = serializers.CharField()
    host = serializers.CharField()
    state = serializers.ChoiceField(choices=ActionStateChoices.choices)
    attempts = serializers.IntegerField()
    minutes = serializers.FloatField(allow_null=True)
    outcome = serializers.CharField()
    error = serializers.CharField()
    reason = serializers.CharField()


class SummaryStepSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    key = serializers.CharField()
    name = serializers.CharField()
    state = serializers.ChoiceField(choices=StepStateChoices.choices)
    planned_minutes = serializers.FloatField()
    actual_minutes = serializers.FloatField(allow_null=True)
    actions = SummaryActionSerializer(many=True)


class RunSummarySerializer(serializers.Serializer):
    """``failover.runs.selectors.run_summary``: what the CLI's --json prints."""

    run = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=RunKindChoices.choices)
    mode = serializers.ChoiceField(choices=RunModeChoices.choices)
    state = serializers.ChoiceField(choices=RunStateChoices.choices)
    lost_site = serializers.CharField()
    target_site = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    deadline = serializers.DateTimeField(allow_null=True)
    recovery_seconds = serializers.FloatField(allow_null=True)
    run_seconds = serializers.FloatField(allow_null=True)
    overrides = serializers.ListField(child=serializers.DictField())
    steps = SummaryStepSerializer(many=True)


class EventSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    kind = serializers.CharField()
    message = serializers.CharField()
    at = serializers.DateTimeField()
    action = serializers.IntegerField(allow_null=True)
    user = serializers.CharField(allow_null=True)
    step = serializers.IntegerField(allow_null=True)


class EventPageSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    state = serializers.ChoiceField(choices=RunStateChoices.choices)
    seq = serializers.IntegerField(
        help_text="the run's last event number: ask again with after=<the last seq you got> for more"
    )
    events = EventSerializer(many=True)


class EventQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(
        required=False, default=0, min_value=0, help_text="only events numbered above this"
    )


# -- declaring -------------------------------------------------------------------------------


class PlanQuerySerializer(serializers.Serializer):
    lost_site = serializers.CharField(help_text="the code of the site to lose")

    def validate_lost_site(self, value: str) -> str:
        if not Site.objects.filter(code=value).exists():
            raise serializers.ValidationError(f"no site {value!r}")
        return value


class PlanPreviewSerializer(serializers.Serializer):
    lost_site = serializers.CharField()
    digest = serializers.CharField(help_text="send it as plan_digest to declare exactly this plan")
    plan = serializers.DictField(
        help_text="failover.runs.plan.Plan.as_dict(): actions, starts, blocking, ..."
    )


class DeclareSerializer(serializers.Serializer):
    lost_site = serializers.CharField(max_length=16, help_text="the code of the lost site")
    disaster_class = serializers.ChoiceField(choices=DisasterClassChoices.choices)
    category = serializers.ChoiceField(choices=EventCategoryChoices.choices)
    detected_at = serializers.DateTimeField(
        required=False, help_text="when the event was noticed (the deadline counts from here); default now"
    )
    confirm_detected_at = serializers.BooleanField(
        default=False,
        help_text="detected_at is right though more than DRPORTAL_DETECTED_MAX_AGE_H hours ago",
    )
    confirm_isolated = serializers.BooleanField(
        default=False, help_text="the lost site is powered off or cut off from the storage network"
    )
    override_reason = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="needed when the plan has blocking problems"
    )
    notes = serializers.CharField(required=False, allow_blank=True, default="")
    plan_digest = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="from GET /api/plan/: refuse (409) if the plan has changed since",
    )
    approver_username = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="four-eyes rule: a second Manager on Duty"
    )
    approver_password = serializers.CharField(
        required=False, allow_blank=True, default="", write_only=True, style={"input_type": "password"}
    )

    def validate_lost_site(self, value: str) -> str:
        if not Site.objects.filter(code=value).exists():
            raise serializers.ValidationError(f"no site {value!r}")
        return value

    def validate(self, data: dict) -> dict:
        data.setdefault("detected_at", timezone.now())
        data["approver"] = None
        name, password = data.pop("approver_username"), data.pop("approver_password")
        if not settings.DRPORTAL_FOUR_EYES and (name or password):
            # Checked before any authenticate(): otherwise a MoD token could test passwords.
            sent = [
                field
                for field, value in (("approver_username", name), ("approver_password", password))
                if value
            ]
            raise serializers.ValidationError(
                {
                    field: "the four-eyes rule is off (DRPORTAL_FOUR_EYES): leave the approver fields out"
                    for field in sent
                }
            )
        if name or password:
            approver = authenticate(self.context["request"]._request, username=name, password=password)
            if approver is None:
                raise serializers.ValidationError({"approver_username": "wrong user name or password"})
            data["approver"] = approver
        return data

    def declaration(self) -> dict:
        """The keyword arguments of ``runs.failover.disaster_declare`` this input supplies."""
        d = self.validated_data
        keys = (
            "lost_site",
            "disaster_class",
            "category",
            "override_reason",
            "confirm_isolated",
            "confirm_detected_at",
            "notes",
        )
        return {k: d[k] for k in keys} | {"detected_at": d["detected_at"], "approver": d["approver"]}


class DrillSerializer(serializers.Serializer):
    site = serializers.CharField(help_text="the code of the site whose loss the drill rehearses")
    shrink = serializers.BooleanField(
        default=False, help_text="shrink production at the surviving site to its disaster memory"
    )
    hold_minutes = serializers.FloatField(
        default=0,
        min_value=0,
        max_value=DRILL_HOLD_MAX_MINUTES,
        help_text="keep the clones up this long for people to test (minutes, at most a week)",
    )
    vms = serializers.ListField(
        child=serializers.CharField(), default=list, help_text="drill only these VMs (a partial drill)"
    )
    override_reason = serializers.CharField(required=False, allow_blank=True, default="")

    def validate_site(self, value: str) -> str:
        if not Site.objects.filter(code=value).exists():
            raise serializers.ValidationError(f"no site {value!r}")
        return value


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()
