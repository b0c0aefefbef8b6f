"""drportal's xl.cfg reader against Xen's own parser, libxlutil 4.17 (through ctypes).

What each side is:
- configs and disk specs: drportal's read_cfg / scan_disk_spec against the real
  xlu_cfg_readdata / xlu_cfg_get_* / xlu_disk_parse of Debian's libxenmisc4.17;
- vif specs: libxlutil has no vif parser (xl parses them itself, in xl_parse.c), so
  drportal's scan_vif_spec is compared with the lab's transcription of xl's
  parse_nic_config (hosts/lab/xl_config.py, written from xl's C: strtok, strtoul), and its
  rate= check with the real xlu_vif_parse_rate;
- whole configs: vm_config against the lab's reading of the same text (name, memory,
  maxmem, vCPUs, disks, NICs), which takes everything from libxlutil.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hosts.drivers.xen_cfg import cfg_long, read_cfg
from hosts.drivers.xen_records import ConfigParseError
from hosts.drivers.xen_specs import rate_error, scan_disk_spec, scan_vif_spec
from hosts.drivers.xen_vmconfig import vm_config
from hosts.lab import xl_config, xlutil
from tests.lab.xen_states import dom0_host

# Skipped on a developer's machine without the library; in CI (which installs it through
# scripts/ensure-services) a missing library fails every test here instead of hiding them.
pytestmark = pytest.mark.skipif(
    not xlutil.available() and not os.environ.get("CI"), reason="libxenmisc4.17 is not installed"
)
SOURCE = "cfg"


def xl_verdict(text: str) -> tuple[dict | None, int | None, str]:
    """(values, None, "") when libxlutil accepts the text, else (None, line, first message).
    The line is the one the error is on: for an unexpected newline xl prints one less
    (see xen_cfg._Parser.error), so that one is put back here."""
    with xlutil.read(text, SOURCE) as cfg:
        if cfg.ok:
            return cfg.values(), None, ""
        # split on "\n" only: the token xl quotes may hold a CR, which splitlines() breaks on
        first = cfg.report.split("\n")[0]
        match = re.match(rf"{SOURCE}:(\d+): ", first)
        assert match, cfg.report
        line = int(match.group(1)) + (1 if "unexpected NEWLINE" in first else 0)
        return None, line, first


def assert_same_reading(text: str) -> None:
    values, line, first = xl_verdict(text)
    try:
        mine = read_cfg(text, SOURCE)
    except ConfigParseError as exc:
        assert values is None, f"drportal refuses what xl reads: {exc}\n{text!r}"
        assert str(exc).startswith(f"{SOURCE}:{line}: "), f"xl: {first}\ndrportal: {exc}\n{text!r}"
        return
    assert values is not None, f"drportal reads what xl refuses ({first})\n{text!r}"
    assert mine.values == values, text
    with xlutil.read(text, SOURCE) as cfg:
        for name in cfg.names():
            assert mine.lines[name] == cfg.setting_line(name), (name, text)
            rc, number, warning = cfg.get_long(name)
            ours, our_warning = cfg_long(mine, name)
            assert ours == (number if rc == 0 else None), (name, text)
            assert (our_warning or "") == warning.rstrip("\n"), (name, text)


# -- configs written by hand -------------------------------------------------------------------

HAND_WRITTEN = [
    "name# c\r\n",  # a CR inside the token xl quotes in its error (found by hypothesis)
    "name = 'lws'\nmemory = 512\n",
    "memory = 1\nname = xen-f\n",
    "name = 'x' 'y'\n",
    "memory = 512m\n",
    "name='a'\n# a comment at the very end, without its newline",
    "name='a'\n#",
    "name = \n",
    "Name = 'x'\n",
    "a = 'x\\'y'\nb = \"\\x41\"\n",
    "a = '\\101'\n",
    "a = '\\1x'\n",
    "name = 123\nmemory='  12'\nvcpus='12 '\n",
    "disk = [ 'a' ]\ndisk += [ 'b' ]\nname='x'; name += 'y'\n",
    "a = [ [1,2], 'x', ]\nb=[]\nc=[,]\n",
    "memory = 5.5\n",
    "a = 1\n= 5\n",
    "a = 1 b\n",
    "a\n",
    "a = [\n'x',\n'y'\n]\nb=[\n\n]\n",
    "a = [ 'x'\n",
    "a = 'x'",
    ";;\n;a=1;b=2",
    "a = 1 #c",
    "a = 1 # c\n",
    "a = 'x\\\ny'\n",
    "a = [1] \nb = 'x'\na += 'y'\n",
    "a = 'x'\na += [1]\n",
    "a += 1\nb = 0x\nc = 08\nd = 99999999999999999999\n",
    "_a = 1\n",
    "a = -1\n",
    "a\t=\t1\r\n",
    "a = 'é'\n",
    "memory = 512\nmemory += 1\n",
    "a = 'tab\\there'\nb = \"\\a\\b\\f\\n\\r\\t\\v\\\\\"\n",
    "a = [ 'x', # a comment in a list\n 'y' ]\n",
]


@pytest.mark.parametrize("text", HAND_WRITTEN)
def test_it_reads_hand_written_configs_as_libxlutil_does(text):
    assert_same_reading(text)


def _lab_files(tmp_path) -> dict[str, str]:
    """Every config the lab ships or seeds: the reference estate, the synthetic estate of
    the benchmarks, and the dom0s of the tests (an array host's files are SSSU scripts)."""
    from hosts.lab.seed import reference_state, seed_synthetic
    from hosts.lab.store import LabStore

    files: dict[str, str] = {}
    for name, host in reference_state()["hosts"].items():
        if host["kind"] == "dom0":
            files.update({f"{name}:{path}": text for path, text in host.get("files", {}).items()})
    store = LabStore(tmp_path)
    seed_synthetic(store, hosts=4, vms=12)
    for name, host in store.read()["hosts"].items():
        if host["kind"] == "dom0":
            files.update({f"{name}:{path}": text for path, text in host.get("files", {}).items()})
    for path, text in dom0_host()["files"].items():
        files[f"tests:{path}"] = text
    return files


def test_every_config_the_lab_ships_reads_the_same_and_starts_the_same(tmp_path):
    files = _lab_files(tmp_path)
    assert len(files) > 20
    for where, text in files.items():
        assert_same_reading(text)
        assert_same_domain(text)
        assert vm_config(read_cfg(text, where)).warnings == (), where  # nothing drportal does not know


# -- hypothesis: configs, disk specs, vif specs ----------------------------------------------------

_fragments = st.sampled_from(
    [
        "name", "memory", "vcpus", "disk", "vif", "Maxmem", "a.b_c", "x9", "_bad",
        " ", "\t", "\n", "\r\n", "=", "+=", ";", ",", "[", "]", "#c\n", "# c", "-", ".", ":", "(",
        "0", "12", "0x1f", "08", "1e3", "512m", "'s'", '"d"', "'a\\'b'", "'\\n'", "'\\101'", "'\\x4'",
        "'unterminated", "'é'",
    ]
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_fragments, max_size=14).map("".join))
def test_it_reads_generated_text_as_libxlutil_does(text):
    assert_same_reading(text)


