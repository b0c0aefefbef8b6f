"""The lab splits a command line into words exactly as ``shlex.split`` does (its fast path
and its cache included): every simulated tool sees the argv it always saw."""

from __future__ import annotations

import shlex

from hypothesis import example, given, settings
from hypothesis import strategies as st

from hosts.lab.sshd import split_command

# What shlex treats specially (quotes, backslash, its whitespace), whitespace it does not
# split on, and ordinary characters.
lines = st.text(st.sampled_from(list("ab -=/'\"\\ \t\r\n\x0b\x0c\xa0\u2003é$;")), max_size=30)


def _shlex(text: str) -> list[str] | None:
    try:
        return shlex.split(text)
    except ValueError:
        return None


@settings(max_examples=400, deadline=None)
@given(text=lines)
@example(text="xl list")
@example(text="grep --null -H -a -e '' -- /etc/xen/vm/vm0002 /etc/xen/vm/vm0052")
@example(text="sssu 'FILE \"/etc/drportal/sssu/DST-EVA.login\"' 'SELECT SYSTEM \"DST-EVA\"'")
@example(text="a\x0bb\xa0c")
@example(text="  \t")
@example(text="echo 'unclosed")
@example(text="trailing\\")
def test_a_command_line_splits_into_the_words_shlex_gives_when_any_line_is_sent(text: str) -> None:
    assert split_command(text) == _shlex(text)
    assert split_command(text) == _shlex(text)  # the cached answer too


def test_each_caller_gets_its_own_list_when_a_line_comes_back_from_the_cache() -> None:
    first = split_command("xl list --long")
    assert first is not None
    first.append("changed by a tool")
    assert split_command("xl list --long") == ["xl", "list", "--long"]
