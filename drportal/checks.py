"""Deployment checks (``manage.py check --deploy``): the workers' SSH private key.

The key lives in a file on the workers (a Docker secret under /run/secrets/ in the
compose deployment), never in the database; these checks make sure it is there and that
only drportal's own user can read it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def ssh_key_file(app_configs=None, **kwargs) -> list[Warning]:
    path = Path(settings.DRPORTAL_SSH_KEY)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return [
            Warning(
                f"DRPORTAL_SSH_KEY={str(path)!r}: cannot read the workers' private key "
                f"({exc.strerror or exc}); no failover can log in to a dom0 or an array without it.",
                hint="Mount the key as a Docker secret and point DRPORTAL_SSH_KEY at it "
                "(README, 'Deployment').",
                id="drportal.W001",
            )
        ]
    if not stat.S_ISREG(mode):
        return [
            Warning(
                f"DRPORTAL_SSH_KEY={str(path)!r} is not a regular file.",
                hint="Point DRPORTAL_SSH_KEY at the private key file itself.",
                id="drportal.W001",
            )
        ]
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return [
            Warning(
                f"DRPORTAL_SSH_KEY={str(path)!r} is readable by other users "
                f"(mode {stat.S_IMODE(mode):04o}): anyone on the machine could log in to the estate.",
                hint=f"chmod 600 {path} (owned by the user drportal runs as).",
                id="drportal.W002",
            )
        ]
    if not os.access(path, os.R_OK):
        return [
            Warning(
                f"DRPORTAL_SSH_KEY={str(path)!r}: the user drportal runs as (uid {os.getuid()}) cannot read it.",
                hint="chown the key file to that user (the image runs as uid 10001).",
                id="drportal.W001",
            )
        ]
    return []
