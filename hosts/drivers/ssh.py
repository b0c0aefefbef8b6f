"""SSH to dom0s: key authentication only, host keys pinned per host, a timeout on everything.

We drive ``paramiko.Transport`` directly instead of ``SSHClient`` so that nothing can
quietly fall back to an agent, to ``~/.ssh`` keys, to passwords or to ``known_hosts``:
the only trust anchor is the fingerprint stored with the host, checked after key
exchange and before we authenticate or send a single command.

Longer than 400 lines on purpose: a connection's whole life is here, from the handshake
and the pinned key to a command's watchdog, and so are the two ways connections are
shared (``SSHPool`` for one task, ``IdleConnections`` lent out action by action), which
must keep the same rule that a changed target never reuses the old trust.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import heapq
import itertools
import logging
import os
import random
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import paramiko

from hosts.drivers.base import CommandResult, DriverError, quote_command, redact_secrets, wait_readable

# Keys we accept for logging in; paramiko >= 4 dropped DSA, and we do not want it anyway.
_CLIENT_KEY_TYPES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


def load_private_key(path: str) -> paramiko.PKey:
    """The private key in ``path``, parsed once per version of the file: a survey opens a
    connection to every dom0 with the same key, and loading a 3072-bit RSA key costs a
    quarter of a second of CPU (cryptography checks it). A file replaced or rewritten (its
    inode, size or mtime changed) is read again; errors are never kept."""
    stat = os.stat(path)
    return _parsed_key(path, stat.st_ino, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _parsed_key(path: str, _inode: int, _size: int, _mtime_ns: int) -> paramiko.PKey:
    return paramiko.PKey.from_path(path)


log = logging.getLogger(__name__)
_T = TypeVar("_T")

_CHUNK = 65536
# Anything paramiko or the socket layer may raise once a connection is up.
_WIRE_ERRORS = (paramiko.SSHException, EOFError, OSError)


class SSHError(DriverError):
    """Base of the SSH layer's errors.

    ``transient``: the failure happened before any command was sent and another attempt,
    on a fresh transport, may well succeed (a dropped SYN, a slow handshake, a reset): see
    ``SSHTarget.connect_attempts``. Never set for what trying again cannot change (a key
    refused, a host key mismatch, an incompatible peer, a session refused on a live
    connection) nor once a command has been sent."""

    transient = False


def _transient(exc: SSHError) -> SSHError:
    exc.transient = True
    return exc


class SSHConnectError(SSHError):
    """The host could not be reached, or the connection broke."""


class SSHTimeout(SSHError):
    """Connecting, the handshake, authentication or a command took too long."""


class SSHAuthError(SSHError):
    """Our key was refused, or could not be loaded."""


class HostKeyMismatch(SSHError):
    """The server presented a host key other than the pinned one."""


class HostKeyNotPinned(SSHError):
    """The host has no pinned fingerprint yet; enroll it with ``fetch_host_key`` first."""


@dataclass(frozen=True, kw_only=True)
class SSHTarget:
    """How to reach one host. Keyword-only, so a user can never land in key_path."""

    name: str
    address: str
    port: int = 22
    user: str
    key_path: str
    fingerprint: str | None = None  # "SHA256:..." as OpenSSH prints it; None = not enrolled
    connect_timeout: float = 10.0  # TCP + handshake + authentication, together
    command_timeout: float = 60.0
    # Attempts at connecting and opening a session before a command is given up (1: no
    # retry). Only failures before the command is sent are retried; see SSHConnection.run.
    connect_attempts: int = 1

    def __post_init__(self) -> None:
        # A typo'd pin would only surface as a scary "mismatch" during a failover; say it now.
        if self.fingerprint is not None and not self.fingerprint.startswith("SHA256:"):
            raise ValueError(f"fingerprint of {self.name} must look like 'SHA256:...'")
        if self.connect_attempts < 1:
            raise ValueError(f"connect_attempts of {self.name} must be at least 1")

    @property
    def where(self) -> str:
        return f"{self.name} ({self.address}:{self.port})"


@dataclass(frozen=True)
class HostKeyInfo:
    key_type: str
    fingerprint: str


def fingerprint(pkey: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint (as ``ssh-keygen -lf`` prints it) of a public key."""
    digest = hashlib.sha256(pkey.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def _seconds(value: float) -> str:
    return f"{float(value)} s"


def _caused_by_timeout(exc: BaseException | None) -> bool:
    # paramiko wraps a banner timeout in a bare SSHException; the socket.timeout is in the chain.
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, TimeoutError) or "timeout" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _caused_by_lost_connection(exc: BaseException | None) -> bool:
    """Did the connection break (reset, closed) rather than the peer refuse our terms?
    paramiko wraps both in SSHException; what it wraps tells them apart."""
    seen = 0
    lost = False
    while exc is not None and seen < 10:
        if isinstance(exc, paramiko.IncompatiblePeer):
            return False
        lost = lost or isinstance(exc, (EOFError, OSError))
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return lost


