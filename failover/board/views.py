"""The status board: overview, declaring a disaster, drills, a run's board and its
partials, the operator controls, and the incident list. The live stream is in ``gate``
and ``stream``.

Views parse (``forms``), authorize, call one selector (``selectors``, ``overview``) or
service (``failover.runs``), and render. Partials carry ``Vary: HX-Request`` and answer
286 once the run has ended, which stops htmx from polling them (NetBox's habit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from drportal.http import HtmxHttpRequest
from drportal.site_views import take_over_context
from drportal.twosite import STANDBY, site_status
from failover.models import Action
from failover.runs import controls
from failover.runs.drill import build_drill_plan, drill_end, drill_start
from failover.runs.failback import failback_start
from failover.runs.failover import disaster_declare
from failover.runs.preview import plan_preview
from failover.runs.selectors import drill_history
from failover.runs.sitestate import site_states
from hosts.drivers.base import DriverError
from hosts.models import Site
from hosts.permissions import PERM_DECLARE, PERM_OPERATE, permission_or_403

from . import selectors as board
from .forms import DeclareForm, DrillForm, IncidentFilterForm
from .overview import declare_sites, incident_page, overview_data

VIEW_RUN = "failover.view_run"
STOP_POLLING = 286  # htmx: swap this answer, then stop polling


@require_GET
@vary_on_headers("HX-Request")
@permission_or_403(VIEW_RUN)
def overview(request: HtmxHttpRequest) -> HttpResponse:
    template = "failover/_overview_runs.html" if request.htmx else "failover/overview.html"
    return render(request, template, overview_data())


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
@permission_or_403(PERM_DECLARE)
def declare(request: HtmxHttpRequest) -> HttpResponse:
    """GET: the form; with ``lost_site`` also the plan preview (htmx: the preview alone).
    POST: declare against a fresh plan that must still be the one previewed, then go to
    the run's board."""
    kwargs: dict[str, Any] = {
        "sites": declare_sites(),
        "four_eyes": settings.DRPORTAL_FOUR_EYES,
        "request": request,
    }
    if request.method == "POST":
        return _declare_post(request, DeclareForm(request.POST, **kwargs))
    form = DeclareForm(initial=request.GET.dict(), **kwargs)
    lost = request.GET.get("lost_site", "")
    preview = plan_preview(lost_site=lost) if lost else None
    template = "failover/_plan.html" if request.htmx else "failover/declare.html"
    context = {"form": form, "preview": preview, "four_eyes": kwargs["four_eyes"]}
    if not request.htmx and site_status().mode == STANDBY:
        context.update(take_over_context(request, then="declare"))  # "take over and declare"
    return render(request, template, context)


def _declare_post(request: HtmxHttpRequest, form: DeclareForm) -> HttpResponse:
    valid = form.is_valid()
    lost = form.cleaned_data.get("lost_site") or ""
    preview = plan_preview(lost_site=lost) if lost else None
    if valid and preview is not None and preview.plan is not None:
        if form.cleaned_data["plan_digest"] != preview.digest:
            form.add_error(
                None, _("The plan has changed since it was shown (or was not shown): review it below.")
            )
        else:
            try:
                declaration = disaster_declare(user=request.user, plan=preview.plan, **form.declaration())
            except ValidationError as exc:
                form.add_service_errors(exc)
            else:
                if not declaration.created:
                    messages.warning(
                        request, _("A failover of these DR groups is already running: this is it.")
                    )
                return redirect("run-board", pk=declaration.run.pk)
    context = {"form": form, "preview": preview, "four_eyes": form.four_eyes}
    return render(request, "failover/declare.html", context, status=422)


