"""Nothing reaches the remote shell unquoted: any word comes back from printf exactly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hosts.drivers.ssh import SSHConnection

# NUL cannot travel in an argv; surrogates cannot be encoded to UTF-8.
words = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=40)


@pytest.fixture(scope="module")
def shared_conn(sshd) -> Iterator[SSHConnection]:
    # One connection for all examples: hypothesis calls the test body many times.
    with SSHConnection(sshd.target()) as conn:
        yield conn


@settings(max_examples=50, deadline=None)
@given(word=words)
@example(word="; touch /tmp/drportal-pwned")
@example(word="$(touch /tmp/drportal-pwned)")
@example(word="`id`")
@example(word='it\'s "quoted"')
@example(word="two words\nand a line")
@example(word="*")
@example(word="-n")
@example(word="")
@example(word="$HOME ~ !! \\ %s | & > <")
def test_any_word_comes_back_exactly(shared_conn: SSHConnection, word: str) -> None:
    result = shared_conn.run(["printf", "%s\\n", word])

    assert (result.stdout, result.stderr, result.exit_status) == (word + "\n", "", 0)
