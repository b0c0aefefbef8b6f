"""GET /metrics: the portal's figures in the Prometheus text format.

Access: with ``settings.DRPORTAL_METRICS_TOKEN`` set, a scraper must send
``Authorization: Bearer <token>`` (from anywhere); without it the endpoint answers only
requests from a loopback address (a Prometheus or node agent on the same machine). Behind
a reverse proxy on the same machine every request looks local: set the token there (or
let uvicorn's --proxy-headers restore the client's address).

The figures are read from the database at scrape time by a custom collector, so every
web process answers the same and a restart loses nothing; prometheus_client writes the
exposition format (escaping, types, ``_total``) so we don't.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .selectors import metrics_snapshot


class PortalCollector:
    def collect(self):
        snap = metrics_snapshot()
        readiness = GaugeMetricFamily(
            "drportal_readiness",
            "1 if the newest readiness verdict says the site could be lost today, else 0 "
            "(no sample before the site's first check)",
            labels=["site"],
        )
        checked = GaugeMetricFamily(
            "drportal_readiness_checked_timestamp_seconds",
            "When the site's newest readiness verdict was made (alert when it grows old)",
            labels=["site"],
        )
        findings = GaugeMetricFamily(
            "drportal_readiness_findings",
            "Findings behind the site's newest readiness verdict, by severity",
            labels=["site", "severity"],
        )
        for site, verdict in sorted(snap["readiness"].items()):
            readiness.add_metric([site], 1 if verdict["ready"] else 0)
            checked.add_metric([site], verdict["checked_at"])
            for severity, count in sorted(verdict["findings"].items()):
                findings.add_metric([site, severity], count)
        yield readiness
        yield checked
        yield findings

        duration = GaugeMetricFamily(
            "drportal_run_duration_seconds",
            "Run time of the last finished run of each kind (declared to finished)",
            labels=["kind"],
        )
        for kind, seconds in sorted(snap["run_duration_seconds"].items()):
            duration.add_metric([kind], seconds)
        yield duration

        failures = CounterMetricFamily(
            "drportal_action_failures",
            "Failed action attempts, by action kind",
            labels=["kind"],
        )
        for kind, count in sorted(snap["action_failures"].items()):
            failures.add_metric([kind], count)
        yield failures

        active = GaugeMetricFamily(
            "drportal_runs_active", "Runs running, paused or waiting for a person, by kind", labels=["kind"]
        )
        for kind, count in sorted(snap["runs_active"].items()):
            active.add_metric([kind], count)
        yield active

        groups = GaugeMetricFamily(
            "drportal_dr_groups",
            "DR groups by their last known replication state",
            labels=["state"],
        )
        for state, count in sorted(snap["dr_groups"].items()):
            groups.add_metric([state], count)
        yield groups


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(PortalCollector())


def _is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _refuse(status: int, text: str) -> HttpResponse:
    response = HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="drportal metrics"'
    return response


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.DRPORTAL_METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return _refuse(401, "metrics need Authorization: Bearer <DRPORTAL_METRICS_TOKEN>")
    elif not _is_loopback(request.META.get("REMOTE_ADDR", "")):
        return _refuse(
            403, "metrics are served to loopback only; set DRPORTAL_METRICS_TOKEN to scrape remotely"
        )
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