@require_GET
@permission_or_403(VIEW_RUN)
def run_board(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    context = board.board_page(run_id=pk)
    context.update(board.live_context(context["run"]))
    return render(request, "failover/run_board.html", context)


PARTS: dict[str, tuple[Callable[..., dict], str]] = {
    "header": (board.board_header, "failover/_header.html"),
    "steps": (board.board_steps, "failover/_steps.html"),
    "actions": (board.board_actions, "failover/_actions.html"),
    "log": (board.board_log, "failover/_log.html"),
    "checks": (board.board_checks, "failover/_checks.html"),
}


def _render_part(request: HtmxHttpRequest, pk: int, part: str, *, error: str = "") -> HttpResponse:
    selector, template = PARTS[part]
    context = selector(run_id=pk)
    context.update(board.live_context(context["run"]), error=error)
    response = render(request, template, context)
    if error:
        response.status_code = 422
    elif context["run"].state in board.FINAL_RUN_STATES:
        response.status_code = STOP_POLLING
    return response


@require_GET
@vary_on_headers("HX-Request")
@permission_or_403(VIEW_RUN)
def run_part(request: HtmxHttpRequest, pk: int, part: str) -> HttpResponse:
    if part not in PARTS:
        raise Http404(f"no part {part!r}")
    if part == "actions" and "step" in request.GET:
        return _action_page(request, pk)
    return _render_part(request, pk, part)


def _action_page(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """One page of one step's actions (the board's page links): ``step``, ``list``
    (``decide`` or ``rest``) and ``page``; a wrong one is a 400 that names it."""
    numbers = {}
    for name, default in (("step", None), ("page", "1")):
        raw = request.GET.get(name, default) or ""
        if not raw.isdigit():
            return HttpResponse(
                _("%(field)s: %(value)r is not a whole number.") % {"field": name, "value": raw},
                status=400,
                content_type="text/plain; charset=utf-8",
            )
        numbers[name] = int(raw)
    kind = request.GET.get("list", board.REST)
    if kind not in board.LISTS:
        return HttpResponse(
            _("list: %(value)r is neither “decide” nor “rest”.") % {"value": kind},
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    context = board.board_action_page(run_id=pk, step=numbers["step"], kind=kind, page=numbers["page"])
    context.update(board.live_context(context["run"]))
    return render(request, "failover/_action_list.html", context)


def _error_text(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return " ".join(m for messages_ in exc.message_dict.values() for m in messages_)
    return " ".join(exc.messages)


def _see_other(run_id: int) -> HttpResponse:
    response = HttpResponseRedirect(reverse("run-board", args=[run_id]))
    response.status_code = 303  # See Other: a GET of the board, not a re-POST
    return response


def _after_control(request: HtmxHttpRequest, run_id: int, part: str, error: str) -> HttpResponse:
    """htmx: the changed part (422 with the reason when refused). Otherwise back to the
    board, with the outcome as a message."""
    if request.htmx:
        return _render_part(request, run_id, part, error=error)
    if error:
        messages.error(request, error)
    return _see_other(run_id)


RUN_CONTROLS = {
    "pause": lambda user, pk, reason: controls.run_pause(user=user, run_id=pk),
    "resume": lambda user, pk, reason: controls.run_resume(user=user, run_id=pk),
    "abort": lambda user, pk, reason: controls.run_abort(user=user, run_id=pk, reason=reason),
}
ACTION_CONTROLS = {
    "retry": lambda user, pk, reason: controls.action_retry(user=user, action_id=pk),
    "skip": lambda user, pk, reason: controls.action_skip(user=user, action_id=pk, reason=reason),
    "done": lambda user, pk, reason: controls.action_mark_done(user=user, action_id=pk, reason=reason),
}


@require_POST
@vary_on_headers("HX-Request")
@permission_or_403(PERM_OPERATE)
def run_control(request: HtmxHttpRequest, pk: int, verb: str) -> HttpResponse:
    board.board_run(run_id=pk)  # 404 for a run that does not exist
    error = ""
    try:
        RUN_CONTROLS[verb](request.user, pk, request.POST.get("reason", ""))
    except ValidationError as exc:
        error = _error_text(exc)
    return _after_control(request, pk, "header", error)


@require_POST
@vary_on_headers("HX-Request")
@permission_or_403(PERM_OPERATE)
def action_control(request: HtmxHttpRequest, pk: int, verb: str) -> HttpResponse:
    run_id = get_object_or_404(Action.objects.only("run_id"), pk=pk).run_id
    error = ""
    try:
        ACTION_CONTROLS[verb](request.user, pk, request.POST.get("reason", ""))
    except ValidationError as exc:
        error = _error_text(exc)
    return _after_control(request, run_id, "actions", error)


@require_POST
@permission_or_403(PERM_DECLARE)
def end_drill(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """End a drill now: its cleanup (from the undo ledger) starts; go to its board."""
    board.board_run(run_id=pk)
    try:
        cleanup = drill_end(user=request.user, run_id=pk, reason=request.POST.get("reason", ""))
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
        return _see_other(pk)
    return _see_other(cleanup.pk if cleanup else pk)


@require_POST
@permission_or_403(PERM_DECLARE)
def start_failback(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Fail a finished failover back (planned); blocking problems need a reason."""
    board.board_run(run_id=pk)
    try:
        run = failback_start(
            user=request.user, failover_id=pk, override_reason=request.POST.get("reason", "")
        )
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
        return _see_other(pk)
    except DriverError as exc:
        messages.error(request, _("Cannot plan the failback: %(error)s") % {"error": exc})
        return _see_other(pk)
    return _see_other(run.pk)


@require_http_methods(["GET", "POST"])
@permission_or_403(VIEW_RUN)
def drills(request: HtmxHttpRequest) -> HttpResponse:
    """GET: past drills per site; for the MoD the drill form, and with ``site`` the drill
    plan. POST (MoD): start the drill on a fresh plan, then go to its board."""
    posted = request.method == "POST"
    if posted and not request.user.has_perm(PERM_DECLARE):
        raise PermissionDenied("only the Manager on Duty starts drills")
    sites = list(Site.objects.order_by("code"))
    asked = posted or bool(request.GET.get("site"))
    form = DrillForm((request.POST if posted else request.GET) if asked else None, sites=sites)
    context: dict[str, Any] = {"form": form, "sites": sites, "plan": None, "error": ""}
    # A drill of a site that is lost (or of its surviving site meanwhile) is not offered.
    context["site_rows"] = rows = site_states(sites)
    context["away"] = ", ".join(r.site.code for r in rows if r.away)
    if asked:
        if not request.user.has_perm(PERM_DECLARE):
            raise PermissionDenied("only the Manager on Duty plans and starts drills")
        if form.is_valid():
            try:
                # Shown also when the start is refused: its blocking problems, and where to override.
                context["plan"] = plan = build_drill_plan(**form.plan_options())
                if posted:
                    run = drill_start(
                        user=request.user, plan=plan, override_reason=form.cleaned_data["override_reason"]
                    )
                    return _see_other(run.pk)
            except Site.DoesNotExist:
                form.add_error("site", _("There is no site %(site)s.") % {"site": form.cleaned_data["site"]})
            except ValueError as exc:  # VMs the site's loss would not move, no surviving site
                form.add_error(getattr(exc, "field", "site"), str(exc))
            except DriverError as exc:  # the estate did not answer
                context["error"] = _("Cannot plan the drill: %(error)s") % {"error": exc}
            except ValidationError as exc:
                form.add_service_errors(exc)
    context["history"] = [(site.code, drill_history(site.code)) for site in sites]
    refused = bool(form.errors or context["error"])
    return render(request, "failover/drills.html", context, status=422 if refused and posted else 200)


@require_GET
@vary_on_headers("HX-Request")
@permission_or_403(VIEW_RUN)
def incidents(request: HtmxHttpRequest) -> HttpResponse:
    form = IncidentFilterForm(request.GET or None, sites=declare_sites())
    page = incident_page(**form.filters(), page=request.GET.get("page"))
    template = "failover/_incident_table.html" if request.htmx else "failover/incidents.html"
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, template, {"form": form, "page": page, "query": query.urlencode()})
