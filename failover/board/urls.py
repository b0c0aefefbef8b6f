from django.urls import path

from . import gate, views

urlpatterns = [
    path("", views.overview, name="overview"),
    path("declare/", views.declare, name="declare"),
    path("incidents/", views.incidents, name="incidents"),
    path("drills/", views.drills, name="drills"),
    path("runs/<int:pk>/", views.run_board, name="run-board"),
    path("runs/<int:pk>/events/", gate.run_events, name="run-events"),
    path("runs/<int:pk>/part/<slug:part>/", views.run_part, name="run-part"),
    path("runs/<int:pk>/pause/", views.run_control, {"verb": "pause"}, name="run-pause"),
    path("runs/<int:pk>/resume/", views.run_control, {"verb": "resume"}, name="run-resume"),
    path("runs/<int:pk>/abort/", views.run_control, {"verb": "abort"}, name="run-abort"),
    path("runs/<int:pk>/end-drill/", views.end_drill, name="run-end-drill"),
    path("runs/<int:pk>/failback/", views.start_failback, name="run-failback"),
    path("actions/<int:pk>/retry/", views.action_control, {"verb": "retry"}, name="action-retry"),
    path("actions/<int:pk>/skip/", views.action_control, {"verb": "skip"}, name="action-skip"),
    path("actions/<int:pk>/done/", views.action_control, {"verb": "done"}, name="action-done"),
]
