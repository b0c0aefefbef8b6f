"""A door in front of an SSH server: a real TCP proxy on loopback that treats the first
connections badly, then lets the rest through.

    with Door(upstream=("127.0.0.1", sshd.port)) as door:
        door.misbehave("reset", times=2)   # the next two connections are reset
        SSHConnection(sshd.target(port=door.port)).run(["true"])

What a connection can meet: ``reset`` (accepted, then an RST: a dropped connection),
``close`` (accepted, then closed: the server went away mid-handshake), ``silent``
(accepted and never answered, like a slow or half-dead host: the client's timeout ends
it). ``closed()`` shuts the listener, so connecting is refused until ``opened()``.
``cut()`` breaks every connection passing through now (a network failure mid-command);
``stall(seconds)`` holds back what their clients send meanwhile (what the server sends
still arrives), as a congested link or a server too busy to read would.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections import deque
from typing import Literal

Misbehaviour = Literal["reset", "close", "silent"]


class Door:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.connections = 0  # accepted, whatever became of them
        self._plan: deque[Misbehaviour] = deque()
        self._held: list[socket.socket] = []
        self._flows: list[threading.Event] = []  # set: a passing connection's client may send
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    # The plan
    def misbehave(self, how: Misbehaviour, times: int = 1) -> Door:
        with self._lock:
            self._plan.extend([how] * times)
        return self

    def opened(self) -> Door:
        if self._listener is None:
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(16)
            self._listener = listener
            threading.Thread(target=self._serve, args=(listener,), daemon=True, name="door").start()
        return self

    def closed(self) -> Door:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        return self

    def cut(self) -> None:
        """Break every connection held or passing through now (both ends see it closed)."""
        with self._lock:
            held, self._held = self._held, []
        for sock in held:
            # shutdown() first: it wakes a pump blocked in recv(), which close() alone does not.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def stall(self, seconds: float) -> None:
        """Hold back, for ``seconds``, what the clients of the connections passing through
        now send; connections made meanwhile are not held."""
        with self._lock:
            flows = list(self._flows)
        for flow in flows:
            flow.clear()
        timer = threading.Timer(seconds, lambda: [flow.set() for flow in flows])
        timer.daemon = True
        timer.start()

    def __enter__(self) -> Door:
        return self.opened()

    def __exit__(self, *exc_info: object) -> None:
        self.closed()
        self.cut()

    # The work
    def _serve(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.connections += 1
                how = self._plan.popleft() if self._plan else None
                if how in (None, "silent"):
                    self._held.append(client)
            if how == "reset":
                _reset(client)
            elif how == "close":
                client.close()
            elif how is None:
                threading.Thread(target=self._pass, args=(client,), daemon=True, name="door-pass").start()
            # "silent": held (open, unanswered) until cut() or the end of the block

    def _pass(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _reset(client)
            return
        server.settimeout(None)
        flowing = threading.Event()
        flowing.set()
        with self._lock:
            self._held.append(server)
            self._flows.append(flowing)
        threading.Thread(target=_pump, args=(server, client), daemon=True, name="door-pump").start()
        _pump(client, server, flowing)


def _pump(source: socket.socket, sink: socket.socket, flowing: threading.Event | None = None) -> None:
    try:
        while data := source.recv(65536):
            if flowing is not None:
                flowing.wait()
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        _reset(sink)


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN (SO_LINGER 0): the peer sees 'connection reset'."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
