"""The real drbd-utils behind the lab's ``drbdadm`` and ``drbdsetup``: the lab renders a
DRBD resource file from its state (per dom0), lets Debian's real ``drbdadm -d`` (dry run,
no kernel module needed) judge each call and learns from it which ``drbdsetup`` commands
drbdadm would run; it checks ``drbdsetup`` options against the real binary's own option
table (``drbdsetup xml-help <command>``). A driver can therefore never send a word the
real tools do not know without a test failing.

How drbdadm is made to judge a foreign node and kernel version:

* ``__DRBD_NODE__=<dom0>`` makes drbdadm take that name for ``on <host>``
  (user/v9/drbdadm_main.c:3321-3328; drbd-utils' own tests/run.sh:24-25 do the same). It
  prints a "PRETENDING that I am" banner to stderr, which is dropped here.
* ``DRBD_DRIVER_VERSION_OVERRIDE=8.4.x`` makes drbdadm 9 exec ``drbdadm-84``
  (user/v9/drbdtool_common.c:239, user/v9/drbdadm_usage_cnt.c:82-94; tests/run.sh:29-35),
  so 8.4 hosts are judged by 8.4's drbdadm, and a dry run prints ``drbdsetup-84 ...``.
* ``global { usage-count no; }`` keeps drbdadm from ever asking to register
  (user/v9/drbdadm_usage_cnt.c:403).
* A dry run prints every command it would run, one per line, words shell-escaped
  (user/shared/shared_main.c:267-283, m__system).

Cost: the rendered file is written once per content (its sha256 names it), and a dry
run's answer is kept per (version, node, file, argv): the answer depends on nothing else,
so a lab serving the same calls again pays a dictionary lookup (bench: see the report).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DRY_RUN_TIMEOUT = 10.0
_CACHE_SIZE = 4096
_PRETEND = re.compile(r"\n?   found __DRBD_NODE__ in environment\n   PRETENDING that I am >>[^\n]*<<\n\n?")
_MODINFO = re.compile(r"^modinfo: ERROR: Module drbd not found\.\n", re.M)
# Standard places of drbd-utils' binaries (Debian: /usr/sbin, the 8.4 ones in /usr/lib/drbd).
_SEARCH = ("/usr/sbin", "/sbin", "/usr/lib/drbd", "/lib/drbd")


class DrbdUtilsMissing(RuntimeError):
    """drbd-utils is not installed where the lab looks: it cannot judge drbdadm calls."""


@dataclass(frozen=True)
class Volume:
    number: int
    minor: int


@dataclass(frozen=True)
class Resource:
    """One DRBD resource as the lab's state describes it, for one dom0's config file."""

    name: str
    protocol: str  # "C" (sync) or "A" (async)
    volumes: tuple[Volume, ...]
    nodes: tuple[tuple[str, str], ...]  # (host name, address), node-id = position


@dataclass(frozen=True)
class DryRun:
    status: int
    commands: tuple[str, ...]  # what drbdadm would run, one command line each
    stderr: str  # drbdadm's own complaint (its banner about __DRBD_NODE__ removed)

    @property
    def ok(self) -> bool:
        return self.status == 0


def is_84(version: str) -> bool:
    return str(version).startswith("8")


def kernel_version(version: str) -> str:
    """The DRBD kernel version drbdadm is told the host has ("8.4" / "9" or a full one)."""
    text = str(version)
    if text.count(".") >= 2:
        return text
    return "8.4.11" if is_84(text) else "9.2.0"


def render(resources: Sequence[Resource], *, host: str, version: str) -> str:
    """A drbd.conf for ``host``: its resources, in the 8.4 or the 9 grammar (8.4's has no
    ``node-id``: drbdadm-84 refuses it as a parse error)."""
    lines = [
        f"# The DRBD resources of {host} as the drportal lab's state describes them (DRBD {version}).",
        "global { usage-count no; }",
    ]
    for res in resources:
        port = 7788 + min((v.minor for v in res.volumes), default=0)
        lines += [f"resource {res.name} {{", f"  net {{ protocol {res.protocol}; }}"]
        for vol in res.volumes:
            lines.append(
                f"  volume {vol.number} {{ device minor {vol.minor}; "
                f"disk /dev/drbdpool/{res.name}_{vol.number}; meta-disk internal; }}"
            )
        for node_id, (name, address) in enumerate(res.nodes):
            node = "" if is_84(version) else f"node-id {node_id}; "
            lines.append(f"  on {name} {{ {node}address {address}:{port}; }}")
        lines.append("}")
    return "\n".join(lines) + "\n"


def _search_path() -> str:
    # DRPORTAL_DRBD_UTILS_PATH replaces the search (a test points it at an empty directory
    # to prove the lab says clearly that drbd-utils is missing).
    override = os.environ.get("DRPORTAL_DRBD_UTILS_PATH")
    if override is not None:
        return override
    return os.pathsep.join([os.environ.get("PATH", ""), *_SEARCH])


def find_tool(name: str) -> str:
    found = shutil.which(name, path=_search_path())
    if found is None:
        raise DrbdUtilsMissing(
            f"drbd-utils is not installed here ({name} not found): the lab checks every drbdadm and "
            "drbdsetup call against the real drbd-utils before it simulates it. Install it with "
            "'apt-get install drbd-utils' (scripts/ensure-services does)."
        )
    return found


class Checker:
    """Caches of one process: rendered files on disk, dry-run answers and option tables."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir or Path(tempfile.gettempdir()) / f"drportal-drbd-{os.getuid()}"
        self._lock = threading.Lock()
        self._runs: OrderedDict[tuple, DryRun] = OrderedDict()
        self._options: dict[tuple[str, str], frozenset[str] | None] = {}
        self._usage: dict[str, str] = {}
        self.dry_runs = 0  # real drbdadm processes started (the bench reads it)

    def config_file(self, text: str) -> Path:
        path = self.cache_dir / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.res"
        if not path.exists():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
        return path

    def dry_run(self, argv: Sequence[str], *, config: str, host: str, version: str) -> DryRun:
        """``drbdadm -d -c <file> <argv...>`` as ``host`` with a DRBD ``version`` kernel."""
        path = self.config_file(config)
        key = (kernel_version(version), host, str(path), tuple(argv))
        with self._lock:
            cached = self._runs.get(key)
            if cached is not None:
                self._runs.move_to_end(key)
                return cached
        drbdadm = find_tool("drbdadm")
        env = {
            "PATH": _search_path(),
            "LANG": "C",
            "__DRBD_NODE__": host,
            "DRBD_DRIVER_VERSION_OVERRIDE": key[0],
        }
        try:
            proc = subprocess.run(  # a fixed binary and argv, no shell
                # argv[0] a bare "drbdadm", as an admin types it: drbdadm then names its
                # helpers bare too ("drbdsetup ..."), user/v9/drbdadm_main.c:2889-2895
                ["drbdadm", "-d", "-c", str(path), *argv],
                executable=drbdadm,
                capture_output=True,
                text=True,
                env=env,
                timeout=DRY_RUN_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return DryRun(1, (), f"lab: drbdadm -d did not answer within {DRY_RUN_TIMEOUT:.0f} s\n")
        stderr = _MODINFO.sub("", _PRETEND.sub("", proc.stderr))  # drbdadm-84 repeats the banner
        result = DryRun(proc.returncode, tuple(line for line in proc.stdout.splitlines() if line), stderr)
        with self._lock:
            self.dry_runs += 1
            self._runs[key] = result
            while len(self._runs) > _CACHE_SIZE:
                self._runs.popitem(last=False)
        return result

    def drbdsetup_binary(self, version: str) -> str:
        return find_tool("drbdsetup-84" if is_84(version) else "drbdsetup")

    def drbdsetup_options(self, command: str, version: str) -> frozenset[str] | None:
        """The long options of ``drbdsetup <command>`` from the real binary's own table
        (``xml-help``, answered before drbdsetup looks for the kernel module:
        user/v9/drbdsetup.c:4360-4372, user/v84/drbdsetup.c:3589-3600); None if the
        binary knows no such command."""
        key = (command, "8.4" if is_84(version) else "9")
        with self._lock:
            if key in self._options:
                return self._options[key]
        proc = subprocess.run(
            [self.drbdsetup_binary(version), "xml-help", command],
            capture_output=True,
            text=True,
            timeout=DRY_RUN_TIMEOUT,
            check=False,
        )
        found = (
            frozenset(re.findall(r'<option name="([^"]+)"', proc.stdout)) if proc.returncode == 0 else None
        )
        with self._lock:
            self._options[key] = found
        return found

    def drbdsetup_usage(self, version: str) -> str:
        """What the real drbdsetup prints when it gives up on its arguments
        (print_usage_and_exit, user/v9/drbdsetup.c:4275-4291, user/v84/drbdsetup.c:3472-3496),
        asked of the binary itself: it prints that without arguments, as ``drbdsetup``."""
        key = "8.4" if is_84(version) else "9"
        with self._lock:
            if key in self._usage:
                return self._usage[key]
        proc = subprocess.run(
            ["drbdsetup"],
            executable=self.drbdsetup_binary(version),
            capture_output=True,
            text=True,
            timeout=DRY_RUN_TIMEOUT,
            check=False,
        )
        with self._lock:
            self._usage[key] = proc.stdout
        return proc.stdout


CHECKER = Checker()
