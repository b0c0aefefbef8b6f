from django.apps import AppConfig


class DrportalConfig(AppConfig):
    """The project package as an app: its system checks (drportal.checks) and the
    session idle clock (drportal.sessions)."""

    name = "drportal"
    verbose_name = "drportal"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from . import checks  # noqa: F401 (registers the checks)
        from .sessions import touch_on_login

        user_logged_in.connect(touch_on_login, dispatch_uid="drportal.sessions.touch_on_login")
        # A standby's database takes no writes: its logins leave last_login alone.
        from .standby_login import update_last_login_when_writable

        if user_logged_in.disconnect(dispatch_uid="update_last_login"):
            user_logged_in.connect(update_last_login_when_writable, dispatch_uid="update_last_login")
