from django.apps import AppConfig


class HostsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "hosts"
    verbose_name = "Estate"

    def ready(self) -> None:
        from . import checks  # noqa: F401 (registers hosts.W010)
