"""The real thing for the stream and e2e tests: uvicorn serving drportal's ASGI app in a
subprocess (on the tests' database and Redis), and a small Server-Sent Events client
that speaks HTTP/1.1 over a socket (chunked transfer encoding, as browsers get it)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Uvicorn:
    """``uvicorn drportal.asgi:application`` on a free port; restartable on the same port."""

    def __init__(self, env: dict[str, str], log_dir: Path, port: int | None = None) -> None:
        self.env = env
        self.log_dir = log_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> Uvicorn:
        self.starts += 1
        env = dict(os.environ)
        env.update(self.env)
        env.setdefault("DJANGO_SETTINGS_MODULE", "drportal.settings")
        log = open(self.log_dir / f"uvicorn-{self.starts}.log", "wb")  # noqa: SIM115 (lives with the process)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "drportal.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--timeout-graceful-shutdown",
                "1",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited:\n{self.logs()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"uvicorn not up in {timeout} s:\n{self.logs()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:] for p in sorted(self.log_dir.glob("uvicorn-*.log"))
        )


@dataclass
class Event:
    id: str | None = None
    event: str = "message"
    data: str = ""
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    received: float = 0.0  # time.monotonic() when its last line arrived

    @property
    def json(self) -> dict:
        return json.loads(self.data)


class StreamEnded(Exception):
    pass


class SSEClient:
    """One GET of an event stream. ``status`` and ``headers`` are there after connect;
    ``next()`` returns the next event (comment-only blocks come back as events with
    ``event == ""``), raising StreamEnded when the server closed the stream."""

    def __init__(
        self,
        base: str,
        path: str,
        *,
        cookies: dict[str, str] | None = None,
        last_event_id: int | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10,
    ) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream"]
        if cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in cookies.items()))
        if last_event_id is not None:
            lines.append(f"Last-Event-ID: {last_event_id}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._raw = b""
        self._body = b""
        self._eof = False
        self.parts: dict[str, Event] = {}
        self.parts_seen: list[Event] = []
        head = self._read_until(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"

    # -- transport --

    def _recv(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            self._eof = True
        self._raw += data

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._raw:
            if self._eof:
                raise StreamEnded("connection closed")
            self._recv()
        head, _, self._raw = self._raw.partition(marker)
        return head

    def _read_exact(self, n: int) -> bytes:
        while len(self._raw) < n:
            if self._eof:
                raise StreamEnded("connection closed")
            self._recv()
        data, self._raw = self._raw[:n], self._raw[n:]
        return data

    def _more_body(self) -> None:
        if not self.chunked:
            if self._raw:
                self._body, self._raw = self._body + self._raw, b""
                return
            self._recv()
            if self._eof and not self._raw:
                raise StreamEnded("connection closed")
            self._body, self._raw = self._body + self._raw, b""
            return
        size = int(self._read_until(b"\r\n").split(b";")[0], 16)
        if size == 0:
            raise StreamEnded("last chunk")
        self._body += self._read_exact(size)
        self._read_exact(2)

    # -- events --

    def next(self, timeout: float = 10) -> Event:
        self.sock.settimeout(timeout)
        while b"\n\n" not in self._body:
            self._more_body()
        block, _, self._body = self._body.partition(b"\n\n")
        event = Event(received=time.monotonic())
        data: list[str] = []
        named = False
        for line in block.decode().split("\n"):
            if line.startswith(":"):
                event.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                event.id = value
            elif name == "event":
                event.event, named = value, True
            elif name == "data":
                data.append(value)
            elif name == "retry":
                event.retry = int(value)
        event.data = "\n".join(data)
        if not data and not named and event.id is None:
            event.event = ""  # a comment or a retry line, not an event
        return event

    def next_event(self, timeout: float = 10, *, parts: bool = False) -> Event:
        """The next real event, skipping keepalives and the retry line, and (unless
        ``parts``) the board's HTML parts (``html-<part>``), which are kept in ``parts``
        (the latest of each) and ``parts_seen`` (every one, in order)."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(deadline - time.monotonic(), 0.01))
            if event.event.startswith("html-"):
                self.parts[event.event.removeprefix("html-")] = event
                self.parts_seen.append(event)
                if not parts:
                    continue
            if event.event:
                return event

    def events(self, n: int, timeout: float = 10) -> list[Event]:
        deadline = time.monotonic() + timeout
        return [self.next_event(max(deadline - time.monotonic(), 0.01)) for _ in range(n)]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> SSEClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def http_get(base: str, path: str, *, cookies: dict[str, str] | None = None, timeout: float = 10) -> int:
    """The status of a plain GET (no redirects followed)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        cookie = ("Cookie: " + "; ".join(f"{k}={v}" for k, v in cookies.items()) + "\r\n") if cookies else ""
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n{cookie}\r\n".encode())
        return int(s.recv(64).split()[1])
