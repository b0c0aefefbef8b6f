"""The lab: a simulated estate (dom0s, arrays, the VMs' services) served over SSH.

Free of Django. One lab directory holds everything; several processes share it (the SSH
server, ``manage.py lab fault ...``, tests)::

    state.json      the lab state (schema in hosts/lab/tools/base.py) as a log, NOT one JSON
                    document: line 1 the whole state at a base revision (compact JSON,
                    "revision" first), then one line per commit since (the changed entries,
                    the revision, a crc; format in store.py). `head -1 state.json | python -m
                    json.tool` shows the base; the current state is ``LabStore(lab_dir).read()``
                    (never json.load the file), a summary `manage.py lab status --json`
    state.lock      flock target; empty
    journal.jsonl   one line per command received: seq, time, host, command, exit_status, seconds, notes
    server.json     pid/port of the running server (written by hosts/lab/server.py)
    keys/           host keys, the client key pair, authorized_keys (hosts/lab/keys.py)

Its modules: store.py (state.json, its log format and its lock), journal.py (journal.jsonl),
seed.py (the reference and synthetic estates), server.py and sshd.py/forced.py (SSH), vm_services.py
(what each running VM serves on its address), tools/ (the simulated commands), cli.py
(``manage.py lab``).
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO_DIR = Path(__file__).resolve().parents[2]


def default_lab_dir() -> Path:
    return Path(os.environ.get("DRPORTAL_LAB_DIR") or _REPO_DIR / "var" / "lab")