@dataclass(frozen=True)
class ConnectRetry:
    """One failed attempt at reaching a host that will be tried again: what
    ``SSHConnection``'s ``on_retry`` callback is given (and the worker log says)."""

    target: SSHTarget
    attempt: int  # the attempt that failed, from 1
    error: SSHError
    delay: float  # seconds until the next attempt

    def __str__(self) -> str:
        return (
            f"connect attempt {self.attempt} of {self.target.connect_attempts} failed: {self.error}; "
            f"trying again in {self.delay:.1f} s"
        )


# Backoff between attempts: 0.5 s doubling, each wait drawn from its upper half (jitter, so
# the workers that lost one array do not come back in step), at most 5 s.
_FIRST_DELAY = 0.5
_MAX_DELAY = 5.0


def _backoff(failed_attempt: int) -> float:
    ceiling = min(_FIRST_DELAY * 2 ** (failed_attempt - 1), _MAX_DELAY)
    return ceiling * random.uniform(0.5, 1.0)  # nosec B311  # jitter, not a secret


class Transport(paramiko.Transport):
    """paramiko's transport, waking less often when idle.

    Its thread reads the socket with a 0.1 s timeout only to notice that it was told to
    stop. Connections outlive their action (see ``IdleConnections``), and a
    worker sized for a 50-host estate keeps hundreds of them: at 0.1 s, 200 idle ones
    cost the lab 0.17 of a core and the client 0.06 doing nothing. ``close()`` shuts the
    socket down first, which wakes the thread at once, so nothing waits for the timeout."""

    _active_check_timeout = 2.0
    # Once authenticated nothing is left to time out (no keepalive is set), so the thread
    # only needs a backstop: a worker of a 200-dom0 estate keeps ~1,000 connections (one
    # per action a host runs at once), and at 2 s each they woke its threads 500 times a
    # second.
    settled_check_timeout = 60.0

    def settle(self) -> None:
        """The handshake and authentication are done: the reading thread waits for
        packets, the peer's end or ``close()`` (which wakes it), with a long backstop."""
        self.sock.settimeout(self.settled_check_timeout)

    # AES-GCM first (OpenSSH has it since 6.2): an AEAD cipher needs no separate MAC, and
    # paramiko checks a MAC in pure Python, byte by byte (``constant_time_bytes_eq``), on
    # every packet: with the MAC of aes128-ctr + hmac-sha2-256, about a third of a short
    # command's client CPU. A server without GCM still gets the rest, in paramiko's order.
    _preferred_ciphers = (
        "aes128-gcm@openssh.com",
        "aes256-gcm@openssh.com",
        *(c for c in paramiko.Transport._preferred_ciphers if "gcm" not in c),
    )

    def close(self) -> None:
        if self.active:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
        super().close()


