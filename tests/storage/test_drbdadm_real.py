"""Every drbdadm command line drportal builds (the driver's calls, and the commands its
instructions tell a person to type) is judged by Debian's real ``drbdadm -d`` (a dry run:
no kernel module needed) against real resource files of the reference estate
(tests/storage/drbd/*.res), as DRBD 9 and as DRBD 8.4 (drbdadm-84); every drbdsetup
command line by the real drbdsetup's option table (``drbdsetup xml-help``). A word the
real tools do not know fails here. Without drbd-utils these tests fail and say so."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from hosts.drivers.drbd import DrbdDriver
from hosts.drivers.storage import ManualStepRequired, StorageError, get_driver
from hosts.lab.tools import drbd_tool
from hosts.lab.tools.drbd_check import Checker
from tests.lab.storage_states import DRBD_GROUP, LabRunner, make_state, set_down

RES_FILES = Path(__file__).parent / "drbd"
MISSING = (
    "drbd-utils is not installed: these tests check drportal's drbdadm and drbdsetup command lines "
    "with the real tools; install it with 'apt-get install drbd-utils' (scripts/ensure-services does)"
)
PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/lib/drbd"])
VERSIONS = {"9": "9.2.0", "8.4": "8.4.11"}  # DRBD_DRIVER_VERSION_OVERRIDE, as tests/run.sh of drbd-utils


def tool_path(name: str) -> str:
    found = shutil.which(name, path=PATH)
    if found is None:
        pytest.fail(f"{MISSING} ({name} not found)")
    return found


def real_drbdadm(args: list[str], *, node: str, version: str) -> subprocess.CompletedProcess:
    res = RES_FILES / ("reference-84.res" if version == "8.4" else "reference-9.res")
    env = {
        "PATH": PATH,
        "LANG": "C",
        "__DRBD_NODE__": node,
        "DRBD_DRIVER_VERSION_OVERRIDE": VERSIONS[version],
    }
    return subprocess.run(
        ["drbdadm", "-d", "-c", str(res), *args],
        executable=tool_path("drbdadm"),
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def real_drbdsetup_options(command: str, version: str) -> set[str]:
    binary = tool_path("drbdsetup-84" if version == "8.4" else "drbdsetup")
    out = subprocess.run(
        [binary, "xml-help", command], capture_output=True, text=True, timeout=30, check=True
    )
    return set(re.findall(r'<option name="([^"]+)"', out.stdout))


def check_with_real_tools(commands: list[tuple[str, str]], version: str) -> list[str]:
    """(node, command line) pairs -> what the real tools refuse, one line each."""
    refused = []
    for node, line in commands:
        words = shlex.split(line)
        if words[0] == "drbdadm":
            proc = real_drbdadm(words[1:], node=node, version=version)
            if proc.returncode != 0:
                refused.append(
                    f"{node}: {line}: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-2:]}"
                )
        elif words[0] == "drbdsetup":
            known = real_drbdsetup_options(words[1], version)
            for option in (w[2:].split("=")[0] for w in words[2:] if w.startswith("--")):
                if option not in known:
                    refused.append(f"{node}: {line}: drbdsetup {words[1]} has no --{option}")
        else:
            refused.append(f"{node}: {line}: not a drbd-utils command")
    return refused


def drive_the_reference_runbook(version: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Run every DrbdDriver operation against the lab; what it sent, and the commands its
    instructions tell a person to type."""
    state = make_state(drbd_version=version, resync_seconds=0.0)
    data = dict(state["groups"][DRBD_GROUP], devices=["/dev/drbd1", "/dev/drbd2"])
    state["groups"]["DRG-data"] = {**data, "sides": {k: dict(v) for k, v in data["sides"].items()}}
    runners = {n: LabRunner(state, n) for n in ("xenwsl01", "xenka01")}
    wsl = DrbdDriver(runners["xenwsl01"])
    ka = DrbdDriver(runners["xenka01"], peer_runner=LabRunner(state, "xenwsl01"))
    instructions = []
    for group in (DRBD_GROUP, "DRG-data"):
        ka.status(group)
        ka.integrity_check(group)
        wsl.demote(group)  # planned migration: hand over, then take over
        ka.promote(group)
        ka.demote(group)
        wsl.promote(group)
    set_down(state, "xenwsl01")  # the disaster: WSL lost
    for group in (DRBD_GROUP, "DRG-data"):
        ka.promote(group, force=True)
    set_down(state, "xenwsl01", False)
    # On the old source an admin already tried to reconnect DRG-data: it is Connecting,
    # so the reverse must disconnect it first (the guide's recovery needs StandAlone).
    assert LabRunner(state, "xenwsl01").run(["drbdadm", "connect", "DRG-data"], timeout=5).ok
    for group in (DRBD_GROUP, "DRG-data"):
        try:
            DrbdDriver(runners["xenka01"]).reverse(group)
        except ManualStepRequired as step:
            instructions.append(step.instruction)
        ka.reverse(group)  # failback preparation, the old source discards its data
    sent = [(r.name, c) for r in (*runners.values(), ka.peer_runner) for c in r.commands]
    return sent, instructions


