"""API views: parse the query or body, call one selector or service, serialize.

Permissions mirror the UI (``hosts.permissions``): every role holds the view permissions,
so helpdesk, DR admin and the Manager on Duty read everything here; declaring needs
``failover.declare_disaster`` (the Manager on Duty). See ``permissions.RolePermissions``.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from failover.models import Run
from failover.runs.drill import build_drill_plan, drill_start
from failover.runs.failover import disaster_declare
from failover.runs.preview import plan_preview
from failover.runs.selectors import events_after, run_summary
from hosts.drivers.base import DriverError
from hosts.models import VM, DRGroup, Host, MemoryProfile, Site, VMAllocation
from hosts.permissions import PERM_DECLARE
from hosts.selectors import capacity_report

from . import serializers as s
from .selectors import readiness_overview

VIEW_RUN = "failover.view_run"
VIEW_EVENTS = "failover.view_runevent"
VIEW_CAPACITY = ("hosts.view_host", "hosts.view_memoryprofile")

ERRORS = OpenApiResponse(description="field errors: {field: [messages]}")
FORBIDDEN = OpenApiResponse(s.DetailSerializer, description="the role may not do this")


def _query(serializer_class, request: Request) -> dict:
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


# -- inventory -------------------------------------------------------------------------------


@extend_schema(tags=["inventory"])
class SiteList(generics.ListAPIView):
    perms = {"GET": ("hosts.view_site",)}
    queryset = Site.objects.order_by("code")
    serializer_class = s.SiteSerializer


@extend_schema(tags=["inventory"])
class HostList(generics.ListAPIView):
    perms = {"GET": ("hosts.view_host",)}
    queryset = Host.objects.select_related("site").order_by("site__code", "name")
    serializer_class = s.HostSerializer


@extend_schema(tags=["inventory"])
class VMList(generics.ListAPIView):
    """Every VM with its NICs, disks, DR group and memory allocations (one per profile)."""

    perms = {"GET": ("hosts.view_vm",)}
    queryset = (
        VM.objects.select_related("home_host__site", "dr_group", "observed_host")
        .prefetch_related(
            "interfaces",
            "disks",
            "depends_on",
            Prefetch(
                "allocations",
                queryset=VMAllocation.objects.select_related("profile", "host").order_by("profile__name"),
            ),
        )
        .order_by("tier", "name")
    )
    serializer_class = s.VMSerializer


@extend_schema(tags=["inventory"])
class DRGroupList(generics.ListAPIView):
    perms = {"GET": ("hosts.view_drgroup",)}
    queryset = (
        DRGroup.objects.select_related("source_array__site", "target_array__site")
        .prefetch_related(Prefetch("vms", queryset=VM.objects.only("pk", "name", "dr_group_id")))
        .order_by("name")
    )
    serializer_class = s.DRGroupSerializer


@extend_schema(tags=["inventory"])
class ProfileList(generics.ListAPIView):
    """Memory profiles with their allocations: the normal one, and one per lost site."""

    perms = {"GET": ("hosts.view_memoryprofile",)}
    queryset = (
        MemoryProfile.objects.select_related("lost_site")
        .prefetch_related(
            Prefetch(
                "vm_allocations",
                queryset=VMAllocation.objects.select_related("vm", "host").order_by("host__name", "vm__name"),
            ),
            "host_allocations__host",
        )
        .order_by("lost_site__code", "name")
    )
    serializer_class = s.MemoryProfileSerializer


# -- what-ifs and readiness ------------------------------------------------------------------


class Capacity(APIView):
    perms = {"GET": VIEW_CAPACITY}

    @extend_schema(
        tags=["readiness"],
        parameters=[s.CapacityQuerySerializer],
        responses={200: s.CapacityResultSerializer(many=True), 400: ERRORS},
        description="The capacity what-ifs: normal operation and the loss of each site (or of one).",
    )
    def get(self, request: Request) -> Response:
        lost_site = _query(s.CapacityQuerySerializer, request).get("lost_site")
        results = [r.as_dict() for r in capacity_report(lost_site=lost_site)]
        return Response(s.CapacityResultSerializer(results, many=True).data)


class Readiness(APIView):
    perms = {"GET": (VIEW_RUN, "hosts.view_drgroup")}

    @extend_schema(
        tags=["readiness"],
        responses=s.ReadinessSerializer,
        description=(
            "Per site, the newest verdict of the readiness check (could it be lost today?) with "
            "its findings: replication and RPO, config files and bridges on the target dom0, "
            "capacity what-ifs, reachability and host keys, the age of the last drill. And "
            "every DR group's last known replication state and lag."
        ),
    )
    def get(self, request: Request) -> Response:
        return Response(s.ReadinessSerializer(readiness_overview()).data)


# -- runs ------------------------------------------------------------------------------------


@extend_schema(tags=["runs"], parameters=[s.RunFilterSerializer])
class RunList(generics.ListAPIView):
    """Every run (failover, drill, failback), newest first."""

    perms = {"GET": (VIEW_RUN,)}
    serializer_class = s.RunSerializer

    def get_queryset(self):
        runs = (
            Run.objects.select_related(
                "lost_site",
                "target_site",
                "created_by",
                "disaster__lost_site",
                "disaster__declared_by",
                "disaster__approved_by",
            )
            .defer("plan")
            .order_by("-created_at", "-pk")
        )
        return runs.filter(**_query(s.RunFilterSerializer, self.request))


class RunDetail(APIView):
    perms = {"GET": (VIEW_RUN,)}

    @extend_schema(tags=["runs"], responses={200: s.RunSummarySerializer, 404: s.DetailSerializer})
    def get(self, request: Request, pk: int) -> Response:
        try:
            summary = run_summary(run_id=pk)
        except Run.DoesNotExist:
            raise NotFound(f"no run {pk}") from None
        return Response(s.RunSummarySerializer(summary).data)


class RunEvents(APIView):
    perms = {"GET": (VIEW_RUN, VIEW_EVENTS)}

    @extend_schema(
        tags=["runs"],
        parameters=[s.EventQuerySerializer],
        responses={200: s.EventPageSerializer, 400: ERRORS, 404: s.DetailSerializer},
        description="A run's events numbered above `after`, oldest first, at most 500 at a time.",
    )
    def get(self, request: Request, pk: int) -> Response:
        after = _query(s.EventQuerySerializer, request)["after"]
        events, state, seq = events_after(run_id=pk, after=after)
        if state is None:
            raise NotFound(f"no run {pk}")
        return Response(s.EventPageSerializer({"run": pk, "state": state, "seq": seq, "events": events}).data)


# -- declaring and drills --------------------------------------------------------------------

# Service errors named for the field the client sent.
SERVICE_FIELDS = {"approver": "approver_username"}


def _service_errors(exc: DjangoValidationError) -> dict:
    details = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
    return {SERVICE_FIELDS.get(k, k): v for k, v in details.items()}


class PlanPreview(APIView):
    perms = {"GET": (PERM_DECLARE,)}

    @extend_schema(
        tags=["declare"],
        parameters=[s.PlanQuerySerializer],
        responses={200: s.PlanPreviewSerializer, 400: ERRORS, 403: FORBIDDEN},
        description=(
            "The failover plan for losing a site, from a live look at the surviving site over "
            "SSH (what the declare page previews), with the digest to declare exactly it."
        ),
    )
    def get(self, request: Request) -> Response:
        preview = plan_preview(lost_site=_query(s.PlanQuerySerializer, request)["lost_site"])
        if preview.plan is None:
            raise ValidationError({"plan": [preview.error]})
        data = {"lost_site": preview.lost_site, "digest": preview.digest, "plan": preview.plan.as_dict()}
        return Response(s.PlanPreviewSerializer(data).data)


class Declare(APIView):
    perms = {"POST": (PERM_DECLARE,)}

    @extend_schema(
        tags=["declare"],
        request=s.DeclareSerializer,
        responses={
            201: OpenApiResponse(s.RunSummarySerializer, description="declared: the new run"),
            200: OpenApiResponse(
                s.RunSummarySerializer, description="a run for these DR groups was already active: this is it"
            ),
            400: ERRORS,
            403: FORBIDDEN,
            409: OpenApiResponse(description="plan_digest given and the plan has changed since"),
        },
        description=(
            "Declare the loss of a site and start its failover (the Manager on Duty). The plan "
            "is built afresh from the surviving site; blocking problems need override_reason."
        ),
    )
    def post(self, request: Request) -> Response:
        form = s.DeclareSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        preview = plan_preview(lost_site=form.validated_data["lost_site"])
        if preview.plan is None:
            raise ValidationError({"plan": [preview.error]})
        digest = form.validated_data["plan_digest"]
        if digest and digest != preview.digest:
            return Response(
                {"plan_digest": ["the plan has changed since it was shown: review it again"]},
                status=status.HTTP_409_CONFLICT,
            )
        try:
            declaration = disaster_declare(user=request.user, plan=preview.plan, **form.declaration())
        except DjangoValidationError as exc:
            raise ValidationError(_service_errors(exc)) from None
        summary = s.RunSummarySerializer(run_summary(run_id=declaration.run.pk)).data
        return Response(
            summary, status=status.HTTP_201_CREATED if declaration.created else status.HTTP_200_OK
        )


class Drills(APIView):
    perms = {"POST": (PERM_DECLARE,)}

    @extend_schema(
        tags=["declare"],
        request=s.DrillSerializer,
        responses={
            201: OpenApiResponse(s.RunSummarySerializer, description="the drill run, started"),
            400: ERRORS,
            403: FORBIDDEN,
        },
        description=(
            "Start a drill (the Manager on Duty): the failover of a site rehearsed on snapshots of its "
            "replicas at the surviving site, clones on the isolated drill bridge, functional checks, then a "
            "cleanup generated from the undo ledger. Blocking problems need override_reason."
        ),
    )
    def post(self, request: Request) -> Response:
        form = s.DrillSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        try:
            plan = build_drill_plan(
                site=d["site"], shrink=d["shrink"], hold_minutes=d["hold_minutes"], vms=d["vms"] or None
            )
        except (ValueError, DriverError) as exc:
            raise ValidationError({getattr(exc, "field", "site"): [str(exc)]}) from None
        try:
            run = drill_start(user=request.user, plan=plan, override_reason=d["override_reason"])
        except DjangoValidationError as exc:
            raise ValidationError(_service_errors(exc)) from None
        return Response(
            s.RunSummarySerializer(run_summary(run_id=run.pk)).data, status=status.HTTP_201_CREATED
        )