_spec_parts = st.sampled_from(
    [
        "phy:", "file:", "tap:", "tap2:", "aio:", "raw:", "qcow2:", "qed:", "drbd:", "iscsi:", "x:", "Phy:",
        "/dev/vg/lv", "r0", "/srv/a.img", "", " ", "xvda", "xvda1", "hdc:cdrom", "hdc:floppy", "w", "r", "rw",
        "ro", "raw", "qcow2", "sometimes", "vdev=xvdb", "access=ro", "format=vhd", "target=/dev/x,y",
        "devtype=cdrom", "devtype=disk", "devtype=x", "cdrom", "script=block-x", "backend=dd",
        "backendtype=qdisk", "backendtype=x", "specification=virtio", "discard", "no-discard", "trusted",
        "colo-port=0", "colo-host=h", "foo=bar", "Format=raw", "=", "a=",
    ]
)  # fmt: skip


@st.composite
def disk_specs(draw):
    parts = draw(st.lists(_spec_parts, max_size=6))
    joiners = draw(
        st.lists(st.sampled_from([",", ",", ",", "", ", "]), min_size=len(parts), max_size=len(parts))
    )
    return "".join(part + joiner for part, joiner in zip(parts, joiners, strict=True))


def assert_same_disk(spec: str) -> None:
    with xlutil.read("", SOURCE) as cfg:
        real = cfg.disk_parse(spec)
    mine, error = scan_disk_spec(spec, SOURCE)
    if real.error:
        assert error is not None, f"drportal reads a disk spec xl refuses: {spec!r}: {real.report}"
        assert real.report.startswith(error + "\n") or real.error == xlutil.JAMMED, (spec, error, real.report)
    else:
        assert error is None, f"drportal refuses a disk spec xl reads: {spec!r}: {error}"
        assert dataclasses.asdict(mine) == dataclasses.asdict(real.disk), spec


