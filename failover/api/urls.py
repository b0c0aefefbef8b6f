"""The API under /api/ and the Prometheus endpoint at /metrics, in the namespace "api"."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from . import metrics, views

app_name = "api"

urlpatterns = [
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/sites/", views.SiteList.as_view(), name="sites"),
    path("api/hosts/", views.HostList.as_view(), name="hosts"),
    path("api/vms/", views.VMList.as_view(), name="vms"),
    path("api/dr-groups/", views.DRGroupList.as_view(), name="dr-groups"),
    path("api/profiles/", views.ProfileList.as_view(), name="profiles"),
    path("api/capacity/", views.Capacity.as_view(), name="capacity"),
    path("api/readiness/", views.Readiness.as_view(), name="readiness"),
    path("api/runs/", views.RunList.as_view(), name="runs"),
    path("api/runs/<int:pk>/", views.RunDetail.as_view(), name="run"),
    path("api/runs/<int:pk>/events/", views.RunEvents.as_view(), name="run-events"),
    path("api/plan/", views.PlanPreview.as_view(), name="plan"),
    path("api/declare/", views.Declare.as_view(), name="declare"),
    path("api/drills/", views.Drills.as_view(), name="drills"),
    path("metrics", metrics.metrics, name="metrics"),
]
