from django.urls import path

from . import site_views

urlpatterns = [
    path("site/", site_views.site_page, name="site-status"),
]
