"""A run's report as PDF, rendered by WeasyPrint from the same template body as the page.

WeasyPrint needs Pango (Debian: libpango-1.0-0, libpangoft2-1.0-0) and a font
(fonts-dejavu-core). It fetches nothing: the stylesheet is read from static/ and every
URL in the document is refused, so a report can never make the server fetch anything.
"""

from __future__ import annotations

from django.contrib.staticfiles import finders
from django.template.loader import render_to_string

from .build import RunReport

STYLESHEET = "css/report.css"


def report_pdf(*, report: RunReport) -> bytes:
    # Imported here: WeasyPrint takes a moment to load, and only this view needs it.
    from weasyprint import CSS, HTML
    from weasyprint.urls import URLFetcher

    no_fetch = URLFetcher(allowed_protocols=())
    html = render_to_string("failover/report_pdf.html", {"report": report, "pdf": True})
    stylesheet = CSS(filename=finders.find(STYLESHEET), url_fetcher=no_fetch)
    return HTML(string=html, url_fetcher=no_fetch).write_pdf(stylesheets=[stylesheet])


def report_filename(report: RunReport) -> str:
    run = report.run
    return f"drportal-run-{run.pk}-{run.kind}-{run.lost_site.code}-{run.created_at:%Y%m%d}.pdf"
