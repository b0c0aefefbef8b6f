"""SSSU syntax builder and output parsers (hosts/drivers/eva.py): the exact wording is
UNVERIFIED, so the parsers must not depend on it."""

from __future__ import annotations

import pytest

from hosts.drivers.base import CommandResult
from hosts.drivers.eva import (
    group_status,
    parse_detail,
    parse_group_list,
    parse_hosts,
    parse_lag,
    set_group,
    sssu_argv,
    sssu_errors,
)
from hosts.drivers.storage import StorageError

DOTTED = """\
SSSU for HP StorageWorks Command View EVA
Version: 9.4.0
Build: 123

EVA-KA> LS DR_GROUP "\\Data Replication\\DRG-proxy-xen01"
\\Data Replication\\DRG-proxy-xen01 information:
  Identification:
    name ...............................: \\Data Replication\\DRG-proxy-xen01
  Condition_state:
    operationalstate ...................: good
    sourcedestination ..................: destination
    logstate ...........................: normal
    suspended ..........................: no
    writemode ..........................: asynchronous
    remotesystemname ...................: EVA-WSL
    replicationlag .....................: 2
    presentedto ........................: none
"""

OTHER_WORDING = """\
Operational State : Good
Source_Destination: Source
Log State ........: Logging
Suspended ........: No
Write Mode .......: Synchronous
Remote System Name: EVA-KA
Replication Lag ..: 00:01:05
Presented To .....: \\Hosts\\xenka01, \\Hosts\\xenwsl01
"""


def test_it_builds_one_argv_word_per_sssu_command_without_a_password():
    argv = sssu_argv(
        set_group("DRG-proxy-xen01", "FAILOVER"), manager="localhost", username="drportal", system="EVA-KA"
    )
    assert argv == [
        "sssu",
        "SELECT MANAGER localhost USERNAME=drportal",
        "SELECT SYSTEM EVA-KA",
        'SET DR_GROUP "\\Data Replication\\DRG-proxy-xen01" FAILOVER',
    ]
    assert not any("PASSWORD" in word.upper() for word in argv)


def test_it_quotes_a_system_name_with_spaces_and_refuses_quotes():
    assert sssu_argv(manager="m", username="u", system="EVA KA 01")[2] == 'SELECT SYSTEM "EVA KA 01"'
    with pytest.raises(StorageError):
        sssu_argv(manager="m", username="u", system='EVA"; rm')
    with pytest.raises(StorageError):
        set_group('DRG"x', "FAILOVER")


def test_it_reads_the_dotted_detail_layout():
    status = group_status("DRG-proxy-xen01", "EVA-KA", parse_detail(DOTTED))
    assert status.role == "secondary"
    assert status.peer_role == "primary"
    assert status.replication == "consistent"
    assert status.lag_seconds == 2.0
    assert status.presented_to == ()
    assert "EVA-KA: destination" in status.detail


def test_it_normalises_keys_so_wording_and_case_do_not_matter():
    fields = parse_detail(OTHER_WORDING)
    assert fields["operationalstate"] == "Good"
    status = group_status("g", "EVA-WSL", fields)
    assert (status.role, status.replication) == ("primary", "broken")  # logging: not replicating
    assert status.lag_seconds == 65.0
    assert status.presented_to == ("xenka01", "xenwsl01")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"remotesystemname": "none"}, "none"),
        ({"suspended": "yes"}, "suspended"),
        ({"operationalstate": "failed"}, "broken"),
        ({"logstate": "copying"}, "syncing"),
        ({"logstate": "merging"}, "syncing"),
        ({"logstate": "logging"}, "broken"),
        ({"operationalstate": "attention"}, "consistent"),
        ({"logstate": "strange"}, "unknown"),
    ],
)
def test_it_maps_array_states_to_replication(changes, expected):
    fields = parse_detail(DOTTED) | changes
    assert group_status("g", "S", fields).replication == expected


def test_a_group_without_a_replica_has_no_peer_role():
    fields = parse_detail(DOTTED) | {"remotesystemname": "none", "sourcedestination": "source"}
    status = group_status("g", "S", fields)
    assert (status.role, status.peer_role) == ("primary", "unknown")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2", 2.0),
        ("2.5 s", 2.5),
        ("00:00:02", 2.0),
        ("1:30", 90.0),
        ("unknown", None),
        ("", None),
        (None, None),
    ],
)
def test_it_reads_the_lag(text, seconds):
    assert parse_lag(text) == seconds


def test_it_reads_presented_hosts_with_or_without_path():
    assert parse_hosts("none") == ()
    assert parse_hosts("xenka01") == ("xenka01",)
    assert parse_hosts('"\\Hosts\\xenka01",xenwsl01') == ("xenka01", "xenwsl01")


def test_it_lists_group_names_and_ignores_the_echoed_command():
    text = 'EVA-KA> LS DR_GROUP\nDR_GROUP list:\n  \\Data Replication\\DRG-a\n  "\\Data Replication\\DRG-b"\n'
    assert parse_group_list(text) == ("DRG-a", "DRG-b")


def test_it_finds_error_lines_even_with_exit_status_zero():
    result = CommandResult("m", ("sssu",), "sssu", "banner\nError: System EVA-X not found\n", "", 0, 0.0)
    assert sssu_errors(result) == ["Error: System EVA-X not found"]
    ok = CommandResult("m", ("sssu",), "sssu", "name ....: Errorless\n", "", 0, 0.0)
    assert sssu_errors(ok) == []
