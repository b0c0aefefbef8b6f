"""The paramiko side of the lab's SSH server: the per-connection ServerInterface (public
key auth, session channels, exec only), listening sockets, and the latency lookup."""

from __future__ import annotations

import contextlib
import functools
import posixpath
import re
import shlex
import socket
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from hosts.drivers.ssh import Transport
from hosts.lab.keys import authorized_keys


@dataclass(frozen=True)
class Shard:
    """One of ``count`` lab server processes: it serves the names (dom0s, arrays, VMs) whose
    CRC-32 falls on ``index``. One Python process runs one thread at a time, so a lab of a
    few hundred hosts under a few hundred commands a second is one core's worth of work,
    whatever the machine has: shards spread it. They share the state (its lock and its
    log, store.py) and the port, and each listens on its own names' addresses."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: the index must be 0 to {self.count - 1}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"``, as ``--shard`` takes it."""
        index, sep, count = text.partition("/")
        if not sep or not index.isdigit() or not count.isdigit() or int(count) < 1:
            raise ValueError(f"shard '{text}': expected I/N, e.g. 0/2 (shard I of N, I from 0)")
        return cls(int(index), int(count))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and zlib.crc32(name.encode()) % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def served_names(only: Iterable[str] | Shard | None) -> set[str] | Shard | None:
    """What a server or service manager serves: every name (None), a shard, or a set."""
    if only is None or isinstance(only, Shard):
        return only
    return set(only)


class Session(paramiko.ServerInterface):
    """paramiko's view of one connection: public-key auth, session channels, exec only.

    A command's answer goes out only after its exec request has been answered
    (``wait_answered``). paramiko asks ``check_channel_exec_request`` first and sends the
    answer after; a command quick enough (the lab's often are) could otherwise send its
    output, EOF and close first, and the client would find its channel closed before the
    request succeeded ("Channel closed", though the command ran). OpenSSH always answers
    first. The command itself starts at once: by the time it is done, the answer has
    almost always gone out, so nobody waits."""

    # If the answer is never seen (a paramiko that sends it some other way), go on anyway.
    REPLY_WAIT_S = 1.0

    def __init__(self, lab_dir: Path) -> None:
        self.lab_dir = lab_dir
        self.commands: dict[int, bytes] = {}
        self.awaiting_reply: dict[int, int] = {}  # the client's channel id -> ours
        self.answered: set[int] = set()
        self.cond = threading.Condition()

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        # Re-read on every attempt: a test or operator may edit authorized_keys live.
        if (key.get_name(), key.get_base64()) in authorized_keys(self.lab_dir):
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        with self.cond:
            self.commands[channel.get_id()] = command
            self.awaiting_reply[channel.remote_chanid] = channel.get_id()
            self.cond.notify_all()
        return True

    def request_answered(self, remote_chanid: int) -> None:
        """The transport has sent the answer to a request of the client's channel."""
        with self.cond:
            chanid = self.awaiting_reply.pop(remote_chanid, None)
            if chanid is not None:
                self.answered.add(chanid)
                self.cond.notify_all()

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        return False

    def check_channel_pty_request(self, *args: object) -> bool:
        return False

    def wait_command(self, chanid: int, timeout: float) -> bytes | None:
        with self.cond:
            self.cond.wait_for(lambda: chanid in self.commands, timeout)
            return self.commands.pop(chanid, None)

    def wait_answered(self, chanid: int) -> None:
        """Until the exec request of channel ``chanid`` has been answered."""
        with self.cond:
            self.cond.wait_for(lambda: chanid in self.answered, self.REPLY_WAIT_S)
            self.answered.discard(chanid)


