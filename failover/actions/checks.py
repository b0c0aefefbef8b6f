"""Functional checks of a VM (thesis tables 3.1, 3.2): does the service answer as it should?

``run_check(check, pool=...)`` never raises for a failing service; it returns a
``Verdict`` whose ``outcome`` is, as in the thesis' test tables:

  ok    the service answered as expected;
  down  it did not answer, or answered wrongly (refused, timed out, wrong status, text
        missing, wrong exit code, connection cut);
  note  it may well be fine, but we could not tell and someone must follow up: the TLS
        certificate or the SSH host key is not the trusted one, our key was refused, a
        firewall blocks us, or the check itself is incomplete.

Kinds:
  http  GET ``url`` (``{address}`` in it stands for the VM's service address); the status
        must be ``expect_status`` and the body must contain ``expect_text`` (if set);
        ``verify_tls`` checks the certificate and the host name (trusting the system's
        CAs, or ``settings.DRPORTAL_TLS_CA_FILE`` when set). Redirects are not followed.
  tcp   connect to ``port`` on the VM's address; with ``expect_text``, the service's
        banner must contain it (SMTP "220", rsync "@RSYNCD").
  ssh   run ``command`` on the VM over its own SSH (pinned host key, the workers' key
        ``settings.DRPORTAL_SSH_KEY``); the exit code must be ``expect_exit`` and stdout
        must contain ``expect_text`` (if set).

``timeout_s`` bounds the whole check, not each step.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import shlex
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from hosts.drivers.base import DriverError
from hosts.drivers.ssh import (
    HostKeyMismatch,
    HostKeyNotPinned,
    SSHAuthError,
    SSHConnection,
    SSHTarget,
    SSHTimeout,
)
from hosts.models import VM, FunctionalCheck

from .base import Connections

OK, DOWN, NOTE = "ok", "down", "note"
_MAX_BODY = 1 << 20  # enough for any status page; a check never downloads an ISO
_MAX_BANNER = 4096
_USER_AGENT = "drportal-check/1"


@dataclass(frozen=True)
class Verdict:
    outcome: str  # ok, down, note
    detail: str
    seconds: float = 0.0


class _Result(Exception):
    """Raised inside a check to end it with this outcome and detail."""

    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


def run_check(check: FunctionalCheck, *, pool: Connections | None = None, drill: bool = False) -> Verdict:
    """Run one check; whatever happens, return a Verdict (never raise for the service).
    ``drill``: against the VM's drill clone, at its drill address."""
    started = time.monotonic()
    if drill:
        if not check.vm.drill_address:
            return Verdict(
                NOTE, f"{check.vm.name} has no drill address in the inventory: the clone was not tested"
            )
        check.vm.address = check.vm.drill_address
    timeout = max(float(check.timeout_s or 0), 0.1)
    deadline = started + timeout
    try:
        if check.kind == FunctionalCheck.Kind.HTTP:
            outcome, detail = _http(check, deadline, timeout)
        elif check.kind == FunctionalCheck.Kind.TCP:
            outcome, detail = _tcp(check, deadline, timeout)
        elif check.kind == FunctionalCheck.Kind.SSH:
            outcome, detail = _ssh(check, deadline, timeout, pool)
        else:
            outcome, detail = NOTE, f"unknown check kind {check.kind!r}"
    except _Result as result:
        outcome, detail = result.outcome, result.detail
    except Exception as exc:  # a bug or a surprise must not stop a failover
        outcome, detail = NOTE, f"check could not run: {type(exc).__name__}: {exc}"
    return Verdict(outcome, detail, round(time.monotonic() - started, 3))


# -- helpers ------------------------------------------------------------------------------------


def _address(vm: VM) -> str:
    if not vm.address:
        raise _Result(NOTE, f"{vm.name} has no service address in the inventory: set one")
    return vm.address


def _remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.001)


def _s(seconds: float) -> str:
    return f"{seconds:g} s"


