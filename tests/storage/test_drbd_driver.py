"""The DRBD driver against the lab (in-process Runner, tests/lab/storage_states.py): which
status form it asks for, the split-brain recovery it runs, and what it does with an
answer it cannot read."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from hosts.drivers.base import CommandResult, quote_command
from hosts.drivers.drbd import DrbdDriver
from hosts.drivers.drbd_status import StatusUnreadable
from hosts.drivers.storage import StorageError
from tests.lab.storage_states import DRBD_GROUP, LabRunner, make_state, set_down

R = DRBD_GROUP


JSON = f"drbdsetup status {R} --json"
TEXT = f"drbdsetup status {R} --verbose --statistics"
REFUSED_84 = (20, "(drbdsetup-84's usage)\n", "status: unrecognized option '--json'\n")


class AnswerRunner:
    """Answers each command line with a fixed (exit status, stdout, stderr): a double at
    our own boundary, for answers the lab never gives."""

    def __init__(self, name: str, answers: dict[str, tuple[int, str, str]]) -> None:
        self.name, self.answers = name, answers
        self.commands: list[str] = []

    def run(self, argv: Sequence[str], *, timeout: float | None = None) -> CommandResult:
        command = quote_command(argv)
        self.commands.append(command)
        status, out, err = self.answers[command]
        return CommandResult(self.name, tuple(argv), command, out, err, status, 0.0)


def test_it_reads_json_where_drbdsetup_has_it():
    runner = LabRunner(make_state(), "xenka01")
    driver = DrbdDriver(runner)
    status = driver.status(R)
    assert (status.role, status.peer_role, status.replication) == ("secondary", "primary", "consistent")
    driver.status(R)
    assert runner.commands == [f"drbdsetup status {R} --json"] * 2


def test_on_84_it_falls_back_to_the_text_form_once_refused():
    runner = LabRunner(make_state(drbd_version="8.4"), "xenka01")
    driver = DrbdDriver(runner)
    assert driver.status(R).replication == "consistent"
    driver.status(R)
    assert runner.commands == [
        f"drbdsetup status {R} --json",  # refused: "status: unrecognized option '--json'", exit 20
        f"drbdsetup status {R} --verbose --statistics",
        f"drbdsetup status {R} --verbose --statistics",
    ]


@pytest.mark.parametrize("version", ["9", "8.4"])
def test_json_and_text_say_the_same_during_a_resync(version):
    state = make_state(drbd_version=version, resync_seconds=10.0)
    set_down(state, "xenwsl01")
    ka = DrbdDriver(
        LabRunner(state, "xenka01", now=1000.0), peer_runner=LabRunner(state, "xenwsl01", now=1000.0)
    )
    ka.promote(R, force=True)
    set_down(state, "xenwsl01", False)
    after = ka.reverse(R)
    assert (after.role, after.replication) == ("primary", "syncing")
    assert "replication:SyncSource done:0.00" in after.detail


@pytest.mark.parametrize("version", ["9", "8.4"])
def test_reverse_runs_the_guides_split_brain_recovery(version):
    state = make_state(drbd_version=version)
    set_down(state, "xenwsl01")
    old, new = LabRunner(state, "xenwsl01"), LabRunner(state, "xenka01")
    ka = DrbdDriver(new, peer_runner=old)
    ka.promote(R, force=True)
    set_down(state, "xenwsl01", False)
    assert old.run(["drbdadm", "connect", R], timeout=5).ok  # someone tried: it is Connecting
    old.commands.clear()
    new.commands.clear()
    assert ka.reverse(R).replication == "consistent"
    assert [c for c in old.commands if c.startswith("drbdadm")] == [
        f"drbdadm disconnect {R}",
        f"drbdadm connect --discard-my-data {R}",
    ]
    assert [c for c in new.commands if c.startswith("drbdadm")] == [f"drbdadm connect {R}"]


def test_reverse_refuses_while_the_old_source_is_still_primary():
    state = make_state()
    state["groups"][R]["replication"] = "broken"
    state["groups"][R]["sides"]["xenka01"]["role"] = "primary"
    state["groups"][R]["sides"]["xenwsl01"]["role"] = "primary"  # only a broken lab could store this
    ka = DrbdDriver(LabRunner(state, "xenka01"), peer_runner=LabRunner(state, "xenwsl01"))
    with pytest.raises(StorageError, match="primary on both xenka01 and xenwsl01"):
        ka.reverse(R)


def test_an_unreadable_status_names_host_command_and_line_and_yields_nothing():
    answer = f"{R} role:Secondary\n  disk:UpToDate\n  xenwsl01 role:Primary\n    peer-disk:Sleepy\n\n"
    driver = DrbdDriver(AnswerRunner("xenka01", {JSON: REFUSED_84, TEXT: (0, answer, "")}))
    with pytest.raises(StatusUnreadable) as caught:
        driver.status(R)
    assert str(caught.value) == (
        f"xenka01: cannot read what '{TEXT}' printed: "
        "line 4: '    peer-disk:Sleepy': expected peer-disk: one of Diskless, Attaching, Detaching, Failed, "
        "Negotiating, Inconsistent, Outdated, DUnknown, Consistent, UpToDate"
    )


def test_a_status_without_the_resource_is_an_error_not_an_empty_answer():
    driver = DrbdDriver(AnswerRunner("xenka01", {JSON: (0, "[\n]\n\n", "")}))
    with pytest.raises(StorageError, match=re.escape(f"xenka01: '{JSON}' printed no resource '{R}'")):
        driver.status(R)


def test_drbd_utils_without_a_status_command_are_named_too_old():
    usage = (20, "\nUSAGE: drbdsetup command device arguments options\n...\ninvalid command\n", "")
    driver = DrbdDriver(AnswerRunner("xenka01", {JSON: usage, TEXT: usage}))
    with pytest.raises(StorageError, match=r"drbd-utils before 8\.9\.2.*needs drbd-utils 8\.9\.2 or newer"):
        driver.status(R)


def test_integrity_check_names_a_diskless_client_lost_quorum_and_frozen_io():
    state = make_state()
    state["groups"][R]["sides"]["xenwsl01"].update(client=True, quorum=False, suspended=["quorum"])
    report = DrbdDriver(LabRunner(state, "xenwsl01")).integrity_check(R)
    assert report.problems == (
        f"problem: xenwsl01 is a diskless client of {R}: it holds no copy of the data",
        f"problem: {R} has no quorum on xenwsl01: DRBD refuses writes (quorum:no)",
        f"problem: I/O of {R} is suspended on xenwsl01 (quorum): writes hang until it is resumed",
    )
