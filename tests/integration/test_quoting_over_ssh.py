"""Names and paths full of shell syntax, sent through the real drivers to the lab over SSH,
are refused by validation before any command is sent (an error naming the value), or
arrive as exactly one word: the lab journals the command line it received, and
``shlex.split`` of it (what a POSIX shell would make of it) gives back the argv we meant.
Nothing is ever interpreted."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hosts import validators
from hosts.drivers.eva import EvaDriver
from hosts.drivers.ssh import SSHConnection
from hosts.drivers.storage import GroupNotFound, StorageError
from hosts.drivers.xen import DomainNotFound, XenDriver, XenError
from hosts.reference import sssu_login_file

from .conftest import LabHandle

SHELL = ";$()`'\" \n\r\t\\|&<>*?~!#{}%=\x00"
# Mostly shell syntax, some plain letters (so valid names occur too), a little non-ASCII.
words = st.text(st.sampled_from([*SHELL, "a", "b", "1", "-", ".", "_", "é", "→"]), min_size=1, max_size=24)
nasty = [
    "; touch /tmp/drportal-pwned",
    "$(touch /tmp/drportal-pwned)",
    "`id`",
    'it\'s "quoted"',
    "two words",
    "line\nbreak",
    "-rf",
    "$HOME",
    "a;b",
]
EXAMPLES = settings(max_examples=40, deadline=None)


@pytest.fixture(scope="module")
def ka(shared_lab: LabHandle) -> Iterator[SSHConnection]:
    with SSHConnection(shared_lab.target("xenka01")) as conn:
        yield conn


@pytest.fixture(scope="module")
def eva_ka(shared_lab: LabHandle) -> Iterator[SSHConnection]:
    with SSHConnection(shared_lab.target("eva-ka")) as conn:
        yield conn


def received(lab: LabHandle, since: int) -> list[list[str]]:
    """The argv of each command the lab received since ``since``, as a shell would split it."""
    return [shlex.split(entry["command"]) for entry in lab.journal(since)]


def with_examples(test):
    for word in nasty:
        test = example(word=word)(test)
    return test


@EXAMPLES
@given(word=words)
@with_examples
def test_a_domain_name_is_refused_before_any_command_or_arrives_as_one_word(
    shared_lab: LabHandle, ka: SSHConnection, word: str
) -> None:
    xen = XenDriver(ka, "xl", timeout=10)
    since = shared_lab.last_seq()
    try:
        xen.destroy(word)
    except ValueError as refused:
        assert repr(word) in str(refused)
        assert received(shared_lab, since) == []
        if set(word) & set(SHELL):
            # The inventory refuses it too, naming it, so it never gets as far as a driver.
            with pytest.raises(ValidationError) as invalid:
                validators.validate_domain_name(word)
            assert repr(word) in invalid.value.messages[0]
        return
    except DomainNotFound:
        pass
    assert not set(word) & set(SHELL), "a name with shell syntax must never be sent"
    assert received(shared_lab, since) == [["xl", "destroy", word]]


@EXAMPLES
@given(word=words)
@with_examples
def test_a_path_is_refused_before_any_command_or_arrives_as_one_word(
    shared_lab: LabHandle, ka: SSHConnection, word: str
) -> None:
    xen = XenDriver(ka, "xl", timeout=10)
    path = f"/etc/xen/vm/{word}"
    since = shared_lab.last_seq()
    try:
        xen.file_exists(path)
        # Not found: xl's business, the shell's never.
        with pytest.raises(XenError):
            xen.create(path, memory_mb=256)
    except ValueError as refused:
        assert repr(path) in str(refused)
        assert received(shared_lab, since) == []
        assert set(word) & set("\n\r\x00=")  # '=' would be read by xl as a KEY=VALUE override
        return
    assert received(shared_lab, since) == [["test", "-e", path], ["xl", "create", path, "memory=256"]]


@EXAMPLES
@given(word=words)
@with_examples
def test_a_dr_group_name_never_reaches_the_array_except_as_one_word(
    shared_lab: LabHandle, eva_ka: SSHConnection, word: str
) -> None:
    eva = EvaDriver(eva_ka, system="EVA-KA", login_file=sssu_login_file("EVA-KA"), timeout=10)
    since = shared_lab.last_seq()
    with pytest.raises(StorageError) as failed:
        eva.status(word)
    sent = received(shared_lab, since)
    prefix = [
        "sssu",
        f'FILE "{sssu_login_file("EVA-KA")}"',
        "SET OPTIONS ON_ERROR=EXIT_ON_ERROR",
        'SELECT SYSTEM "EVA-KA"',
    ]
    assert all(argv[:4] == prefix for argv in sent)
    if sent and sent[0][4:] == [f'LS DR_GROUP "\\Data Replication\\{word}"']:
        assert not set(word) & set(SHELL)  # accepted: it arrived inside exactly one SSSU word
        return
    assert f"{word!r}" in str(failed.value)
    assert sent == []  # refused before any command


@pytest.mark.parametrize("word", ["a;b", "$(id)", "-rf", "two words"])
def test_an_invalid_dr_group_name_is_refused_before_any_command(
    shared_lab: LabHandle, eva_ka: SSHConnection, word: str
) -> None:
    eva = EvaDriver(eva_ka, system="EVA-KA", login_file=sssu_login_file("EVA-KA"), timeout=10)
    since = shared_lab.last_seq()
    with pytest.raises(StorageError, match="invalid DR group") as refused:
        eva.status(word)
    assert not isinstance(refused.value, GroupNotFound)
    assert received(shared_lab, since) == []


def test_nothing_the_property_tests_sent_ran_anything(shared_lab: LabHandle) -> None:
    """Belt and braces: the words were journalled, never executed on this machine."""
    assert not Path("/tmp/drportal-pwned").exists()