HAND_WRITTEN_DISKS = [
    "phy:/dev/vg_lws01/lvol1,xvda1,w", "/dev/vg/guest-volume,,hda", "/dev/vg/guest-volume,raw,hda,rw",
    "format=raw, vdev=hda, access=ro, target=/dev/vg/guest-volume", "vdev=xvda,access=rw,target=/srv/a,b.img",
    "raw:/dev/vg/guest-volume,hda,w", "tap:aio:/srv/x.img,xvda,w", "file:/srv/cd.iso,hdc:cdrom,r",
    "drbd:r0,xvda,w", "/dev/xvdz,xvda1,w", "qed:/x,xvda,w", "", ",,hdc:cdrom,r", "xvda ", " /dev/a, ,xvda",
    "foo=bar,xvda", "vdev=xvda,cdrom", "/dev/a\n,xvda", "script=block-iscsi,iscsi:x,xvda", "phy:raw:/a,xvda",
    "raw:qcow:/a,xvda", "x:/a,xvda", "x:a,xvda", "=", "a=", "abc=,x", "=\nx",
]  # fmt: skip


@pytest.mark.parametrize("spec", HAND_WRITTEN_DISKS)
def test_it_reads_hand_written_disk_specs_as_xlu_disk_parse_does(spec):
    assert_same_disk(spec)


@settings(max_examples=500, deadline=None)
@given(disk_specs())
def test_it_reads_generated_disk_specs_as_xlu_disk_parse_does(spec):
    assert_same_disk(spec)


_vif_parts = st.sampled_from(
    [
        "mac=00:16:3e:10:01:01", "mac=00:16:3E:74:3d:76", "mac=0:1:2:3:4:5", "mac=00-16-3e-0a-0b-0c",
        "mac=00:16:3e", "mac=00:16:3e:10:01:01:99", "mac=0x16:0:0:0:0:0", "mac=100:0:0:0:0:0", "mac=",
        "mac= 1:2:3:4:5:6", "MAC=00:16:3e:10:01:01", "bridge=xenbr0", "bridge=br1", "bridge=", "bridge=a b",
        "model=rtl8139", "ip=10.0.0.1", "script=vif-bridge", "vifname=v", "type=vif", "type=x", "accel=x",
        "rate=10Mb/s", "rate=1KB/s@20ms", "trusted", "untrusted", "xenbr0", "", " ", "  bridge=x",
        "colo_checkpoint_host=h", "colo_nope=1", "mtu=1500", "devid=2", "netdev=eth0",
    ]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(_vif_parts, max_size=5).map(",".join))
def test_it_reads_generated_vif_specs_as_xls_parse_nic_config_does(spec):
    lab = xl_config.LabConfig("x", 1, 1, 1, [], [], None, "pv", None, None)
    said: list[str] = []
    with xlutil.read("", SOURCE) as cfg:
        try:
            nic = xl_config._vif(cfg, spec, said, lab)
        except xl_config.LabConfigError:
            nic = None
    try:
        mine = scan_vif_spec(spec, SOURCE)
    except ConfigParseError:
        assert nic is None, f"drportal refuses a vif xl starts with: {spec!r}"
        return
    assert nic is not None, f"drportal reads a vif that makes xl exit: {spec!r} ({said})"
    assert mine.nic.bridge == nic.bridge, spec
    # A MAC xl could not read is None for drportal (xl keeps a partial one); else the same.
    assert mine.nic.mac == (None if nic.mac_invalid else nic.mac), spec
    assert bool(lab.unrecognized) == any("unrecognized argument" in text for text in mine.warnings), spec


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(r"\A(0|[0-9]{1,12}|0[0-7]{1,4}|08)[GMK]?[Bb]?(/s)?(@([0-9]{1,10}|0)[mu]?s?)?\Z")
    | st.text(alphabet="0123456789GMKBbmus/@x", max_size=12)
)
def test_it_checks_vif_rates_as_xlu_vif_parse_rate_does(rate):
    with xlutil.read("", SOURCE) as cfg:
        rc, _report = cfg.vif_rate_ok(rate)
    assert (rate_error(rate) is None) == (rc == 0), rate


# -- whole configs: what the domain starts with ----------------------------------------------------


