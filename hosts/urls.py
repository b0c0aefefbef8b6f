from django.urls import path

from . import views

urlpatterns = [
    path("estate/", views.dashboard, name="dashboard"),
    path("profiles/", views.profile_list, name="profile-list"),
    path("profiles/<int:pk>/", views.profile_detail, name="profile-detail"),
    path("allocations/<int:pk>/edit/", views.allocation_edit, name="allocation-edit"),
]