def _handshake(where: str, address: str, port: int, timeout: float) -> Transport:
    """TCP connect and SSH key exchange, all within ``timeout``; no authentication."""
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except TimeoutError as exc:
        raise _transient(SSHTimeout(f"timed out after {_seconds(timeout)} connecting to {where}")) from exc
    except OSError as exc:
        error = SSHConnectError(f"cannot connect to {where}: {exc.strerror or exc}")
        # Refused, reset, no route: the network's, worth another try. A name that does not
        # resolve stays unresolved (unless the resolver itself was only unavailable).
        if not isinstance(exc, socket.gaierror) or exc.errno == socket.EAI_AGAIN:
            _transient(error)
        raise error from exc
    # Small request/reply packets: without this, Nagle + delayed ACK add ~40 ms per channel.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    transport = Transport(sock)
    # Every phase gets only what is left of the one connect budget, so a host that accepts
    # TCP but never speaks SSH costs connect_timeout, not paramiko's 15 + 15 + 30 s.
    remaining = max(deadline - time.monotonic(), 0.01)
    transport.banner_timeout = remaining
    transport.handshake_timeout = remaining
    transport.auth_timeout = remaining
    done = threading.Event()
    transport.start_client(event=done)
    # start_client(timeout=...) returns silently on timeout, so we wait ourselves.
    finished = done.wait(max(deadline - time.monotonic(), 0))
    if finished and transport.is_active():
        return transport
    error = transport.get_exception()
    transport.close()
    if not finished or _caused_by_timeout(error):
        raise _transient(
            SSHTimeout(f"timed out after {_seconds(timeout)} connecting to {where}: no SSH handshake")
        )
    failed = SSHConnectError(f"cannot connect to {where}: SSH handshake failed: {error}")
    if _caused_by_lost_connection(error):
        _transient(failed)  # reset or closed mid-handshake; not a peer we cannot talk to
    raise failed from error


def fetch_host_key(address: str, port: int = 22, timeout: float = 10.0) -> HostKeyInfo:
    """For enrollment: the host key a server presents, read without authenticating.

    Only call this when a person will compare the answer with the dom0's console."""
    transport = _handshake(f"{address}:{port}", address, port, timeout)
    try:
        key = transport.get_remote_server_key()
        return HostKeyInfo(key_type=key.get_name(), fingerprint=fingerprint(key))
    finally:
        transport.close()


class _Watch:
    """One command's watch: armed, cancelled, or fired (its channel closed or closing)."""

    __slots__ = ("channel", "fired", "state")

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel
        self.state = "armed"
        self.fired = threading.Event()  # set once the channel's close has returned


