"""The commands a failover sends are the command model's (bench/failover.py COMMAND_MODEL):
no redundant SSSU call (each logs in to Command View: seconds on a real array), and the
lost site's array probed once per run, not once per DR group."""

from __future__ import annotations

import re

import pytest

from failover.choices import RunStateChoices

from .conftest import declare, lose_wsl, wait_for_run

pytestmark = pytest.mark.django_db(transaction=True)

SSSU_LINE = re.compile(r"^\[[^\]]+\] \$ sssu ", re.MULTILINE)


def sssu_calls(action) -> int:
    return len(SSSU_LINE.findall(action.output))


def test_a_group_is_checked_in_one_sssu_call_and_failed_over_in_a_read_and_one_more(lab, estate, worker):
    lose_wsl(lab)
    run = wait_for_run(declare(estate["mod"]).run.pk, worker=worker)
    assert run.state == RunStateChoices.SUCCEEDED
    checks = list(run.actions.filter(kind="check_group"))
    failovers = list(run.actions.filter(kind="failover_group"))
    assert len(checks) == len(failovers) == 3
    assert [sssu_calls(a) for a in checks] == [1, 1, 1], [a.output for a in checks]
    assert [sssu_calls(a) for a in failovers] == [2, 2, 2], [a.output for a in failovers]
    # The one failover call presents the group too: the integrity check's dom0 sees it.
    assert all(a.result["presented_to"] == ["xenka01"] for a in failovers)
    assert [sssu_calls(a) for a in run.actions.filter(kind="integrity_check")] == [1, 1, 1]


def test_the_lost_array_is_probed_once_per_run_and_the_verdict_is_named_where_it_is_reused(
    lab, estate, worker
):
    lose_wsl(lab)
    run = wait_for_run(declare(estate["mod"]).run.pk, worker=worker)
    notes = [
        line
        for action in run.actions.filter(kind="failover_group")
        for line in action.output.splitlines()
        if line.startswith("source fenced")
    ]
    assert len(notes) == 3, notes
    probed = [n for n in notes if "not probed again" not in n]
    assert len(probed) == 1, notes
    assert "eva-wsl unreachable" in probed[0]
