"""URLs of the reports and the readiness page, namespaced ``reports:``."""

from django.urls import path

from failover.readiness import views as readiness_views

from . import views as report_views

app_name = "reports"

urlpatterns = [
    path("reports/", report_views.report_index, name="index"),
    path("runs/<int:pk>/report/", report_views.run_report, name="run"),
    path("runs/<int:pk>/report/exclusion", report_views.run_exclusion, name="run-exclusion"),
    path("runs/<int:pk>/report.pdf", report_views.run_report_pdf, name="run-pdf"),
    path("readiness/", readiness_views.readiness, name="readiness"),
]
