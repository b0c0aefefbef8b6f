"""The lab: a simulated estate (dom0s, arrays, the VMs' services) served over SSH.

Free of Django. One lab directory holds everything; several processes share it (the SSH
server, ``manage.py lab fault ...``, tests)::

    state.json      the lab state (schema in hosts/lab/tools/base.py), compact JSON with
                    "revision" first (bumped on every change); `python -m json.tool` to read
    state.lock      flock target; empty
    journal.jsonl   one line per command received: seq, time, host, command, exit_status, seconds, notes
    server.json     pid/port of the running server (written by hosts/lab/server.py)
    keys/           host keys, the client key pair, authorized_keys (hosts/lab/keys.py)

Its modules: store.py (state.json and its lock), journal.py (journal.jsonl), seed.py (the
reference and synthetic estates), server.py and sshd.py/forced.py (SSH), vm_services.py
(what each running VM serves on its address), tools/ (the simulated commands), cli.py
(``manage.py lab``).
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO_DIR = Path(__file__).resolve().parents[2]


def default_lab_dir() -> Path:
    return Path(os.environ.get("DRPORTAL_LAB_DIR") or _REPO_DIR / "var" / "lab")
