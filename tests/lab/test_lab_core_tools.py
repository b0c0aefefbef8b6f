"""The everyday commands of a simulated dom0, called directly (no SSH)."""

from __future__ import annotations

import re

import pytest

from hosts.lab import tools
from hosts.lab.seed import reference_state
from hosts.lab.tools.base import ToolContext
from hosts.lab.tools.core import CORE_TOOLS


@pytest.fixture
def state() -> dict:
    return reference_state()


def run(state: dict, host: str, *argv: str) -> tuple[int, str, str]:
    return CORE_TOOLS[argv[0]](ToolContext(host=host, state=state, now=1_760_000_000.0), list(argv))


@pytest.mark.parametrize(
    ("argv", "status"),
    [
        (("test", "-e", "/etc/xen/vm/dns-xen01"), 0),
        (("test", "-f", "/etc/xen/vm/dns-xen01"), 0),
        (("test", "-d", "/etc/xen/vm"), 0),
        (("test", "-d", "/etc/xen/vm/dns-xen01"), 1),
        (("test", "-b", "/dev/vg_lws01/lvol1"), 0),
        (("test", "-b", "/dev/vg_dns01/lvol1"), 1),  # presented to xenwsl01, not here
        (("test", "-e", "/etc/xen/../xen/vm/./lws-xen01"), 0),
        (("test", "!", "-e", "/nope"), 0),
        (("[", "-d", "/dev/vg_lws01", "]"), 0),
        (("test",), 1),
    ],
)
def test_test_answers_from_the_simulated_file_system(state: dict, argv: tuple[str, ...], status: int) -> None:
    assert run(state, "xenka01", *argv) == (status, "", "")


def test_test_complains_like_bash_about_bad_operators(state: dict) -> None:
    assert run(state, "xenka01", "test", "-q", "/x") == (
        2,
        "",
        "bash: line 1: test: -q: unary operator expected\n",
    )
    assert (
        run(state, "xenka01", "test", "a", "b", "c", "d", "e")[2]
        == "bash: line 1: test: too many arguments\n"
    )


def test_ls_lists_and_reports_missing_paths_like_gnu(state: dict) -> None:
    status, out, err = run(state, "xenka01", "ls", "/etc/xen/vm/lws-xen01", "/missing")
    assert (status, out) == (2, "/etc/xen/vm/lws-xen01\n")
    assert err == "ls: cannot access '/missing': No such file or directory\n"
    assert run(state, "xenka01", "ls", "/etc/xen")[1] == "vm\n"
    status, out, _ = run(state, "xenka01", "ls", "-l", "/dev/vg_lws01/lvol1")
    assert status == 0 and out.startswith("brw-rw---- 1 root disk 253,")
    assert run(state, "xenka01", "ls", "-z")[0] == 2


def test_cat_prints_a_config_and_fails_on_missing_files(state: dict) -> None:
    status, out, _ = run(state, "xenwsl01", "cat", "/etc/xen/vm/lws-xen01")
    assert status == 0 and out.startswith('name = "lws-xen01"\n')
    assert run(state, "xenwsl01", "cat", "/nope") == (1, "", "cat: /nope: No such file or directory\n")
    assert run(state, "xenwsl01", "cat", "/etc") == (1, "", "cat: /etc: Is a directory\n")


def test_uptime_hostname_echo_true_false(state: dict) -> None:
    status, out, _ = run(state, "xenka01", "uptime")
    assert status == 0
    assert re.fullmatch(
        r" \d\d:\d\d:\d\d up \d+ days?, +(\d+:\d\d|\d+ min),  1 user,  load average: [\d.]+, [\d.]+, [\d.]+\n",
        out,
    )
    assert run(state, "xenka01", "hostname") == (0, "xenka01\n", "")
    assert run(state, "xenka01", "echo", "-n", "a", "b") == (0, "a b", "")
    assert run(state, "xenka01", "true")[0] == 0 and run(state, "xenka01", "false")[0] == 1


def test_brctl_show_lists_bridges_with_uplinks_and_vifs(state: dict) -> None:
    status, out, _ = run(state, "xenka01", "brctl", "show")
    lines = out.splitlines()
    assert status == 0 and lines[0] == "bridge name\tbridge id\t\tSTP enabled\tinterfaces"
    assert re.fullmatch(r"xenbr0\t\t8000\.[0-9a-f]{12}\tno\t\teth0", lines[1])
    assert lines[2:5] == ["\t\t\t\t\t\t\tvif1.0", "\t\t\t\t\t\t\tvif2.0", "\t\t\t\t\t\t\tvif3.0"]
    assert run(state, "xenka01", "brctl", "show", "xenbr9")[2] == "bridge xenbr9 does not exist!\n"


def test_the_registry_resolves_bare_names_and_standard_paths() -> None:
    assert tools.resolve("ls") is CORE_TOOLS["ls"]
    assert tools.resolve("/bin/ls") is CORE_TOOLS["ls"]
    assert tools.resolve("/opt/evil/ls") is None
    assert tools.resolve("nonexistent") is None


def test_ls_takes_double_dash_as_the_end_of_its_options():
    from hosts.lab.seed import reference_state
    from hosts.lab.tools.base import ToolContext
    from hosts.lab.tools.core import tool_ls

    state = reference_state()
    status, out, err = tool_ls(
        ToolContext("xenka01", state, 0), ["ls", "-d", "--", "/etc/xen/vm/lws-xen01", "/nope"]
    )
    assert status == 2
    assert out == "/etc/xen/vm/lws-xen01\n"
    assert err == "ls: cannot access '/nope': No such file or directory\n"


def test_grep_null_prints_every_line_of_every_file_after_its_name_and_a_nul_like_gnu(state: dict) -> None:
    config = state["hosts"]["xenwsl01"]["files"]["/etc/xen/vm/lws-xen01"]
    status, out, err = run(
        state,
        "xenwsl01",
        "grep",
        "--null",
        "-H",
        "-a",
        "-e",
        "",
        "--",
        "/etc/xen/vm/lws-xen01",
        "/nope",
        "/etc",
    )
    assert status == 2  # GNU: 2 when a file could not be read, even though lines were selected
    assert out == "".join(f"/etc/xen/vm/lws-xen01\0{line}\n" for line in config.splitlines())
    assert err == "grep: /nope: No such file or directory\ngrep: /etc: Is a directory\n"
    assert run(state, "xenwsl01", "grep", "-e", "", "--", "/etc/xen/vm/lws-xen01")[1] == config


def test_grep_selects_lines_with_a_fixed_pattern_and_says_when_none_was(state: dict) -> None:
    status, out, _ = run(state, "xenwsl01", "grep", "name", "/etc/xen/vm/lws-xen01")
    assert (status, out) == (0, 'name = "lws-xen01"\n')
    assert run(state, "xenwsl01", "grep", "-H", "nothing-like-this", "/etc/xen/vm/lws-xen01") == (1, "", "")
    assert run(state, "xenwsl01", "grep", "-F", "[", "/etc/xen/vm/lws-xen01")[0] == 0
    assert run(state, "xenwsl01", "grep", "[", "/etc/xen/vm/lws-xen01")[0] == 2  # a regex: not simulated
    assert run(state, "xenwsl01", "grep", "-q", "x", "/etc/xen/vm/lws-xen01")[2].startswith(
        "grep: unrecognized option '-q'"
    )
