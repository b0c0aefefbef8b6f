"""The registry of simulated commands: ``REGISTRY[argv0] -> handler`` (contract in base.py).

The core commands live here (core.py). The Xen toolstack (xen_tool.py: xl, xm) and the
storage CLIs (sssu_tool.py, drbd_tool.py) are merged in when importable. They are
written separately, so a missing module is skipped quietly and a broken one is
recorded in ``LOAD_ERRORS`` (the server logs it, ``lab status`` shows it) instead of
taking the whole lab down with it.
"""

from __future__ import annotations

import importlib
import logging
import posixpath

from hosts.lab.tools.base import Handler
from hosts.lab.tools.core import CORE_TOOLS

log = logging.getLogger(__name__)

_OPTIONAL_MODULES = ("hosts.lab.tools.xen_tool", "hosts.lab.tools.sssu_tool", "hosts.lab.tools.drbd_tool")
# Absolute paths a driver may use instead of a bare name (``/usr/sbin/xl``).
_SEARCH_PATH = frozenset({"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"})

REGISTRY: dict[str, Handler] = dict(CORE_TOOLS)
LOAD_ERRORS: dict[str, str] = {}


def _merge_optional() -> None:
    for module_name in _OPTIONAL_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # not written yet
            LOAD_ERRORS[module_name] = f"{type(exc).__name__}: {exc}"
            log.warning("lab tools: cannot import %s: %s", module_name, exc)
            continue
        except Exception as exc:  # a half-written sibling must not break the core tools
            LOAD_ERRORS[module_name] = f"{type(exc).__name__}: {exc}"
            log.warning("lab tools: cannot import %s: %s", module_name, exc)
            continue
        entries = getattr(module, "REGISTRY_ENTRIES", None)
        if not isinstance(entries, dict):
            LOAD_ERRORS[module_name] = "no REGISTRY_ENTRIES dict"
            continue
        REGISTRY.update(entries)


def resolve(argv0: str) -> Handler | None:
    """The handler for a command word: a bare name, or a name in a standard bin directory."""
    if "/" in argv0:
        directory, name = posixpath.split(posixpath.normpath(argv0))
        return REGISTRY.get(name) if directory in _SEARCH_PATH else None
    return REGISTRY.get(argv0)


_merge_optional()
