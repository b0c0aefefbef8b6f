from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.urls import include, path

from drportal import runbook
from drportal.login_delay import DelayedLoginView

urlpatterns = [
    path("accounts/login/", DelayedLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("healthz", lambda request: HttpResponse("ok", content_type="text/plain"), name="healthz"),
    path("runbook/", runbook.runbook_page, name="runbook"),  # docs/*.md (issue 14)
    path("runbook/<str:name>/", runbook.runbook_page, name="runbook-doc"),
    path("", include("drportal.site_urls")),  # /site/: two sites (issue 14)
    path("", include("failover.api.urls")),  # /api/... and /metrics, namespace "api"
    path("", include("failover.board.urls")),
    path("", include("failover.reports.urls")),
    path("", include("hosts.urls")),
]
