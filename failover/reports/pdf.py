"""A run's report as PDF, rendered by WeasyPrint from the same template body as the page.

WeasyPrint needs Pango (Debian: libpango-1.0-0, libpangoft2-1.0-0) and a font
(fonts-dejavu-core). It fetches nothing: the stylesheet is read from static/ and every
URL in the document is refused, so a report can never make the server fetch anything.

A finished run's PDF is kept in Django's cache (issue 17 item 12: 50 pages took 10 s per
request), keyed by a digest of the report's HTML and the stylesheet: anything that changes
what the report says (a note added, a later event, a new translation or stylesheet) gives
a new key and a new rendering. The line "report generated at" is left out of the digest, so
a cached PDF says when it was really rendered. A run still going is rendered every time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path

from django.contrib.staticfiles import finders
from django.core.cache import cache
from django.template.loader import render_to_string

from .build import RunReport

STYLESHEET = "css/report.css"
TEMPLATE = "failover/report_pdf.html"
# A week: a finished run's report rarely changes, and a change is a new key anyway.
CACHE_SECONDS = 7 * 24 * 3600
# Stands in for the generation time in the digest (any fixed moment would do).
_UNDATED = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _stylesheet_path() -> str:
    path = finders.find(STYLESHEET)
    assert isinstance(path, str), f"{STYLESHEET} is not among the static files"
    return path


def report_html(report: RunReport) -> str:
    return render_to_string(TEMPLATE, {"report": report, "pdf": True})


def render_pdf(html: str) -> bytes:
    """The rendering itself (seconds for a large run)."""
    # Imported here: WeasyPrint takes a moment to load, and only this view needs it.
    from weasyprint import CSS, HTML
    from weasyprint.urls import URLFetcher

    no_fetch = URLFetcher(allowed_protocols=())
    stylesheet = CSS(filename=_stylesheet_path(), url_fetcher=no_fetch)
    return HTML(string=html, url_fetcher=no_fetch).write_pdf(stylesheets=[stylesheet])


def cache_key(report: RunReport) -> str:
    """The digest of what the PDF would show, bar the moment it is generated."""
    digest = hashlib.sha256()
    digest.update(report_html(dataclasses.replace(report, generated_at=_UNDATED)).encode())
    digest.update(Path(_stylesheet_path()).read_bytes())
    return f"drportal:report-pdf:{report.run.pk}:{digest.hexdigest()}"


def report_pdf(*, report: RunReport) -> bytes:
    html = report_html(report)
    if report.run.finished_at is None:
        return render_pdf(html)
    key = cache_key(report)
    data = cache.get(key)
    if data is None:
        data = render_pdf(html)
        cache.set(key, data, CACHE_SECONDS)
    return data


def report_filename(report: RunReport) -> str:
    run = report.run
    return f"drportal-run-{run.pk}-{run.kind}-{run.lost_site.code}-{run.created_at:%Y%m%d}.pdf"