def assert_same_domain(text: str) -> None:
    try:
        lab = xl_config.read_config(text, SOURCE)
    except xl_config.LabConfigError:
        lab = None
    try:
        mine = vm_config(read_cfg(text, SOURCE))
    except ConfigParseError as exc:
        assert lab is None, f"drportal refuses a config xl would start: {exc}\n{text}"
        return
    assert lab is not None, f"drportal reads a config xl refuses\n{text}"
    assert (mine.name, mine.memory_mb, mine.max_memory_mb, mine.vcpus) == (
        lab.name,
        lab.memory_mb,
        lab.max_memory_mb,
        lab.vcpus,
    ), text
    assert [(d.target, d.vdev, d.mode, d.script, d.cdrom) for d in mine.disks] == [
        (d.target, d.vdev, d.mode, d.script, d.cdrom) for d in lab.disks
    ], text
    assert [n.bridge for n in mine.nics] == [n.bridge for n in lab.nics], text


_values = {
    "name": st.sampled_from(["'lws-xen01'", "123", "[ 'x' ]", "''", "'a b'"]),
    "memory": st.sampled_from(["512", "'1024'", "'lots'", "0x200", "010", "[ 1 ]", "1e3", "' 64'"]),
    "maxmem": st.sampled_from(["2048", "256", "'x'"]),
    "vcpus": st.sampled_from(["1", "2", "'4'", "'two'"]),
    "maxvcpus": st.sampled_from(["1", "8"]),
    "uuid": st.sampled_from(["'e430b4b8-dc91-9390-dfe0-b83c138ea0aa'", "'nope'", "[ ]"]),
    "type": st.sampled_from(["'pv'", "'hvm'", "'p'", "''", "'bsd'"]),
    "disk": st.lists(
        disk_specs().filter(lambda s: "'" not in s and "\\" not in s and "\n" not in s), max_size=2
    ).map(lambda specs: "[ " + ", ".join(f"'{s}'" for s in specs) + " ]"),
    "vif": st.lists(st.lists(_vif_parts, max_size=3).map(",".join), max_size=2).map(
        lambda specs: "[ " + ", ".join(f"'{s}'" for s in specs) + " ]"
    )
    | st.just("'bridge=xenbr0'"),
}


@st.composite
def configs(draw):
    keys = draw(st.lists(st.sampled_from(sorted(_values)), unique=True, max_size=len(_values)))
    if draw(st.booleans()):
        keys = ["name", *[k for k in keys if k != "name"]]
    return "".join(f"{key} = {draw(_values[key])}\n" for key in keys)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_it_starts_generated_configs_as_xl_would(text):
    assert_same_reading(text)
    assert_same_domain(text)


# -- the binding itself ---------------------------------------------------------------------------


def test_the_disk_struct_layout_matches_the_library():
    """xlu_disk_parse writes inside libxl_device_disk as laid out here and no further, and
    fields of known specs read back where the 4.17 IDL puts them."""
    lib = xlutil.libs()
    size = ctypes.sizeof(xlutil.DeviceDisk)
    assert size == 144  # x86_64, from libxl_types.idl at RELEASE-4.17.7
    buffer = (ctypes.c_ubyte * 4096)(*([0xA5] * 4096))
    lib.xl.libxl_device_disk_init(buffer)
    assert all(b == 0xA5 for b in buffer[size:]), "libxl_device_disk_init wrote past the struct"
    with xlutil.read("", SOURCE) as cfg:
        specs = (ctypes.c_char_p * 1)(b"backend=dd,specification=virtio,vdev=xvdb,access=ro,target=/srv/a,b")
        assert lib.xlu.xlu_disk_parse(cfg._cfg, 1, specs, buffer) == 0
        assert all(b == 0xA5 for b in buffer[size:]), "xlu_disk_parse wrote past the struct"
        disk = xlutil.DeviceDisk.from_buffer(buffer)
        assert (disk.backend_domname, disk.pdev_path, disk.vdev) == (b"dd", b"/srv/a,b", b"xvdb")
        assert (disk.readwrite, xlutil.DISK_SPECIFICATIONS[disk.specification]) == (0, "virtio")
        lib.xl.libxl_device_disk_dispose(buffer)
        result = cfg.disk_parse("drbd:r0,xvda:cdrom,r")
    assert result.disk == xlutil.Disk(
        pdev_path="r0",
        vdev="xvda",
        readwrite=0,
        is_cdrom=1,
        removable=1,
        format="raw",
        backend="unknown",
        script="block-drbd",
        backend_domname=None,
        specification="unknown",
    )


def test_the_colo_vif_keys_are_those_of_xl():
    from hosts.drivers.xen_specs import NIC_COLO_KEYS

    assert len(NIC_COLO_KEYS) == 48  # MATCH_OPTION("colo_...") in xl_parse.c parse_nic_config, 4.17.7
