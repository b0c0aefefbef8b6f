"""Xen's own config and disk-spec parser, libxlutil 4.17 (Debian's libxenmisc4.17), through ctypes.

The lab reads every domain config with this, never with drportal's reader
(hosts/drivers/xen_cfg.py), so a mistake in a driver cannot be agreed with by the lab; the
differential tests (tests/xen/test_xen_cfg_differential.py) hold drportal's reader to it.
It lives in the lab because a portal host has no libxenmisc: the drivers must never import it.

Layouts, from the Xen tree at RELEASE-4.17.7 (the library installed here is 4.17.7):
- ``XLU_Config`` / ``XLU_ConfigSetting`` (tools/libs/util/libxlu_internal.h): only walked to
  learn which names a file sets (the public API has no iterator); every value is then read
  through the public calls (xlu_cfg_get_string / get_list / get_listitem2 / value_type).
- ``libxl_device_disk`` (tools/libs/light/libxl_types.idl, ``Struct("device_disk", ...)``,
  with libxl_domid = uint32, string = char *, enums and integer = int, bool = C bool,
  libxl_defbool = ``struct { int val; }`` from tools/include/libxl.h). The tests check this
  against the library: it writes nothing past ``sizeof`` and the fields of known specs read back.
- ``libxl_device_nic`` is only handed to xlu_vif_parse_rate as a zeroed buffer far larger
  than the struct: the lab needs its verdict (valid or not), not the numbers it stores.

Every message libxlutil prints goes to a ``FILE *`` from open_memstream, so each call's
warnings and errors come back as text, worded as xl prints them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LIBXLUTIL = "libxlutil.so.4.17"
LIBXENLIGHT = "libxenlight.so.4.17"

XLU_STRING, XLU_LIST = 0, 1  # enum XLU_ConfigValueType
ESRCH, EINVAL, ERANGE = 3, 22, 34

DISK_FORMATS = {0: "unknown", 1: "qcow", 2: "qcow2", 3: "vhd", 4: "raw", 5: "empty", 6: "qed"}
DISK_BACKENDS = {0: "unknown", 1: "phy", 2: "tap", 3: "qdisk", 4: "standalone"}
DISK_SPECIFICATIONS = {0: "unknown", 1: "xen", 2: "virtio"}


class XlutilUnavailable(RuntimeError):
    """libxenmisc4.17 is not installed: `apt-get install libxenmisc4.17` (scripts/ensure-services)."""


class _Setting(ctypes.Structure):
    pass


_Setting._fields_ = [
    ("next", ctypes.POINTER(_Setting)),
    ("name", ctypes.c_char_p),
    ("value", ctypes.c_void_p),
    ("op", ctypes.c_int),  # XLU_OP_ASSIGNMENT 0, XLU_OP_ADDITION 1 (+=)
    ("lineno", ctypes.c_int),
]


class _Config(ctypes.Structure):
    _fields_ = [
        ("settings", ctypes.POINTER(_Setting)),
        ("report", ctypes.c_void_p),
        ("config_source", ctypes.c_char_p),
    ]


class DeviceDisk(ctypes.Structure):
    """libxl_device_disk of Xen 4.17 (see the module docstring for where each type comes from)."""

    _fields_ = [
        ("backend_domid", ctypes.c_uint32),
        ("backend_domname", ctypes.c_char_p),
        ("pdev_path", ctypes.c_char_p),
        ("vdev", ctypes.c_char_p),
        ("backend", ctypes.c_int),
        ("format", ctypes.c_int),
        ("script", ctypes.c_char_p),
        ("removable", ctypes.c_int),
        ("readwrite", ctypes.c_int),
        ("is_cdrom", ctypes.c_int),
        ("direct_io_safe", ctypes.c_bool),
        ("discard_enable", ctypes.c_int),
        ("specification", ctypes.c_int),
        ("transport", ctypes.c_int),
        ("irq", ctypes.c_uint32),
        ("base", ctypes.c_uint64),
        ("colo_enable", ctypes.c_int),
        ("colo_restore_enable", ctypes.c_int),
        ("colo_host", ctypes.c_char_p),
        ("colo_port", ctypes.c_int),
        ("colo_export", ctypes.c_char_p),
        ("active_disk", ctypes.c_char_p),
        ("hidden_disk", ctypes.c_char_p),
        ("trusted", ctypes.c_int),
    ]


NIC_BUFFER_BYTES = 4096  # libxl_device_nic of 4.17 is well under 1 KiB


class _Libs:
    def __init__(self) -> None:
        try:
            self.xlu = ctypes.CDLL(LIBXLUTIL)
            self.xl = ctypes.CDLL(LIBXENLIGHT)
        except OSError as exc:
            raise XlutilUnavailable(
                f"cannot load {LIBXLUTIL}: {exc}; install Debian's libxenmisc4.17"
            ) from None
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        c = self.libc
        c.open_memstream.restype = ctypes.c_void_p
        c.open_memstream.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)]
        c.fflush.argtypes = [ctypes.c_void_p]
        c.fclose.argtypes = [ctypes.c_void_p]
        c.free.argtypes = [ctypes.c_void_p]
        x = self.xlu
        x.xlu_cfg_init.restype = ctypes.POINTER(_Config)
        x.xlu_cfg_init.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        x.xlu_cfg_readdata.argtypes = [ctypes.POINTER(_Config), ctypes.c_char_p, ctypes.c_int]
        x.xlu_cfg_destroy.argtypes = [ctypes.POINTER(_Config)]
        x.xlu_cfg_get_string.argtypes = [
            ctypes.POINTER(_Config),
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_int,
        ]
        x.xlu_cfg_get_long.argtypes = [
            ctypes.POINTER(_Config),
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_long),
            ctypes.c_int,
        ]
        x.xlu_cfg_get_list.argtypes = [
            ctypes.POINTER(_Config),
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_int,
        ]
        x.xlu_cfg_get_listitem.restype = ctypes.c_char_p
        x.xlu_cfg_get_listitem.argtypes = [ctypes.c_void_p, ctypes.c_int]
        x.xlu_cfg_get_listitem2.restype = ctypes.c_void_p
        x.xlu_cfg_get_listitem2.argtypes = [ctypes.c_void_p, ctypes.c_int]
        x.xlu_cfg_value_type.argtypes = [ctypes.c_void_p]
        x.xlu_cfg_value_get_string.argtypes = [
            ctypes.POINTER(_Config),
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_int,
        ]
        x.xlu_cfg_value_get_list.argtypes = [
            ctypes.POINTER(_Config),
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.c_int,
        ]
        x.xlu_disk_parse.argtypes = [
            ctypes.POINTER(_Config),
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_void_p,
        ]
        x.xlu_vif_parse_rate.argtypes = [ctypes.POINTER(_Config), ctypes.c_char_p, ctypes.c_void_p]
        self.xl.libxl_device_disk_init.argtypes = [ctypes.c_void_p]
        self.xl.libxl_device_disk_dispose.argtypes = [ctypes.c_void_p]


_libs: _Libs | None = None
_libs_lock = threading.Lock()


def libs() -> _Libs:
    global _libs
    with _libs_lock:
        if _libs is None:
            _libs = _Libs()
        return _libs


def available() -> bool:
    try:
        libs()
    except XlutilUnavailable:
        return False
    return True


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "surrogateescape")


class _Report:
    """A ``FILE *`` (open_memstream) that libxlutil reports into; ``take()`` returns what
    was written since the last call."""

    def __init__(self, c: Any) -> None:
        self.c = c
        self.buf = ctypes.c_void_p()
        self.size = ctypes.c_size_t()
        self.file = c.open_memstream(ctypes.byref(self.buf), ctypes.byref(self.size))
        if not self.file:
            raise OSError(ctypes.get_errno(), "open_memstream failed")
        self.seen = 0

    def take(self) -> str:
        self.c.fflush(self.file)
        if not self.buf.value:
            return ""
        data = ctypes.string_at(self.buf.value, self.size.value)
        new, self.seen = data[self.seen :], len(data)
        return new.decode("utf-8", "surrogateescape")

    def close(self) -> None:
        if self.file:
            self.c.fclose(self.file)
            self.file = None
        if self.buf.value:
            self.c.free(self.buf.value)
            self.buf = ctypes.c_void_p()


Value = str | list  # a list's items are Value, or None where libxlutil holds no value


@dataclass(frozen=True)
class Disk:
    """What xlu_disk_parse left in a libxl_device_disk."""

    pdev_path: str | None
    vdev: str | None
    readwrite: int
    is_cdrom: int
    removable: int
    format: str
    backend: str
    script: str | None
    backend_domname: str | None
    specification: str


@dataclass
class DiskResult:
    error: int  # 0, or the errno xlu_disk_parse returned
    report: str
    disk: Disk | None


@dataclass
class Config:
    """One parsed config. Use as a context manager (it owns the C objects), or call close()."""

    source: str
    error: int  # what xlu_cfg_readdata returned: 0, or EINVAL for a file xl refuses
    report: str  # what it printed (errors name source:line)
    _libs: _Libs = field(repr=False)
    _cfg: Any = field(repr=False)
    _report: _Report = field(repr=False)

    def __enter__(self) -> Config:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._cfg:
            self._libs.xlu.xlu_cfg_destroy(self._cfg)
            self._cfg = None
        self._report.close()

    @property
    def ok(self) -> bool:
        return self.error == 0

    def names(self) -> list[str]:
        """Every name the file sets, once each, in the order first set."""
        seen: list[str] = []
        node = self._cfg.contents.settings
        while node:
            name = _text(node.contents.name)
            assert name is not None
            if name not in seen:
                seen.append(name)
            node = node.contents.next
        return list(reversed(seen))

    def setting_line(self, name: str) -> int | None:
        """The line libxlutil recorded for the setting that counts (the last one)."""
        node = self._cfg.contents.settings
        while node:
            if _text(node.contents.name) == name:
                return int(node.contents.lineno)
            node = node.contents.next
        return None

    def get_string(self, name: str, *, warn: bool = True) -> tuple[int, str | None, str]:
        out = ctypes.c_char_p()
        rc = self._libs.xlu.xlu_cfg_get_string(self._cfg, name.encode(), ctypes.byref(out), 0 if warn else 1)
        return rc, _text(out.value) if rc == 0 else None, self._report.take()

    def get_long(self, name: str, *, warn: bool = True) -> tuple[int, int | None, str]:
        out = ctypes.c_long()
        rc = self._libs.xlu.xlu_cfg_get_long(self._cfg, name.encode(), ctypes.byref(out), 0 if warn else 1)
        return rc, out.value if rc == 0 else None, self._report.take()

    def get_list(self, name: str, *, warn: bool = True) -> tuple[int, Any, int, str]:
        handle, count = ctypes.c_void_p(), ctypes.c_int()
        rc = self._libs.xlu.xlu_cfg_get_list(
            self._cfg, name.encode(), ctypes.byref(handle), ctypes.byref(count), 0 if warn else 1
        )
        return rc, handle.value if rc == 0 else None, count.value if rc == 0 else 0, self._report.take()

    def string_items(self, name: str) -> tuple[list[str] | None, str]:
        """What xl's loops over ``disk``/``vif`` see, and what libxlutil printed: the items
        from xlu_cfg_get_listitem 0, 1, ... until it returns NULL (which it also does for
        the first item that is not a string). None when ``name`` is not a list (xl then
        warns, for a string, and looks no further)."""
        rc, handle, _count, report = self.get_list(name)
        if rc:
            return None, report
        items = []
        while (raw := self._libs.xlu.xlu_cfg_get_listitem(handle, len(items))) is not None:
            items.append(_text(raw))
        return items, report

    def _list_values(self, handle: Any) -> list:
        values: list = []
        x = self._libs.xlu
        index = 0
        while (item := x.xlu_cfg_get_listitem2(handle, index)) is not None:
            if x.xlu_cfg_value_type(item) == XLU_STRING:
                out = ctypes.c_char_p()
                x.xlu_cfg_value_get_string(self._cfg, item, ctypes.byref(out), 1)
                values.append(_text(out.value))
            else:
                inner = ctypes.c_void_p()
                x.xlu_cfg_value_get_list(self._cfg, item, ctypes.byref(inner), 1)
                values.append(self._list_values(inner.value))
            index += 1
        return values

    def value(self, name: str) -> Value | None:
        """The value that counts for ``name`` (a later setting wins, ``+=`` appends), read
        through the public calls only."""
        rc, handle, _count, _ = self.get_list(name, warn=False)
        if rc == 0:
            return self._list_values(handle)
        rc, text, _ = self.get_string(name, warn=False)
        return text if rc == 0 else None

    def values(self) -> dict[str, Value]:
        return {name: value for name in self.names() if (value := self.value(name)) is not None}

    def disk_parse(self, spec: str) -> DiskResult:
        """xlu_disk_parse of one spec into a fresh libxl_device_disk (libxl_device_disk_init
        first, as xl's parse_disk_config_multistring does). A spec with a newline may make
        the flex scanner jam, which exits the process (status 2, "flex scanner jammed"), so
        such a spec is parsed in a child process."""
        if "\n" in spec:
            return _disk_parse_in_child(self.source, spec)
        return self._disk_parse_here(spec)

    def _disk_parse_here(self, spec: str) -> DiskResult:
        disk = DeviceDisk()
        self._libs.xl.libxl_device_disk_init(ctypes.byref(disk))
        specs = (ctypes.c_char_p * 1)(spec.encode("utf-8", "surrogateescape"))
        rc = self._libs.xlu.xlu_disk_parse(self._cfg, 1, specs, ctypes.byref(disk))
        report = self._report.take()
        parsed = None
        if rc == 0:
            parsed = Disk(
                pdev_path=_text(disk.pdev_path),
                vdev=_text(disk.vdev),
                readwrite=disk.readwrite,
                is_cdrom=disk.is_cdrom,
                removable=disk.removable,
                format=DISK_FORMATS.get(disk.format, str(disk.format)),
                backend=DISK_BACKENDS.get(disk.backend, str(disk.backend)),
                script=_text(disk.script),
                backend_domname=_text(disk.backend_domname),
                specification=DISK_SPECIFICATIONS.get(disk.specification, str(disk.specification)),
            )
        self._libs.xl.libxl_device_disk_dispose(ctypes.byref(disk))
        return DiskResult(rc, report, parsed)

    def vif_rate_ok(self, rate: str) -> tuple[int, str]:
        """xlu_vif_parse_rate's verdict on a ``rate=`` value: (errno, message)."""
        nic = ctypes.create_string_buffer(NIC_BUFFER_BYTES)
        rc = self._libs.xlu.xlu_vif_parse_rate(self._cfg, rate.encode("utf-8", "surrogateescape"), nic)
        return rc, self._report.take()


def read(text: str, source: str = "command line") -> Config:
    """xlu_cfg_init + xlu_cfg_readdata, as xl's parse_config_data calls them. The result
    must be closed (use ``with``)."""
    lib = libs()
    report = _Report(lib.libc)
    cfg = lib.xlu.xlu_cfg_init(report.file, source.encode("utf-8", "surrogateescape"))
    if not cfg:
        report.close()
        raise MemoryError("xlu_cfg_init failed")
    data = text.encode("utf-8", "surrogateescape")
    error = lib.xlu.xlu_cfg_readdata(cfg, data, len(data))
    return Config(source, error, report.take(), lib, cfg, report)


JAMMED = -2  # DiskResult.error when flex jammed (xl itself exits with status 2)


_CHILD = """
import dataclasses, json, sys
from hosts.lab import xlutil
source, spec = json.load(sys.stdin)
with xlutil.read("", source) as cfg:
    result = cfg._disk_parse_here(spec)
json.dump([result.error, result.report, result.disk and dataclasses.asdict(result.disk)], sys.stdout)
"""


def _disk_parse_in_child(source: str, spec: str) -> DiskResult:
    child = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=json.dumps([source, spec]),
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=30,
        check=False,
    )
    if child.returncode != 0:
        if "flex scanner jammed" in child.stderr:
            return DiskResult(JAMMED, child.stderr, None)
        raise RuntimeError(f"xlu_disk_parse child failed ({child.returncode}): {child.stderr.strip()}")
    error, report, disk = json.loads(child.stdout)
    return DiskResult(error, report, Disk(**disk) if disk else None)
