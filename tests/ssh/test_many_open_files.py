"""A worker at 5,000 VMs holds more than 1,024 descriptors (sockets to every host, a pipe
per channel it waits on): waiting on one numbered above select()'s FD_SETSIZE must work.
(Found by the 5,000-VM benchmark: "filedescriptor out of range in select()" failed an
inventory action.)"""

from __future__ import annotations

import os
import resource
import select
from collections.abc import Iterator

import pytest

from hosts.drivers.base import wait_readable
from hosts.drivers.ssh import SSHConnection

FD_SETSIZE = 1024


@pytest.fixture
def past_fd_setsize() -> Iterator[None]:
    """Every descriptor this process opens next is numbered above 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < FD_SETSIZE + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(FD_SETSIZE + 200, hard), hard))
    filler = []
    try:
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            filler.append(fd)
            if fd > FD_SETSIZE:
                break
        yield
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_wait_readable_answers_like_select_for_descriptors_past_its_limit(past_fd_setsize) -> None:
    read_end, write_end = os.pipe()
    try:
        assert read_end > FD_SETSIZE
        with pytest.raises(ValueError, match="filedescriptor out of range"):
            select.select([read_end], [], [], 0)  # the limit is real
        assert wait_readable([read_end], 0.01) == []
        os.write(write_end, b"x")
        assert wait_readable([read_end], 0) == [read_end]
        os.read(read_end, 1)
        os.close(write_end)
        write_end = -1
        assert wait_readable([read_end], 1.0) == [read_end]  # end of file is readable
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


def test_a_command_runs_when_its_channel_is_numbered_past_select_limit(
    conn: SSHConnection, past_fd_setsize
) -> None:
    # The answer comes after a pause, so run() waits on the channel (its pipe is new, > 1024).
    result = conn.run(["sh", "-c", "sleep 0.2; echo late"])
    assert (result.exit_status, result.stdout) == (0, "late\n")