class _Watchdog:
    """Closes the channel of a command whose server has not taken it by its deadline.

    paramiko's ``exec_command`` waits for the server's answer without a timeout. One thread
    per process watches every command sent, instead of a ``threading.Timer`` (a thread
    started and joined) per command: that cost a quarter of a millisecond of CPU on each
    of the thousands of commands a failover sends."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        # Also in a forked child: the parent's thread and lock state do not carry over.
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float, channel: paramiko.Channel) -> _Watch:
        watch = _Watch(channel)
        with self._cond:
            heapq.heappush(self._heap, (deadline, next(self._order), watch))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._watch, name="ssh-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is watch:
                self._cond.notify()  # the earliest deadline now: wake the thread to wait less
        return watch

    def disarm(self, watch: _Watch) -> None:
        """After this returns, the watch has closed its channel or never will."""
        with self._cond:
            if watch.state == "armed":
                watch.state = "cancelled"
                return
        watch.fired.wait()

    def _watch(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2].state == "cancelled":
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    remaining = self._heap[0][0] - time.monotonic()
                    if remaining <= 0:
                        watch = heapq.heappop(self._heap)[2]
                        watch.state = "fired"
                        break
                    self._cond.wait(remaining)
            try:
                watch.channel.close()
            finally:
                watch.fired.set()


_WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=_WATCHDOG._reset)


class SSHConnection:
    """One authenticated SSH connection to one host; a ``Runner`` for the drivers.

    Thread-safe: commands from several threads run on separate channels of one transport.

    Reaching the host is tried ``target.connect_attempts`` times (see ``_attempts``): a
    connection refused, reset or lost, or a timeout, before the command is sent. Never
    after: a command that may have run is never sent twice.
    """

    def __init__(
        self, target: SSHTarget, *, on_result: Callable[[CommandResult], None] | None = None
    ) -> None:
        self.target = target
        self.name = target.name
        self.on_result = on_result
        self._transport: paramiko.Transport | None = None
        self._lock = threading.Lock()
        # Channels open (or opening) per transport, and transports given up (a session
        # would not open in time) that still carry some: closed when their last one is.
        self._users: dict[paramiko.Transport, int] = defaultdict(int)
        self._retired: set[paramiko.Transport] = set()

    @property
    def transport(self) -> paramiko.Transport | None:
        return self._transport

    @property
    def is_connected(self) -> bool:
        return self._transport is not None and self._transport.is_active()

    def connect(self, *, on_retry: Callable[[ConnectRetry], None] | None = None) -> None:
        """Connect if not connected; a dead transport is replaced. Tried again (on a fresh
        transport) while the failure is transient, up to ``connect_attempts`` times and
        within ``command_timeout``; ``on_retry`` hears of every retry."""
        self._attempts(self._connected, on_retry, time.monotonic() + self.target.command_timeout)

    def _connected(self, users: int = 0) -> tuple[paramiko.Transport, bool]:
        """The live transport (and whether it was opened just now), with ``users`` more
        channels counted on it."""
        with self._lock:
            fresh = not self.is_connected
            if fresh:
                self._drop()
                self._transport = self._open()
            transport = self._transport
            assert transport is not None
            if users:
                self._users[transport] += users
            return transport, fresh

    def close(self) -> None:
        with self._lock:
            self._drop()
            retired, self._retired = self._retired, set()
        for transport in retired:
            transport.close()

    def __enter__(self) -> SSHConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _drop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def _attempts(
        self, attempt: Callable[[], _T], on_retry: Callable[[ConnectRetry], None] | None, until: float
    ) -> _T:
        """``attempt()``, tried again after a transient failure: at most ``connect_attempts``
        times, with backoff, and only while another attempt (the wait and a whole
        ``connect_timeout``) ends by ``until``. The error given up with says how many."""
        target = self.target
        failed = 0
        while True:
            try:
                return attempt()
            except SSHError as exc:
                if not exc.transient:
                    raise
                failed += 1
                delay = _backoff(failed)
                if (
                    failed >= target.connect_attempts
                    or time.monotonic() + delay + target.connect_timeout > until
                ):
                    if failed > 1:
                        exc.message = f"{exc.message} (after {failed} attempts)"
                    raise
                retry = ConnectRetry(target, failed, exc, delay)
            log.warning("%s: %s", target.name, retry)
            if on_retry is not None:
                on_retry(retry)
            time.sleep(delay)

    def _load_key(self) -> paramiko.PKey:
        target = self.target
        try:
            key = load_private_key(target.key_path)
        except (OSError, ValueError, TypeError, paramiko.SSHException) as exc:
            # TypeError is what cryptography raises for a passphrase-protected key.
            raise SSHAuthError(f"cannot load private key {target.key_path} for {target.name}: {exc}") from exc
        if not isinstance(key, _CLIENT_KEY_TYPES):
            raise SSHAuthError(f"unsupported key type {key.get_name()} in {target.key_path}")
        return key

    def _open(self) -> paramiko.Transport:
        target = self.target
        if target.fingerprint is None:
            # Refuse before touching the network: trust on first use is how keys get stolen.
            raise HostKeyNotPinned(
                f"host key for {target.name} is not pinned; enroll it (fetch_host_key) before connecting"
            )
        key = self._load_key()
        deadline = time.monotonic() + target.connect_timeout
        transport = _handshake(target.where, target.address, target.port, target.connect_timeout)
        try:
            got = fingerprint(transport.get_remote_server_key())
            if got != target.fingerprint:
                raise HostKeyMismatch(
                    f"host key mismatch for {target.name}: expected {target.fingerprint}, got {got}"
                )
            transport.auth_timeout = max(deadline - time.monotonic(), 0.01)
            self._authenticate(transport, key)
            transport.settle()
        except BaseException:
            transport.close()
            raise
        return transport

    def _authenticate(self, transport: paramiko.Transport, key: paramiko.PKey) -> None:
        target = self.target
        who = f"{target.user}@{target.where}"
        try:
            more = transport.auth_publickey(target.user, key)
        except paramiko.BadAuthenticationType as exc:
            raise SSHAuthError(f"{who} does not accept public keys (allowed: {exc.allowed_types})") from exc
        except paramiko.AuthenticationException as exc:
            if _caused_by_timeout(exc):
                raise _transient(
                    SSHTimeout(f"timed out after {_seconds(target.connect_timeout)} authenticating to {who}")
                ) from exc
            raise SSHAuthError(f"authentication failed for {who}: {exc}") from exc
        except _WIRE_ERRORS as exc:
            raise _transient(
                SSHConnectError(f"connection to {target.where} lost during authentication: {exc}")
            ) from exc
        if more or not transport.is_authenticated():
            raise SSHAuthError(f"authentication failed for {who}: server wants more ({more})")

    def _open_channel(self) -> paramiko.Channel:
        """A session on the transport, connecting first if need be; the transport counts
        the channel as its user until ``_release``. A transport of an earlier call found
        dead is replaced once (no attempt spent: the host may never have been asked)."""
        for stale_allowed in (True, False):
            transport, fresh = self._connected(users=1)
            try:
                return transport.open_session(timeout=self.target.connect_timeout)
            except _WIRE_ERRORS as exc:
                self._release(transport)
                where = self.target.where
                if _caused_by_timeout(exc):
                    if self.target.connect_attempts > 1:
                        self._retire(transport)  # the next attempt gets a transport of its own
                    raise _transient(SSHTimeout(f"timed out opening a session on {where}")) from exc
                if transport.is_active():
                    # Refused on a live connection (MaxSessions, a forced command): not the network's.
                    raise SSHConnectError(f"cannot open a session on {where}: {exc}") from exc
                if fresh or not stale_allowed:
                    raise _transient(SSHConnectError(f"cannot open a session on {where}: {exc}")) from exc
        raise AssertionError("unreachable")

    def _retire(self, transport: paramiko.Transport) -> None:
        """Stop using ``transport`` for new commands; it closes once the ones it carries
        have finished (they are not cut short because this one gave it up)."""
        with self._lock:
            if self._transport is transport:
                self._transport = None
            if self._users.get(transport):
                self._retired.add(transport)
                return
        transport.close()

    def _release(self, transport: paramiko.Transport) -> None:
        with self._lock:
            left = self._users[transport] - 1
            if left:
                self._users[transport] = left
                return
            del self._users[transport]
            if transport not in self._retired:
                return
            self._retired.discard(transport)
        transport.close()

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        on_retry: Callable[[ConnectRetry], None] | None = None,
    ) -> CommandResult:
        """Run one command; a non-zero exit is a result, not an exception.

        Reaching the host and opening the session are tried again on transient failures
        (``connect_attempts``) within the command's own limit; ``on_retry`` hears of each
        retry. Once the command is sent, nothing is tried again."""
        command = quote_command(argv)
        limit = self.target.command_timeout if timeout is None else timeout
        channel = self._attempts(self._open_channel, on_retry, time.monotonic() + limit)
        transport = channel.get_transport()
        started = time.monotonic()
        deadline = started + limit
        stdout: list[bytes] = []
        stderr: list[bytes] = []

        def finish(exit_status: int) -> CommandResult:
            result = CommandResult(
                host=self.name,
                argv=tuple(str(word) for word in argv),
                command=command,
                # Decode once at the end: a multi-byte character may straddle two chunks.
                # A credential a tool echoes (sssu running its login file) never leaves here.
                stdout=redact_secrets(b"".join(stdout).decode("utf-8", errors="replace")),
                stderr=redact_secrets(b"".join(stderr).decode("utf-8", errors="replace")),
                exit_status=exit_status,
                seconds=round(time.monotonic() - started, 3),
            )
            if self.on_result is not None:
                self.on_result(result)
            return result

        def timed_out() -> SSHTimeout:
            # The engine still wants to log what a hung command printed; exit_status -1.
            result = finish(-1)
            return SSHTimeout(
                f"command on {self.name} timed out after {_seconds(limit)}: {command}", result=result
            )

        try:
            channel.settimeout(limit)
            self._exec(channel, command, deadline)
            if time.monotonic() >= deadline:
                raise timed_out()
            # select() on the channel wakes us for stdout or stderr; reading both as they come
            # keeps the shared window open, so a chatty stderr cannot stall stdout.
            while True:
                progressed = False
                if channel.recv_ready():
                    stdout.append(channel.recv(_CHUNK))
                    progressed = True
                if channel.recv_stderr_ready():
                    stderr.append(channel.recv_stderr(_CHUNK))
                    progressed = True
                if not progressed and (channel.eof_received or channel.closed):
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise timed_out()
                if not progressed:
                    wait_readable([channel], min(remaining, 1.0))
            # OpenSSH sends EOF, then exit-status, then close; wait for the status too.
            if not channel.status_event.wait(max(deadline - time.monotonic(), 0)):
                raise timed_out()
            if channel.exit_status == -1 and not channel.eof_received:
                # Closed without EOF: the transport died under the command. Not re-run.
                raise SSHConnectError(f"connection to {self.target.where} lost while running: {command}")
            return finish(channel.exit_status)
        finally:
            channel.close()
            self._release(transport)

    def _exec(self, channel: paramiko.Channel, command: str, deadline: float) -> None:
        """Send the command. paramiko waits for the server's answer without a timeout, so a
        watchdog closes the channel at the deadline. Once sent, a command is never re-sent."""
        watch = _WATCHDOG.arm(deadline, channel)
        try:
            channel.exec_command(command)  # nosec B601  # argv joined by quote_command (shlex.quote) in run()
            return
        except _WIRE_ERRORS as exc:
            error = exc
        finally:
            # After disarm() the watchdog has closed the channel or never will: no race with select().
            _WATCHDOG.disarm(watch)
        if time.monotonic() >= deadline:
            return  # the watchdog fired; run() sees the deadline has passed and reports the timeout
        if channel.transport.is_active():
            raise SSHConnectError(f"{self.target.where} refused to run: {command}: {error}") from error
        raise SSHConnectError(f"connection to {self.target.where} lost while running: {command}") from error


class SSHPool:
    """One connection per host for the length of a task: ``with SSHPool() as pool``."""

    def __init__(self, *, on_result: Callable[[CommandResult], None] | None = None) -> None:
        self.on_result = on_result
        self._connections: dict[str, SSHConnection] = {}
        self._lock = threading.Lock()

    def get(
        self, target: SSHTarget, *, on_retry: Callable[[ConnectRetry], None] | None = None
    ) -> SSHConnection:
        with self._lock:
            conn = self._connections.get(target.name)
            if conn is not None and conn.target != target:
                # The inventory changed under us (new address or key): do not reuse the old trust.
                conn.close()
                conn = None
            if conn is None:
                conn = self._connections[target.name] = SSHConnection(target, on_result=self.on_result)
        # Connect outside the pool lock so one slow host does not hold up the others.
        conn.connect(on_retry=on_retry)
        return conn

    def close(self) -> None:
        with self._lock:
            connections = list(self._connections.values())
            self._connections.clear()
        for conn in connections:
            conn.close()

    def __enter__(self) -> SSHPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class IdleConnections:
    """Idle SSH connections of a process (a worker's), each lent to one task at a time.

    A handshake is the dearest part of a short action, so connections outlive their
    action; but a connection is never shared by two actions at once: an OpenSSH server
    allows only MaxSessions (10) channels per connection, and one stuck command must not
    take its neighbours down with it. The host key is checked on every (re)connection.

    Every connection a thread gave back is kept: a thread holds at most one per host, so
    a host never has more idle connections than the worker has threads. A cap below that
    (there was one, 32) made a worker with 200 threads close and re-open connections to
    the array all through a step of 500 integrity checks, a handshake each time."""

    def __init__(self) -> None:
        self._idle: dict[SSHTarget, list[SSHConnection]] = defaultdict(list)
        self._lock = threading.Lock()

    def lease(self) -> LeasedConnections:
        return LeasedConnections(self)

    def checkout(
        self, target: SSHTarget, *, on_retry: Callable[[ConnectRetry], None] | None = None
    ) -> SSHConnection:
        with self._lock:
            idle = self._idle.get(target)
            conn = idle.pop() if idle else None
        if conn is None:
            conn = SSHConnection(target)
        # A no-op while the transport lives; reconnects (and re-checks the key) if not.
        conn.connect(on_retry=on_retry)
        return conn

    def checkin(self, conn: SSHConnection) -> None:
        with self._lock:
            idle = self._idle[conn.target]
            if conn.is_connected:
                idle.append(conn)
                return
        conn.close()


class LeasedConnections:
    """What one action uses: like SSHPool (one connection per host), returned when done."""

    def __init__(self, cache: IdleConnections) -> None:
        self._cache = cache
        self._conns: dict[str, SSHConnection] = {}

    def get(
        self, target: SSHTarget, *, on_retry: Callable[[ConnectRetry], None] | None = None
    ) -> SSHConnection:
        conn = self._conns.get(target.name)
        if conn is not None and conn.target != target:
            conn.close()
            conn = None
        if conn is None:
            conn = self._conns[target.name] = self._cache.checkout(target, on_retry=on_retry)
        return conn

    def close(self) -> None:
        for conn in self._conns.values():
            self._cache.checkin(conn)
        self._conns.clear()

    def __enter__(self) -> LeasedConnections:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
