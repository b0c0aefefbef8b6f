"""The lab's tools behind a real OpenSSH server.

Configure sshd with ``ForceCommand <python> -m hosts.lab.forced --lab-dir DIR --host NAME``:
sshd authenticates, then runs this with the client's command line in
SSH_ORIGINAL_COMMAND; we answer it from the lab state exactly as the paramiko lab does
(same tools, same journal). Shell operators are never interpreted.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

from hosts.lab.server import execute_command
from hosts.lab.store import LabStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lab-dir", required=True)
    parser.add_argument("--host", required=True, help="the lab host this sshd plays")
    args = parser.parse_args(argv)
    text = os.environ.get("SSH_ORIGINAL_COMMAND", "")
    arrived, started = time.time(), time.monotonic()
    try:
        words: list[str] | None = shlex.split(text)
    except ValueError:
        words = None
    status, stdout, stderr = execute_command(
        LabStore(args.lab_dir), args.host, words, text, arrived, started, ["via OpenSSH"]
    )
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
