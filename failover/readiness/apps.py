from django.apps import AppConfig


class ReadinessConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "failover.readiness"
    label = "readiness"
    verbose_name = "Readiness"