@pytest.mark.parametrize("version", ["9", "8.4"])
def test_every_command_line_the_driver_sends_is_accepted_by_the_real_tools(version):
    sent, _ = drive_the_reference_runbook(version)
    verbs = {shlex.split(c)[1] for _, c in sent if c.startswith("drbdadm")}
    assert verbs == {"primary", "secondary", "connect", "disconnect"}
    assert any("--force" in c for _, c in sent) and any("--discard-my-data" in c for _, c in sent)
    if version == "9":
        assert check_with_real_tools(sent, version) == []
        assert all(c.endswith("--json") for _, c in sent if c.startswith("drbdsetup status"))
    else:
        # 8.4's drbdsetup has no --json: each driver asks once per node, is refused, and
        # reads the text form from then on (five drivers-and-nodes in this runbook).
        asked = [(node, c) for node, c in sent if c.startswith("drbdsetup status") and c.endswith("--json")]
        assert len(asked) == 5
        assert check_with_real_tools(sent, version) == [
            f"{node}: {c}: drbdsetup status has no --json" for node, c in asked
        ]


@pytest.mark.parametrize("version", ["9", "8.4"])
def test_the_commands_a_person_is_told_to_type_are_accepted_by_the_real_drbdadm(version):
    _, instructions = drive_the_reference_runbook(version)
    assert len(instructions) == 2
    for text in instructions:
        commands = re.findall(r"drbdadm [a-z-]+(?: --[a-z-]+)* [A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*", text)
        assert len(commands) == 5, text  # disconnect, secondary, connect --discard-my-data, status, connect
        assert check_with_real_tools([("xenka01", c) for c in commands], version) == []


@pytest.mark.parametrize("version", ["9", "8.4"])
def test_a_wrong_option_or_verb_is_caught_by_the_real_drbdadm(version):
    wrong = [
        (
            "xenka01",
            f"drbdadm primary --overwrite-data-of-peer {DRBD_GROUP}",
        ),  # what the old lab took for --force
        ("xenka01", f"drbdadm status --statistics {DRBD_GROUP}"),  # drbdadm 9.22 does not pass it on
        ("xenka01", f"drbdadm failover {DRBD_GROUP}"),
        ("xenka01", "drbdadm primary DRG-nope"),
        ("xenka01", f"drbdsetup status {DRBD_GROUP} --frob"),
    ]
    refused = check_with_real_tools(wrong, version)
    assert len(refused) == 5, refused
    assert "unrecognized option '--overwrite-data-of-peer'" in refused[0]
    assert "Unknown command 'failover'" in refused[2]
    assert "'DRG-nope' not defined in your config (for this host)." in refused[3]


class OverwriteDriver(DrbdDriver):
    """A driver with the mistake the old lab let through (8.3's name for --force)."""

    def promote(self, group, *, force=False, current=None):
        self._run("primary", *(["--overwrite-data-of-peer"] if force else []), group)
        return self.status(group)


@pytest.mark.parametrize("version", ["9", "8.4"])
def test_the_lab_refuses_that_mistake_with_drbdadms_own_words(version):
    state = make_state(drbd_version=version)
    set_down(state, "xenwsl01")
    with pytest.raises(StorageError) as caught:
        OverwriteDriver(LabRunner(state, "xenka01")).promote(DRBD_GROUP, force=True)
    assert str(caught.value) == "drbdadm: unrecognized option '--overwrite-data-of-peer'\ntry 'drbdadm help'"
    assert caught.value.result.exit_status == 1
    assert state["groups"][DRBD_GROUP]["sides"]["xenka01"]["role"] == "secondary"  # nothing simulated


@pytest.mark.parametrize("version", ["9", "8.4"])
def test_the_labs_resource_file_is_the_reference_one_for_drbdadm(version):
    """The lab renders its own file from its state; for every command of the runbook the
    real drbdadm answers it exactly as it answers the hand-written reference file."""
    sent, _ = drive_the_reference_runbook(version)
    state = make_state(drbd_version=version)
    from hosts.lab.tools.drbd_check import render
    from hosts.lab.tools.drbd_view import config_of

    checker = Checker()
    for node, line in sent:
        words = shlex.split(line)
        if words[0] != "drbdadm" or words[-1] != DRBD_GROUP:
            continue
        lab = checker.dry_run(
            words[1:],
            config=render(config_of(state, node), host=node, version=version),
            host=node,
            version=version,
        )
        real = real_drbdadm(words[1:], node=node, version=version)
        assert (lab.status, "\n".join(lab.commands)) == (real.returncode, real.stdout.strip()), line


def test_without_drbd_utils_the_lab_says_so_and_the_driver_fails_with_that(tmp_path, monkeypatch):
    monkeypatch.setenv("DRPORTAL_DRBD_UTILS_PATH", str(tmp_path))  # an empty directory
    monkeypatch.setattr(drbd_tool, "CHECKER", Checker(cache_dir=tmp_path / "cache"))
    state = make_state()
    status, out, err = drbd_tool.drbdadm(_ctx(state), ["drbdadm", "primary", DRBD_GROUP])
    assert (status, out) == (1, "")
    assert err.startswith("lab: drbd-utils is not installed here (drbdadm not found): the lab checks every ")
    assert "apt-get install drbd-utils" in err
    with pytest.raises(StorageError, match="drbd-utils is not installed here"):
        get_driver("drbd", LabRunner(state, "xenka01")).status(DRBD_GROUP)


def _ctx(state):
    from hosts.lab.tools.base import ToolContext

    return ToolContext(host="xenka01", state=state, now=1000.0)
