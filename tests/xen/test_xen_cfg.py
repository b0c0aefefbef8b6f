"""The xl.cfg subset: parse (never exec), disk/vif specs, the placement view, and writing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hosts.drivers import xen_cfg
from hosts.drivers.xen import (
    ConfigParseError,
    Disk,
    Nic,
    parse_cfg,
    parse_disk_spec,
    parse_vif_spec,
    render_cfg,
    vm_config,
)
from hosts.drivers.xen_cfg import read_cfg
from hosts.drivers.xen_specs import scan_vif_spec

THESIS_CFG = """\
name = 'lws-xen01'
memory = 512
vcpus = 1
vif=[ 'mac=00:16:3e:10:01:01,bridge=xenbr0', 'mac=00:16:3e:11:01:01,bridge=xenbr1' ]
disk=[ 'phy:/dev/vg_lws01/lvol1,xvda1,w', 'phy:/dev/vg_lws01/lvol2,xvda2,w' ]
"""

# xen-tools generated (reference §2, verbatim): quoted numbers, a commented entry inside
# a multi-line list, a trailing comma.
XEN_TOOLS_CFG = """\
#
# Configuration file for the Xen instance domu1, created
# by xen-tools 9.3 on Sat Jan 11 11:11:11 2011.
#

#
#  Kernel + memory size
#
kernel      = '/boot/vmlinuz-9.11-3-amd64'
ramdisk     = '/boot/initrd.img-9.11-3-amd64'

vcpus       = '1'
memory      = '1024'

#
#  Disk device(s).
#
root        = '/dev/xvda1 ro'
disk        = [
                  'phy:/dev/mapper/domu1_root,xvda1,w',
#                  'phy:/dev/mapper/domu1_var,xvda2,w',
                  'phy:/dev/mapper/domu1_home,xvda3,w',
                                ]


#
#  Hostname
#
name        = 'domu1'

#
#  Networking
#
vif         = [ 'ip=192.168.1.1,mac=00:01:02:03:04:05,bridge=br1' ]

