"""From inventory rows to driver objects: the one place that knows both."""

from __future__ import annotations

from django.conf import settings

from .drivers.ssh import SSHTarget
from .drivers.storage import get_driver
from .models import Host, StorageArray


def ssh_target(host: Host | StorageArray, *, connect_attempts: int | None = None) -> SSHTarget:
    """The SSH target of a dom0 or of an array's management host, with its pinned key.
    ``connect_attempts``: DRPORTAL_SSH_CONNECT_ATTEMPTS unless given (the survey gives a
    lost site's dom0s one: it expects them not to answer)."""
    if isinstance(host, StorageArray):
        address, port, user = host.management_address, host.management_port, host.management_user
        key_path = getattr(host, "ssh_key_path", "")
    else:
        address, port, user, key_path = host.address, host.ssh_port, host.ssh_user, host.ssh_key_path
    return SSHTarget(
        name=host.name,
        address=address,
        port=port,
        user=user,
        key_path=_key_path(key_path),
        fingerprint=host.host_key_fingerprint or None,
        connect_timeout=settings.DRPORTAL_SSH_CONNECT_TIMEOUT,
        command_timeout=settings.DRPORTAL_SSH_COMMAND_TIMEOUT,
        connect_attempts=connect_attempts or settings.DRPORTAL_SSH_CONNECT_ATTEMPTS,
    )


def _key_path(path: str) -> str:
    # Arrays have no key of their own in the inventory: the workers' default key serves.
    return path or str(settings.DRPORTAL_SSH_KEY)


def storage_driver(array: StorageArray, runner):
    """The storage driver of one array copy, options from the inventory record."""
    if array.kind == "eva-ca":
        if not array.sssu_login_file:
            from .drivers.storage import StorageError

            raise StorageError(
                f"array {array.name}: no SSSU login file in the inventory (field sssu_login_file); "
                "SSSU needs a password and drportal reads it only from that root-only file on the "
                "management host"
            )
        return get_driver(
            "eva-ca", runner, system=array.system_name or array.name.upper(), login_file=array.sssu_login_file
        )
    if array.kind == "manual":
        return get_driver("manual", None, array=array.name, team="storage team")
    return get_driver(array.kind, runner)