def _network_error(where: str, exc: OSError, timeout: float) -> _Result:
    """What a failed connect or read says, as a verdict."""
    if isinstance(exc, TimeoutError):
        return _Result(DOWN, f"{where}: no answer within {_s(timeout)}")
    if isinstance(exc, ConnectionRefusedError):
        return _Result(DOWN, f"{where}: connection refused")
    if isinstance(exc, socket.gaierror):
        return _Result(DOWN, f"{where}: cannot resolve the name: {exc.strerror or exc}")
    if exc.errno in (errno.EACCES, errno.EPERM):
        # A local packet filter said no: the service may be fine, the path to it is not.
        return _Result(NOTE, f"{where}: blocked by a firewall ({exc.strerror}): firewall opening needed")
    if isinstance(exc, ConnectionError):
        return _Result(DOWN, f"{where}: connection closed by the other side ({exc.strerror or exc})")
    return _Result(DOWN, f"{where}: {exc.strerror or exc}")


class _Watchdog:
    """Shuts the watched socket down at the deadline, so no slow drip can stretch a check
    past it. ``watch()`` switches sockets (the TLS one replaces the plain one)."""

    def __init__(self, deadline: float) -> None:
        self.fired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(_remaining(deadline), self._fire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        with self._lock:
            self._sock = None  # after this the caller may close it: never shut down a stranger


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- http ---------------------------------------------------------------------------------------


def _tls_context(verify: bool) -> ssl.SSLContext:
    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cafile = getattr(settings, "DRPORTAL_TLS_CA_FILE", None) or None
    return ssl.create_default_context(cafile=str(cafile) if cafile else None)


def _http(check: FunctionalCheck, deadline: float, timeout: float) -> tuple[str, str]:
    url = check.url.strip()
    if "{address}" in url:
        url = url.replace("{address}", _address(check.vm))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Result(NOTE, f"not an http(s) URL: {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise _Result(NOTE, f"bad port in URL {url!r}") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        sock = socket.create_connection((parts.hostname, port), timeout=_remaining(deadline))
    except OSError as exc:
        raise _network_error(url, exc, timeout) from None
    stream = sock
    try:
        with _Watchdog(deadline) as watchdog:
            watchdog.watch(sock)
            try:
                if parts.scheme == "https":
                    stream = _tls_context(check.verify_tls).wrap_socket(
                        sock, server_hostname=parts.hostname, do_handshake_on_connect=False
                    )
                    watchdog.watch(stream)
                    stream.do_handshake()
                status, body = _http_exchange(stream, parts, path, deadline)
            except ssl.SSLCertVerificationError as exc:
                reason = exc.verify_message or exc.reason or str(exc)
                raise _Result(
                    NOTE, f"{url}: TLS certificate not trusted ({reason}); verify_tls is on"
                ) from None
            except ssl.SSLError as exc:
                if watchdog.fired:
                    raise _Result(DOWN, f"{url}: no answer within {_s(timeout)}") from None
                raise _Result(DOWN, f"{url}: TLS handshake failed: {exc.reason or exc}") from None
            except (http.client.HTTPException, OSError) as exc:
                if watchdog.fired or isinstance(exc, TimeoutError):
                    raise _Result(DOWN, f"{url}: no answer within {_s(timeout)}") from None
                if isinstance(exc, OSError):
                    raise _network_error(url, exc, timeout) from None
                raise _Result(DOWN, f"{url}: not a valid HTTP answer ({type(exc).__name__}: {exc})") from None
    finally:
        stream.close()
        sock.close()
    if status != check.expect_status:
        return DOWN, f"{url}: HTTP {status}, expected {check.expect_status}"
    if check.expect_text and check.expect_text.encode("utf-8") not in body:
        return DOWN, f"{url}: HTTP {status}, but {check.expect_text!r} is not in the page"
    found = f", {check.expect_text!r} found" if check.expect_text else ""
    return OK, f"{url}: HTTP {status}{found}"


def _http_exchange(stream: socket.socket, parts, path: str, deadline: float) -> tuple[int, bytes]:
    """One GET on a connected (and TLS-wrapped) socket; the caller's watchdog keeps the time."""
    host = parts.netloc.rpartition("@")[2]  # as written in the URL, port included if given
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {_USER_AGENT}\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    )
    stream.settimeout(_remaining(deadline))
    stream.sendall(request.encode("ascii", "replace"))
    response = http.client.HTTPResponse(stream, method="GET")
    try:
        response.begin()
        chunks, size = [], 0
        while size < _MAX_BODY:
            chunk = response.read(min(65536, _MAX_BODY - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return response.status, b"".join(chunks)
    finally:
        response.close()


# -- tcp ----------------------------------------------------------------------------------------


def _tcp(check: FunctionalCheck, deadline: float, timeout: float) -> tuple[str, str]:
    if not check.port:
        raise _Result(NOTE, "TCP check without a port")
    where = f"tcp {_address(check.vm)}:{check.port}"
    try:
        sock = socket.create_connection((check.vm.address, check.port), timeout=_remaining(deadline))
    except OSError as exc:
        raise _network_error(where, exc, timeout) from None
    try:
        if not check.expect_text:
            return OK, f"{where}: open"
        wanted = check.expect_text.encode("utf-8")
        banner = b""
        with _Watchdog(deadline) as watchdog:
            watchdog.watch(sock)
            while wanted not in banner and len(banner) < _MAX_BANNER:
                try:
                    sock.settimeout(_remaining(deadline))
                    chunk = sock.recv(_MAX_BANNER)
                except OSError:
                    chunk = b""
                if not chunk or time.monotonic() >= deadline:
                    break
                banner += chunk
        said = _short(banner.decode("utf-8", "replace"))
        if wanted in banner:
            return OK, f"{where}: open, says {said!r}"
        heard = f"it said {said!r}" if said else f"it said nothing within {_s(timeout)}"
        return DOWN, f"{where}: open, but {check.expect_text!r} not in its greeting ({heard})"
    finally:
        sock.close()


# -- ssh ----------------------------------------------------------------------------------------


def vm_ssh_target(vm: VM, *, timeout: float) -> SSHTarget:
    """The SSH target of a VM's own SSH (its pinned key, the workers' client key)."""
    return SSHTarget(
        name=vm.name,
        address=_address(vm),
        port=vm.ssh_port,
        user=vm.ssh_user or "root",
        key_path=str(settings.DRPORTAL_SSH_KEY),
        fingerprint=vm.host_key_fingerprint or None,
        connect_timeout=timeout,
        command_timeout=timeout,
    )


def _ssh(
    check: FunctionalCheck, deadline: float, timeout: float, pool: Connections | None
) -> tuple[str, str]:
    vm = check.vm
    try:
        argv = shlex.split(check.command)
    except ValueError as exc:
        raise _Result(NOTE, f"cannot split the command {check.command!r}: {exc}") from None
    if not argv:
        raise _Result(NOTE, "SSH check without a command")
    try:
        target = vm_ssh_target(vm, timeout=timeout)
    except ValueError as exc:  # a malformed pinned fingerprint
        raise _Result(NOTE, f"{vm.name}: {exc}") from None
    where = f"ssh {target.user}@{vm.name} ({target.address}:{target.port})"
    own = pool is None
    try:
        conn = SSHConnection(target) if pool is None else pool.get(target)
        try:
            conn.connect()
            result = conn.run(argv, timeout=_remaining(deadline))
        finally:
            if own:
                conn.close()
    except (HostKeyMismatch, HostKeyNotPinned, SSHAuthError) as exc:
        raise _Result(NOTE, f"{where}: {exc}") from None
    except SSHTimeout:
        raise _Result(DOWN, f"{where}: no answer within {_s(timeout)}: {check.command}") from None
    except DriverError as exc:
        raise _Result(DOWN, f"{where}: {exc}") from None
    said = _short(result.stdout or result.stderr)
    tail = f" ({said!r})" if said else ""
    if result.exit_status != check.expect_exit:
        return (
            DOWN,
            f"{where}: `{check.command}` exited {result.exit_status}, expected {check.expect_exit}{tail}",
        )
    if check.expect_text and check.expect_text not in result.stdout:
        return (
            DOWN,
            f"{where}: `{check.command}` exited {result.exit_status}, but {check.expect_text!r} not in its output{tail}",
        )
    return OK, f"{where}: `{check.command}` exited {result.exit_status}{tail}"