#
#  Behaviour
#
on_poweroff = 'destroy'
on_reboot   = 'restart'
on_crash    = 'restart'
"""

XLEXAMPLE_PVLINUX = """\
name = "example.pvlinux"
#uuid = "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX"
kernel = "/boot/vmlinuz"
#ramdisk = "/boot/initrd.gz"
extra = "root=/dev/xvda1"
memory = 128
#maxmem = 512
vcpus = 2
vif = [ '' ]
disk = [ '/dev/vg/guest-volume,raw,xvda,rw' ]
"""


class TestParseCfg:
    def test_it_reads_the_thesis_config(self):
        values = parse_cfg(THESIS_CFG)
        assert values["name"] == "lws-xen01" and values["memory"] == "512"  # libxlutil keeps numbers as text
        assert values["vif"] == ["mac=00:16:3e:10:01:01,bridge=xenbr0", "mac=00:16:3e:11:01:01,bridge=xenbr1"]
        config = vm_config(values)
        assert config.nics == (Nic("00:16:3e:10:01:01", "xenbr0"), Nic("00:16:3e:11:01:01", "xenbr1"))
        assert config.disks == (
            Disk("/dev/vg_lws01/lvol1", "xvda1", "w"),
            Disk("/dev/vg_lws01/lvol2", "xvda2", "w"),
        )
        assert (config.memory_mb, config.max_memory_mb, config.vcpus) == (512, 512, 1)

    def test_it_reads_a_xen_tools_config_with_comments_inside_a_list(self):
        config = vm_config(parse_cfg(XEN_TOOLS_CFG))
        assert config.name == "domu1"
        assert (config.memory_mb, config.vcpus) == (1024, 1)  # numbers quoted as strings are accepted
        assert [d.vdev for d in config.disks] == ["xvda1", "xvda3"]
        assert config.nics == (Nic("00:01:02:03:04:05", "br1"),)

    def test_it_reads_the_upstream_example(self):
        config = vm_config(parse_cfg(XLEXAMPLE_PVLINUX))
        assert config.name == "example.pvlinux"
        assert config.nics == (Nic(None, "xenbr0"),)  # '' = a random MAC on the default bridge
        assert config.disks == (Disk("/dev/vg/guest-volume", "xvda", "w"),)

    def test_it_reads_the_labs_own_seeded_configs(self):
        from hosts.lab.seed import reference_state

        files = reference_state()["hosts"]["xenka01"]["files"]
        config = vm_config(parse_cfg(files["/etc/xen/vm/dasi-xen01"]))
        assert (config.name, config.memory_mb, config.vcpus) == ("dasi-xen01", 2048, 2)
        assert config.disks == (Disk("/dev/vg_dasi01/lvol1", "xvda1", "w"),)

    def test_it_reads_semicolons_numbers_and_escapes(self):
        values = parse_cfg('a = 0x10; b = 010 ; c = 7\nd = "say \\"hi\\"\\n"\ne = [ [1, 2], "x", ]\nf=[]')
        assert values == {
            "a": "0x10",
            "b": "010",
            "c": "7",
            "d": 'say "hi"\n',
            "e": [["1", "2"], "x"],
            "f": [],
        }

    def test_a_later_setting_wins_as_for_xl_create_overrides(self):
        assert parse_cfg(THESIS_CFG + "\nmemory=256")["memory"] == "256"

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            # reference §1.4 (ClusterLabs capture): an unquoted name
            (
                "memory = 1\nname = xen-f\n",
                "cfg:2: config parsing error near `xen': syntax error, unexpected IDENT, "
                "expecting STRING or NUMBER or '['",
            ),
            ("name = 'x' 'y'\n", "cfg:1: config parsing error near `'y''"),
            ("disk = [ 'a' 'b' ]\n", "config parsing error near `'b''"),
            ("disk = [ 'a',\n", "unexpected $end"),
            ("name = 'unterminated\n", "lexical error"),
            ("memory = 512m\n", "near `m': syntax error, unexpected IDENT"),  # NUMBER 512, then IDENT m
            ("Name = 'x'\n", "near `Name': lexical error"),  # names are [a-z][._0-9a-z]*
            ("name = 'x'\r\n", "near `\r': lexical error"),  # a CRLF file
            ("name = 'x\\q'\n", "invalid character after backlash in quoted string"),
            ("name = '\\x41'\n", "invalid digit after backslash hexnumerical character escape"),
            ("= 5\n", "unexpected '='"),
        ],
    )
    def test_it_refuses_what_xl_would_refuse_in_xls_words(self, text, message):
        with pytest.raises(ConfigParseError) as raised:
            parse_cfg(text, source="cfg")
        assert message in str(raised.value)

    def test_it_never_executes_python(self):
        with pytest.raises(ConfigParseError):
            parse_cfg("name = __import__('os').system('true')\n")


class TestSpecs:
    @pytest.mark.parametrize(
        ("spec", "disk"),
        [
            ("phy:/dev/vg_lws01/lvol1,xvda1,w", Disk("/dev/vg_lws01/lvol1", "xvda1", "w")),
            ("phy:/dev/vg/lv,xvdb,r", Disk("/dev/vg/lv", "xvdb", "r")),
            ("/dev/vg/guest-volume,,hda", Disk("/dev/vg/guest-volume", "hda", "w")),
            ("/dev/vg/guest-volume,raw,hda,rw", Disk("/dev/vg/guest-volume", "hda", "w")),
            (
                "format=raw, vdev=hda, access=ro, target=/dev/vg/guest-volume",
                Disk("/dev/vg/guest-volume", "hda", "r"),
            ),
            ("vdev=xvda,access=rw,target=/srv/a,b.img", Disk("/srv/a,b.img", "xvda", "w")),
            ("raw:/dev/vg/guest-volume,hda,w", Disk("/dev/vg/guest-volume", "hda", "w")),
            ("tap:aio:/srv/x.img,xvda,w", Disk("/srv/x.img", "xvda", "w")),
            ("file:/srv/cd.iso,hdc:cdrom,r", Disk("/srv/cd.iso", "hdc", "r", cdrom=True)),
            (",,hdc:cdrom,r", Disk("", "hdc", "r", cdrom=True)),
            ("drbd:r0,xvda,w", Disk("r0", "xvda", "w", script="block-drbd")),
        ],
    )
    def test_it_reads_disk_specs(self, spec, disk):
        assert parse_disk_spec(spec) == disk

    @pytest.mark.parametrize(
        "spec",
        [
            "",
            "phy:/dev/vg/lv",
            "phy:/dev/vg/lv,xvda,sometimes",
            "a,raw,b,w,extra",
            "/dev/xvdz,xvda1,w",  # without a prefix the second word is the format: libxl refuses it
            "qed:/srv/x.img,xvda,w",  # there is no qed: prefix
            "Format=raw,/dev/x,xvda",  # keys are lower case
        ],
    )
    def test_it_refuses_incomplete_disk_specs(self, spec):
        with pytest.raises(ConfigParseError):
            parse_disk_spec(spec)

    @pytest.mark.parametrize(
        ("spec", "nic"),
        [
            ("mac=00:16:3e:10:01:01,bridge=xenbr0", Nic("00:16:3e:10:01:01", "xenbr0")),
            ("bridge=xenbr1, mac=00:16:3E:74:3d:76", Nic("00:16:3e:74:3d:76", "xenbr1")),
            ("mac=00:16:3E:74:3d:76,model=rtl8139,bridge=xenbr0", Nic("00:16:3e:74:3d:76", "xenbr0")),
            ("mac=00:16:3E:74:34:32", Nic("00:16:3e:74:34:32", "xenbr0")),
            ("", Nic(None, "xenbr0")),
        ],
    )
    def test_it_reads_vif_specs(self, spec, nic):
        assert parse_vif_spec(spec) == nic

    @pytest.mark.parametrize(
        ("spec", "nic", "warning"),
        [
            # xl prints "Invalid parameter `mac'." and starts the domain anyway (xl_parse.c
            # ignores parse_nic_config's return value)
            ("mac=00:16:3e:10:01,bridge=xenbr1", Nic(None, "xenbr1"), "Invalid parameter `mac'"),
            ("xenbr0", Nic(None, "xenbr0"), "unrecognized argument `xenbr0'"),
            ("MAC=00:16:3e:10:01:01", Nic(None, "xenbr0"), "unrecognized argument `MAC=00:16:3e:10:01:01'"),
        ],
    )
    def test_it_reads_what_xl_would_start_with_and_warns_about_the_rest(self, spec, nic, warning):
        vif = scan_vif_spec(spec)
        assert vif.nic == nic
        assert any(warning in text for text in vif.warnings)

    @pytest.mark.parametrize(
        ("spec", "nic"),
        [
            ("mac=0:16:3e:1:2:3", Nic("00:16:3e:01:02:03", "xenbr0")),  # strtoul per octet
            (
                "mac=00-16-3e-0a-0b-0c,,bridge=br1",
                Nic("00:16:3e:0a:0b:0c", "br1"),
            ),  # any separator; ,, skipped
            ("  bridge=xenbr1", Nic(None, "xenbr1")),  # leading blanks dropped
        ],
    )
    def test_it_reads_macs_as_xl_does(self, spec, nic):
        assert parse_vif_spec(spec) == nic

    @pytest.mark.parametrize("spec", ["rate=10Mb", "rate=", "rate=0Mb/s", "mtu=x", "devid="])
    def test_it_refuses_what_makes_xl_exit(self, spec):
        with pytest.raises(ConfigParseError):
            scan_vif_spec(spec)


class TestVmConfig:
    def test_it_needs_a_name_in_xls_words(self):
        with pytest.raises(ConfigParseError, match=r"^Domain name must be specified\.$"):
            vm_config(parse_cfg("memory = 512\n"))

    def test_it_defaults_like_xl(self):
        config = vm_config(parse_cfg("name = 'x'\n"))
        assert (config.memory_mb, config.max_memory_mb, config.vcpus, config.nics, config.disks) == (
            32,
            32,
            1,
            (),
            (),
        )

    def test_maxmem_above_memory_starts_the_guest_pre_ballooned(self):
        config = vm_config(parse_cfg("name = 'x'\nmemory = 512\nmaxmem = 1792\n"))
        assert (config.memory_mb, config.max_memory_mb) == (512, 1792)

    def test_what_xl_only_warns_about_is_a_warning_not_a_refusal(self):
        config = vm_config(
            read_cfg("name = 'x'\nmemory = 'lots'\nvif = [ 'bridge=br1', [ 1 ], 'bridge=br2' ]\n", "cfg")
        )
        assert config.memory_mb == 32  # xl ignores the value (xlu_cfg_get_long fails) and uses its default
        assert config.nics == (Nic(None, "br1"),)  # xl's loop stops at the first item that is not a string
        assert (
            "cfg:2: warning: parameter `memory' is not a valid number (xl ignores it and uses its default)"
            in (config.warnings)
        )
        assert any("item 1 of `vif' is a list" in text for text in config.warnings)

    def test_keys_drportal_does_not_interpret_are_named_in_the_warnings(self):
        config = vm_config(
            read_cfg("name = 'x'\nshadow_memory = 64\nfrobnicate = 1\non_crash = 'restart'\n", "cfg")
        )
        assert (
            "cfg:2: `shadow_memory' is not interpreted by drportal: shadow memory is extra to `memory`"
            in (config.warnings)
        )
        assert "cfg:3: `frobnicate' is not interpreted by drportal (xl applies it)" in config.warnings
        assert not any("on_crash" in text for text in config.warnings)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("name = 'x'\ntype = 'bsd'\n", "Invalid domain type bsd."),
            ("name = 'x'\nuuid = 'nope'\n", "Failed to parse UUID: nope"),
            ("name = 'x'\nvcpus = 4\nmaxvcpus = 2\n", "xl: maxvcpus < vcpus"),
            ("name = 'x'\nmemory = 0\n", "cfg:2: memory = 0: must be a positive number"),
            ("name = [ 'x' ]\n", "Domain name must be specified."),
        ],
    )
    def test_it_refuses_what_xl_refuses(self, text, message):
        with pytest.raises(ConfigParseError) as raised:
            vm_config(read_cfg(text, "cfg"))
        assert str(raised.value) == message


class TestRenderCfg:
    def test_it_writes_the_thesis_style(self):
        text = render_cfg(
            name="lws-xen01",
            memory_mb=512,
            max_memory_mb=512,
            nics=[{"mac": "00:16:3e:10:01:01", "bridge": "xenbr0"}, Nic("00:16:3e:11:01:01", "xenbr1")],
            disks=[{"target": "/dev/vg_lws01/lvol1", "vdev": "xvda1", "mode": "w"}],
            comment="lws-xen01: Linux Web Services",
        )
        assert text.startswith("# lws-xen01: Linux Web Services\nname = 'lws-xen01'\n")
        assert (
            "vif = [ 'mac=00:16:3e:10:01:01,bridge=xenbr0',\n"
            "        'mac=00:16:3e:11:01:01,bridge=xenbr1' ]\n"
        ) in text
        assert "disk = [ 'phy:/dev/vg_lws01/lvol1,xvda1,w' ]\n" in text

    def test_what_it_writes_reads_back(self):
        disks = (Disk("/dev/vg_dasi01/lvol1", "xvda1", "w"), Disk("r7", "xvdb", "r", script="block-drbd"))
        nics = (Nic("00:16:3e:10:02:01", "xenbr0"), Nic(None, "xenbr1"))
        text = render_cfg(
            name="dasi-xen01",
            memory_mb=1024,
            max_memory_mb=2048,
            vcpus=2,
            nics=nics,
            disks=disks,
            uuid="e430b4b8-dc91-9390-dfe0-b83c138ea0aa",
        )
        config = vm_config(parse_cfg(text))
        assert (config.name, config.memory_mb, config.max_memory_mb, config.vcpus) == (
            "dasi-xen01",
            1024,
            2048,
            2,
        )
        assert config.nics == nics and config.disks == disks
        assert config.uuid == "e430b4b8-dc91-9390-dfe0-b83c138ea0aa"

    def test_it_refuses_to_write_what_it_cannot_quote(self):
        with pytest.raises(ValueError):
            render_cfg(name="it's", memory_mb=1)


_FRAGMENTS = st.sampled_from(
    [
        "name", "memory", "disk", "a.b_c", "x9", "1a", "_", " ", "\t", "\n", "\r\n", "=", "+=", ";", ",",
        "[", "]", "#c\n", "# c", "-", ".", "0", "12", "0x1f", "'s'", '"d"', "'a\\'b'", "'\\101'", "'open",
    ]
)  # fmt: skip


def _token_by_token(text: str):
    """The lazy parser alone (xl's order of errors): what read_cfg's one-pass reading must equal."""
    try:
        return xen_cfg._Parser(text, "cfg").parse()
    except ConfigParseError as exc:
        return str(exc)


def _read(text: str):
    try:
        return read_cfg(text, "cfg")
    except ConfigParseError as exc:
        return str(exc)


_PLAIN_CASES = [
    THESIS_CFG,
    XEN_TOOLS_CFG,
    "disk = [ 'a' ]\ndisk += [ 'b' ]\nname='x'; name += 'y'\n",
    "a = [ [1,2], 'x', ]\nb=[]\nc=[,]\n",
    "a = [\n'x',\n'y'\n]\nb=[\n\n]\nc = 1\n",
    "a = [ 'x', # a comment in a list\n 'y' ]\nb = 2 # c\n",
    ";;\n;a=1;b=2",
    "a = 'x'\na += [1]\n",
    "a = [1] \nb = 'x'\na += 'y'\n",
    "a = 1a._\n",  # the lazy lexer stops at '.' (NUMBER 1a); no shorter split may read on
    "a = 1g\n",
    "a = 1 #c",
    "name='a'\n#",
    "a\t=\t1\r\n",
    "a = 'x\\'y'\n",
    "memory = 512\nmemory += 1\n   ",
    "a = [ 'x'\n",
    "a = \n",
    "",
]


class TestOnePassReading:
    """read_cfg reads an ordinary config in one pass over all its tokens; every text reads
    exactly as the token-by-token parser (held to libxlutil) reads it, error for error."""

    @pytest.mark.parametrize("text", _PLAIN_CASES)
    def test_it_reads_each_text_as_the_token_by_token_parser(self, text):
        assert _read(text) == _token_by_token(text)

    def test_it_reads_the_benchmarks_configs_in_one_pass(self):
        text = THESIS_CFG + "bootloader = 'pygrub'\non_crash = \"restart\"\n"
        assert xen_cfg._read_plain(text, "cfg") == _token_by_token(text)

    @pytest.mark.parametrize("text", ["a = 1a._\n", "a = 'x\\'y'\n", "a = 1 #c", "a = 'x'\na += [1]\n"])
    def test_what_is_not_plain_goes_to_the_token_by_token_parser(self, text):
        assert xen_cfg._read_plain(text, "cfg") is None

    @settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(_FRAGMENTS, max_size=16).map("".join))
    def test_it_reads_generated_text_as_the_token_by_token_parser(self, text):
        assert _read(text) == _token_by_token(text)
