from django.urls import path

from . import site_views

urlpatterns = [
    path("site/", site_views.site_page, name="site-status"),
    path("site/take-over/", site_views.take_over_page, name="site-take-over"),
]
