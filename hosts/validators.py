"""Validators for names that end up on a dom0's command line.

Quoting (shlex.quote) already keeps them from a shell; these rules keep them from
being misread by Xen itself and by the people reading logs at 3 a.m.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

DOMAIN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
HOST_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$")
BRIDGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")  # Linux IFNAMSIZ is 16 incl. NUL
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
PATH_RE = re.compile(r"^/[A-Za-z0-9._/+-]*$")
FINGERPRINT_RE = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")


def validate_domain_name(value: str) -> None:
    # All digits would be read by xl as a domain id (see hosts.drivers.xen.validate_domain_name).
    if not DOMAIN_NAME_RE.fullmatch(value or "") or value.isdigit():
        raise ValidationError(
            _(
                "%(value)r is not a valid Xen domain name: use 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit (no spaces, quotes or shell characters)."
            ),
            params={"value": value},
            code="invalid_domain_name",
        )


def validate_host_name(value: str) -> None:
    if not HOST_NAME_RE.fullmatch(value or ""):
        raise ValidationError(
            _("%(value)r is not a valid host name: letters, digits, '.' and '-' only."),
            params={"value": value},
            code="invalid_host_name",
        )


def validate_bridge_name(value: str) -> None:
    if not BRIDGE_RE.fullmatch(value or ""):
        raise ValidationError(
            _("%(value)r is not a valid bridge name: up to 15 letters, digits, '_', '.' or '-'."),
            params={"value": value},
            code="invalid_bridge",
        )


def validate_mac(value: str) -> None:
    if not MAC_RE.fullmatch(value or ""):
        raise ValidationError(
            _("%(value)r is not a MAC address in the form 00:16:3e:12:34:56 (lower case)."),
            params={"value": value},
            code="invalid_mac",
        )


def validate_abs_path(value: str) -> None:
    if not PATH_RE.fullmatch(value or "") or "/../" in value or value.endswith("/.."):
        raise ValidationError(
            _("%(value)r is not an absolute path of letters, digits and . _ / + - only."),
            params={"value": value},
            code="invalid_path",
        )


def validate_fingerprint(value: str) -> None:
    if value and not FINGERPRINT_RE.fullmatch(value):
        raise ValidationError(
            _("%(value)r is not an SSH host-key fingerprint like SHA256:<43 base64 characters>."),
            params={"value": value},
            code="invalid_fingerprint",
        )


def validate_bridge_list(value) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError(_("Bridges must be a list of names."), code="invalid_bridges")
    for item in value:
        validate_bridge_name(item)
    if len(set(value)) != len(value):
        raise ValidationError(_("A bridge is listed twice."), code="duplicate_bridge")


def validate_private_key_path(value: str) -> None:
    """The path of a private key file on the workers, never the key itself: key material
    does not belong in the database (README, 'Deployment')."""
    text = value or ""
    if "PRIVATE KEY" in text or "-----BEGIN" in text or "\n" in text or "\r" in text:
        raise ValidationError(
            _(
                "This is key material, not a path: enter the path of the private key file on the "
                "workers (e.g. /run/secrets/drportal_ssh_key); the database never stores a key."
            ),
            code="key_material",
        )
    if text and not text.startswith("/"):
        raise ValidationError(
            _("%(value)r is not an absolute path: enter where the private key file is on the workers."),
            params={"value": value},
            code="relative_key_path",
        )


# -- inventory rules (issue 17 item 10) -------------------------------------------------------

# Domain-0 is Xen's own domain; drill-* are the drill's clones (failover.actions.drill).
RESERVED_VM_NAMES = ("domain-0",)
RESERVED_VM_PREFIXES = ("drill-",)
ADDRESS_LABEL_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# POSIX portable user names (IEEE Std 1003.1 3.437, as useradd takes them): no '$' here.
SSH_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def validate_vm_name_not_reserved(value: str) -> None:
    lowered = (value or "").lower()
    if lowered in RESERVED_VM_NAMES or lowered.startswith(RESERVED_VM_PREFIXES):
        raise ValidationError(
            _(
                "%(value)r is reserved: Domain-0 is Xen's own domain and drill-* names are the "
                "drills' clones. Choose another domain name."
            ),
            params={"value": value},
            code="reserved_vm_name",
        )


def validate_address(value: str) -> None:
    """A DNS name or an IPv4/IPv6 address: what SSH and the checks connect to, never an
    option ('-o...') nor anything a shell would read."""
    import ipaddress

    text = value or ""
    try:
        ipaddress.ip_address(text)
        return
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    if text and len(text) <= 253 and all(ADDRESS_LABEL_RE.fullmatch(label) for label in labels):
        return
    raise ValidationError(
        _(
            "%(value)r is not a host name or an IP address: letters, digits, '-' and '.' "
            "(not at the start), or an IPv4/IPv6 address; no spaces or shell characters."
        ),
        params={"value": value},
        code="invalid_address",
    )


def validate_ssh_user(value: str) -> None:
    if not SSH_USER_RE.fullmatch(value or ""):
        raise ValidationError(
            _(
                "%(value)r is not a POSIX user name: up to 32 lower-case letters, digits, '_' or '-', "
                "starting with a letter or '_'."
            ),
            params={"value": value},
            code="invalid_ssh_user",
        )


# hosts.lab.keys.client_key_path: <lab>/keys/id_drportal (drivers and the lab know nothing of
# this module, so the layout is written down here).
LAB_CLIENT_KEY = ("keys", "id_drportal")


def ssh_key_dirs() -> list[Path]:
    """Where private key files may be: DRPORTAL_SSH_KEY_DIR if set, else the directory of
    the workers' key (DRPORTAL_SSH_KEY), the lab's key directory and /run/secrets (Docker
    secrets, the compose file's); without the setting also any lab's client key
    (.../keys/id_drportal, see validate_key_path_in_dir). Production sets the setting."""
    from django.conf import settings

    configured = getattr(settings, "DRPORTAL_SSH_KEY_DIR", None)
    if configured:
        return [Path(p) for p in configured]
    defaults = [Path(settings.DRPORTAL_SSH_KEY).parent, Path(settings.DRPORTAL_LAB_DIR) / "keys"]
    return list(dict.fromkeys([*defaults, Path("/run/secrets")]))


def validate_key_path_in_dir(value: str) -> None:
    if not value or not value.startswith("/"):
        return  # blank is allowed; a relative path is validate_private_key_path's to name
    from django.conf import settings

    path = Path(os.path.normpath(value))
    dirs = ssh_key_dirs()
    if any(path.is_relative_to(Path(os.path.normpath(d))) and path != Path(d) for d in dirs):
        return
    if not getattr(settings, "DRPORTAL_SSH_KEY_DIR", None) and path.parts[-2:] == LAB_CLIENT_KEY:
        return  # without the setting: any lab's client key (a lab made in a temporary directory)
    raise ValidationError(
        _(
            "%(value)r is outside the key directories (%(dirs)s, DRPORTAL_SSH_KEY_DIR): put the key file there."
        ),
        params={"value": value, "dirs": ", ".join(str(d) for d in dirs)},
        code="key_path_outside",
    )
