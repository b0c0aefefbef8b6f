from django.apps import AppConfig


class FailoverConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "failover"
    verbose_name = "Failover"