class SessionTransport(Transport):
    """Tells its ``Session`` when the answer to a channel request has gone out, and wakes
    the ``accept()`` of its connection's thread when it is closed from our side (paramiko
    notifies only when the client ends it), so that thread waits without a timeout.

    Its reading thread wakes every ``_active_check_timeout`` only to look for a stop or a
    handshake that takes too long: the client's end and our ``close()`` (a socket shutdown)
    wake it at once. A worker keeps hundreds of idle connections to the lab, and at the
    drivers' 2 s each cost the lab a wake-up per second per two connections. Once its client
    has opened a channel (so is authenticated) it ``settle()``s, as the client's does."""

    _active_check_timeout = 10.0

    def _send_user_message(self, data) -> None:
        super()._send_user_message(data)
        raw = data.asbytes() if isinstance(data, paramiko.Message) else bytes(data)
        if raw[:1] in (_SUCCESS, _FAILURE) and isinstance(self.server_object, Session):
            self.server_object.request_answered(int.from_bytes(raw[1:5], "big"))

    def close(self) -> None:
        super().close()
        with self.lock:
            self.server_accept_cv.notify_all()


_SUCCESS = bytes([paramiko.common.MSG_CHANNEL_SUCCESS])
_FAILURE = bytes([paramiko.common.MSG_CHANNEL_FAILURE])


class Listener:
    """One host's listening socket, owned by its thread (``LabServer._listen``), which
    blocks in ``accept()`` or, while the host is down, in ``wait_change()``: nothing wakes
    it but a change. The supervisor's ``set_open``/``retire`` shut the socket down, which
    makes a blocked ``accept()`` fail at once (Linux), and notify a waiting thread."""

    def __init__(self, host: str, address: str, sock: socket.socket | None) -> None:
        self.host = host
        self.address = address
        self.sock = sock
        self.want_open = sock is not None
        self.retired = False
        self.thread: threading.Thread | None = None
        self.changed = threading.Condition()

    def set_open(self, want_open: bool) -> None:
        with self.changed:
            if want_open == self.want_open:
                return
            self.want_open = want_open
            if not want_open:
                self._refuse_locked()
            self.changed.notify_all()

    def retire(self) -> None:
        """For good (removed, moved, a VM stopped, the server stops): new connections are
        refused now; the thread sees ``retired`` and closes the socket."""
        with self.changed:
            self.retired = True
            self._refuse_locked()
            self.changed.notify_all()

    def wait_change(self) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.retired or self.want_open != (self.sock is not None))

    def _refuse_locked(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)


def bind(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Reopening after a "down" must not trip over TIME_WAIT of the connections we cut.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
        sock.listen(256)
    except OSError:
        sock.close()
        raise
    return sock


def latency_for(snapshot: dict, argv: list[str]) -> float:
    latency = snapshot.get("latency", {})
    per_command = latency.get("per_command", {})
    if argv:
        name = posixpath.basename(argv[0])
        if len(argv) > 1 and f"{name} {argv[1]}" in per_command:
            return float(per_command[f"{name} {argv[1]}"])
        if name in per_command:
            return float(per_command[name])
    return float(latency.get("default_seconds", 0.0))


def split_command(text: str) -> list[str] | None:
    """``shlex.split(text)`` (None where it raises: an unclosed quote, a trailing
    backslash), a fresh list each time. shlex reads a character at a time in Python; the
    same lines come back all through a run (``xl list``, the array's queries), so the
    answers are cached, and a line without quotes or backslashes is split on shlex's
    whitespace directly (the same words: nothing else is special to it then)."""
    words = _split_cached(text)
    return None if words is None else list(words)


_SHLEX_SPECIAL = re.compile(r"['\"\\]")
_SHLEX_WHITESPACE = re.compile(r"[ \t\r\n]+")


@functools.lru_cache(maxsize=4096)
def _split_cached(text: str) -> tuple[str, ...] | None:
    if not _SHLEX_SPECIAL.search(text):
        return tuple(word for word in _SHLEX_WHITESPACE.split(text) if word)
    try:
        return tuple(shlex.split(text))
    except ValueError:
        return None


def close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
