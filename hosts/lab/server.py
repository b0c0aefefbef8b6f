"""The lab's SSH server: every lab host on its own loopback address, real SSH (paramiko).

One listening socket per host address (all on one port), a thread per connection and
per channel, so the engine's parallel tasks and a 50-host benchmark run concurrently.
Only ``exec`` requests are served (no shell, no pty). A command goes:

  arrive -> read faults/latency from the state snapshot (no lock) -> sleep the injected
  delay (outside the lock, so slow hosts do not serialise the lab) -> under the state
  lock: consume fail-next or dispatch to the tool, save, journal -> send output, exit
  status, close the channel.

Faults are re-read on every connection and command, and by a supervisor thread whenever
the state file changes (inotify; at most every 0.2 s while it keeps changing) that closes
the listening socket of a "down" host (connections are refused, live ones are cut) and
reopens it when the host is back up. "hang" accepts TCP and then never speaks (no
banner, no answer) until the client gives up.

Idle, the lab sleeps: listeners block in accept(), a down host's listener and the
supervisor wait for a change, connections wait for the client. Only a backstop timer
(``_HOUSEKEEPING_S``) wakes the supervisor of an idle lab.

The VMs are served too, while their domain runs (hosts/lab/vm_services.py): their SSH on
this same port at their service address, with its own host key and a few VM-side tools,
and their HTTP(S)/TCP service ports.

One process runs one Python thread at a time, so a few hundred busy hosts are one core's
work: ``--shards N`` serves the lab from N processes (sshd.py's Shard: each its share of
the dom0s, arrays and VMs, all on the same port), which share the state through store.py.

Run: ``python -m hosts.lab.server --lab-dir DIR --port N [--shards N]`` (prints "lab ready ...").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from pathlib import Path

import paramiko

from hosts.drivers.base import redact_secrets, wait_readable
from hosts.lab import default_lab_dir, tools, vm_services
from hosts.lab.keys import ensure_keys, fingerprints, load_host_key, write_known_hosts
from hosts.lab.seed import default_faults, reset
from hosts.lab.sshd import (
    Listener,
    Session,
    SessionTransport,
    Shard,
    bind,
    close_quietly,
    latency_for,
    served_names,
    split_command,
)
from hosts.lab.store import LabStore, StateWatch
from hosts.lab.tools.base import ToolContext, ToolResult
from hosts.lab.tools.core import command_not_found
from hosts.reference import LAB_PORT

__all__ = ["LabError", "LabServer", "ensure_keys", "fingerprints", "spawn_lab_process", "start_lab_in_thread"]

log = logging.getLogger("hosts.lab.server")
_SUPERVISOR_PERIOD = 0.2  # at most one supervisor pass this often while the state keeps changing
_HOUSEKEEPING_S = 5.0  # an idle supervisor's backstop wake-up
_CONNECTION_BACKSTOP_S = 30.0  # a connection's thread: closing its transport wakes it anyway
_CHANNEL_THREAD_IDLE_S = 30.0  # an idle channel thread waits this long for the next channel


class LabError(Exception):
    pass


class _HandlerCrashed(Exception):
    """Raised out of the state transaction so a crashed tool's half-done changes are dropped."""


class LabServer:
    """Serves the hosts of the lab state (or only ``hosts``: names, or one shard of them) on
    ``port`` (0: pick a free one, the same for every address; read ``.port`` after
    ``start()``). ``announce``: write server.json (a shard other than the first does not)."""

    def __init__(
        self,
        lab_dir: str | os.PathLike[str] | None = None,
        port: int = LAB_PORT,
        hosts: Iterable[str] | Shard | None = None,
        *,
        verbose: bool = False,
        announce: bool = True,
    ) -> None:
        self.lab_dir = Path(lab_dir) if lab_dir is not None else default_lab_dir()
        self.store = LabStore(self.lab_dir)
        self.port = port
        self.only_hosts = served_names(hosts)
        self.announce = announce
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.RLock()  # guards everything below; re-entrant for _spawn
        self._listeners: dict[str, Listener] = {}
        self._transports: dict[str, set[paramiko.Transport]] = defaultdict(set)
        self._held: dict[str, set[socket.socket]] = defaultdict(set)
        self._keys: dict[str, tuple[int, paramiko.PKey]] = {}
        self._threads: set[threading.Thread] = set()
        # Channels are served by reused threads (one thread per live channel, as many as
        # needed): starting a thread per command cost the lab ~0.1 ms of CPU each.
        self._channels = _ThreadPool(self._spawn, _CHANNEL_THREAD_IDLE_S)
        self._generations: dict[str, int] = {}
        self._ssh_log_name = "hosts.lab.ssh"
        self._watch = StateWatch(self.store.state_path, _SUPERVISOR_PERIOD)
        self._supervised: tuple | None = None  # what the last supervisor pass acted on
        # Per host: the state entry last read and what the supervisor took from it. The
        # store's revisions share the entries a commit did not change, so one that is the
        # same object is not read again (5,000 domains took 4 ms a pass, five passes a
        # second per shard while a run keeps the state changing).
        self._host_inputs: dict[str, tuple[dict, tuple]] = {}
        # The VMs' service ports (HTTP, HTTPS, TCP); their SSH is served like a dom0's.
        self.services = vm_services.ServiceManager(self.lab_dir, self.only_hosts)
        # paramiko logs every client that hangs up mid-handshake as an ERROR; in the lab
        # that is routine (probes, the "down"/"hang" faults), so only show it on request.
        logging.getLogger(self._ssh_log_name).setLevel(logging.DEBUG if verbose else logging.CRITICAL)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> LabServer:
        ensure_keys(self.lab_dir)
        snapshot = self.store.snapshot()
        named = self.only_hosts if isinstance(self.only_hosts, set) else set()
        unknown = sorted(named - set(snapshot["hosts"]) - set(vm_services.specs(snapshot)))
        if unknown:
            known = ", ".join(sorted(snapshot["hosts"]))
            raise LabError(f"unknown lab host '{unknown[0]}'; known: {known}")
        served = self._served(snapshot)
        for host in served:
            self._host_key(host, self._faults(snapshot, host).get("key_generation", 0))
        for module, error in tools.LOAD_ERRORS.items():
            log.warning("lab: tool module %s not loaded: %s", module, error)
        sockets = self._bind_all(served, snapshot)
        with self._lock:
            for host, address in served.items():
                self._add_listener(host, address, sockets.get(host))
        self._generations = {h: self._faults(snapshot, h).get("key_generation", 0) for h in served}
        write_known_hosts(self.lab_dir, self.port)
        if self.announce:
            info = {"pid": os.getpid(), "port": self.port, "started": time.time(), "hosts": served}
            (self.lab_dir / "server.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
        self._supervise_once()  # the running VMs' SSH and service ports, before "ready"
        self._spawn(self._supervise, "lab-supervisor")
        self.ready.set()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._watch.wake()
        self._channels.close()
        self.services.stop()
        with self._lock:
            listeners = list(self._listeners.values())
            transports = [t for group in self._transports.values() for t in group]
            held = [s for group in self._held.values() for s in group]
        for listener in listeners:
            listener.retire()
        for listener in listeners:
            if listener.thread is not None:
                listener.thread.join(2)
        for item in [*transports, *held]:
            _cut(item)
        deadline = time.monotonic() + 3
        for thread in list(self._threads):
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        self._watch.close()
        info_path = self.lab_dir / "server.json"
        try:
            if json.loads(info_path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                info_path.unlink()
        except (OSError, ValueError):
            pass

    def serve_forever(self, out: Callable[[str], object] = print, *, lead: bool = False) -> None:
        """Start, announce "lab ready", serve until SIGINT/SIGTERM (or ``stop()``).

        ``lead``: this server is shard 0 of a lab of several (``hosts=Shard(0, N)``) and
        starts the others as child processes on the same port; "lab ready" comes once all
        are. A shard that dies stops the whole lab: half an estate answering would look
        like a disaster."""
        shards = self.only_hosts.count if lead and isinstance(self.only_hosts, Shard) else 1
        self.start()
        children: list[subprocess.Popen[str]] = []
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, lambda *_: self._stop.set())
        try:
            for index in range(1, shards):
                children.append(spawn_lab_process(self.lab_dir, self.port, shard=Shard(index, shards))[0])
            hosts = ", ".join(f"{h}={listener.address}" for h, listener in sorted(self._listeners.items()))
            shown = f" shards={shards}" if shards > 1 else ""
            out(f"lab ready port={self.port} dir={self.lab_dir}{shown} hosts: {hosts}")
            # With a timeout: the kernel hands SIGTERM to any thread, and a main thread
            # blocked in a wait without one would never run the handler.
            while not self._stop.wait(1.0):
                for index, child in enumerate(children, start=1):
                    if child.poll() is not None:
                        raise LabError(
                            f"shard {index}/{shards} (pid {child.pid}) exited with status {child.returncode}:"
                            " the lab stopped, since its hosts would look down"
                        )
        finally:
            for child in children:
                child.terminate()
            self.stop()
            for child in children:
                try:
                    child.wait(10)
                except subprocess.TimeoutExpired:
                    child.kill()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    # -- listeners ----------------------------------------------------------------------

    def _served(self, snapshot: dict) -> dict[str, str]:
        return {
            name: info["address"]
            for name, info in snapshot["hosts"].items()
            if self.only_hosts is None or name in self.only_hosts
        }

    def _served_all(self, snapshot: dict) -> dict[str, str]:
        """The dom0s and arrays, plus the SSH of every VM that runs now (on any dom0)."""
        served = self._served(snapshot)
        for vm, address in vm_services.ssh_endpoints(snapshot, self.only_hosts).items():
            served.setdefault(vm, address)
        return served

    @staticmethod
    def _faults(snapshot: dict, host: str) -> dict:
        return snapshot.get("faults", {}).get(host) or default_faults()

    def _key_generation(self, snapshot: dict, name: str) -> int:
        if name in snapshot["hosts"]:
            return int(self._faults(snapshot, name).get("key_generation", 0))
        return vm_services.key_generation(snapshot, name)

    def _bind_all(self, served: dict[str, str], snapshot: dict) -> dict[str, socket.socket]:
        up = [h for h in served if self._faults(snapshot, h).get("mode") != "down"]
        for _attempt in range(20):
            port, sockets = self.port, {}
            try:
                if port == 0 and served:
                    # One port for every address: let the kernel pick it on the first one.
                    first = next(iter(served))
                    probe = bind(served[first], 0)
                    port = probe.getsockname()[1]
                    if first in up:
                        sockets[first] = probe
                    else:
                        probe.close()
                for host in up:
                    if host not in sockets:
                        sockets[host] = bind(served[host], port)
            except OSError as exc:
                for sock in sockets.values():
                    sock.close()
                if self.port != 0:
                    raise LabError(f"cannot listen on port {port}: {exc.strerror or exc}") from exc
                continue
            self.port = port
            return sockets
        raise LabError("no port free on every lab address after 20 attempts")

    def _add_listener(self, host: str, address: str, sock: socket.socket | None) -> None:
        listener = Listener(host, address, sock)
        self._listeners[host] = listener
        listener.thread = self._spawn(self._listen, f"lab-listen-{host}", listener)

    def _listen(self, listener: Listener) -> None:
        """Owns its socket: opens, accepts and closes it as ``want_open`` says. Blocks in
        ``accept()`` while open and in ``wait_change()`` while closed (``Listener``)."""
        try:
            while not self._stop.is_set():
                with listener.changed:
                    if listener.retired:
                        return
                    if listener.want_open and listener.sock is None:
                        try:
                            listener.sock = bind(listener.address, self.port)
                        except OSError as exc:
                            log.warning("lab: cannot reopen %s:%s: %s", listener.address, self.port, exc)
                            listener.changed.wait(0.5)
                            continue
                    elif not listener.want_open and listener.sock is not None:
                        close_quietly(listener.sock)
                        listener.sock = None
                    sock = listener.sock
                if sock is None:
                    listener.wait_change()
                    continue
                try:
                    conn, _peer = sock.accept()
                except OSError:
                    # Shut down by set_open(False)/retire(), or a socket gone bad: a fresh
                    # one is bound on the next turn if the host is still wanted open.
                    with listener.changed:
                        if listener.sock is sock:
                            close_quietly(sock)
                            listener.sock = None
                    continue
                if not listener.want_open or listener.retired:
                    close_quietly(conn)
                    continue
                self._spawn(self._connection, f"lab-conn-{listener.host}", listener.host, conn)
        finally:
            with listener.changed:
                if listener.sock is not None:
                    close_quietly(listener.sock)
                    listener.sock = None

    def _supervise(self) -> None:
        """A pass whenever the state file changes (StateWatch), at most one per
        ``_SUPERVISOR_PERIOD`` while it keeps changing, and after ``_HOUSEKEEPING_S`` of quiet."""
        while not self._stop.is_set():
            if not self._watch.wait(_HOUSEKEEPING_S):
                self._supervised = None  # quiet for a while: a full pass (retries a busy port)
            if self._stop.is_set():
                return
            try:
                self._supervise_once()
            except Exception:
                log.exception("lab: supervisor pass failed")
            if self._stop.wait(_SUPERVISOR_PERIOD):
                return

    def _supervision_inputs(self, snapshot: dict) -> tuple:
        """What a supervisor pass reads of the state: the faults, the VMs' services, and per
        host its address and its domains' names and states (not their memory or CPU time:
        most writes change nothing here). Unchanged since the last pass: nothing to do."""
        seen, hosts = self._host_inputs, []
        for name, info in snapshot["hosts"].items():
            known = seen.get(name)
            if known is None or known[0] is not info:
                known = seen[name] = (
                    info,
                    (
                        name,
                        info.get("address"),
                        tuple((dom.get("name"), dom.get("state")) for dom in info.get("domains", ())),
                    ),
                )
            hosts.append(known[1])
        if len(seen) > len(hosts):  # hosts removed (a reset): forget them
            for name in [n for n in seen if n not in snapshot["hosts"]]:
                del seen[name]
        return snapshot.get("faults"), snapshot.get("services"), tuple(hosts)

    def _supervise_once(self) -> None:
        snapshot = self.store.snapshot()
        inputs = self._supervision_inputs(snapshot)
        if inputs == self._supervised:
            return
        served = self._served_all(snapshot)
        to_cut: list[paramiko.Transport | socket.socket] = []
        with self._lock:
            for host, listener in list(self._listeners.items()):
                if host not in served or served[host] != listener.address:
                    # Removed by a reset, moved, a VM stopped: refused from now on, its
                    # thread's accept() fails, it sees "retired" and closes the socket.
                    listener.retire()
                    del self._listeners[host]
                    if host not in snapshot["hosts"]:
                        # A VM that stops takes its live SSH sessions with it.
                        to_cut += [*self._transports.get(host, ()), *self._held.get(host, ())]
            for host, address in served.items():
                if host not in self._listeners:
                    # A VM's SSH opens at once (a dom0's opens in its listener thread).
                    sock = None if host in snapshot["hosts"] else self._try_bind(address)
                    self._add_listener(host, address, sock)
                listener = self._listeners[host]
                down = self._faults(snapshot, host).get("mode") == "down"
                if down and listener.want_open:
                    # A host that dies takes its live connections with it.
                    to_cut += [*self._transports.get(host, ()), *self._held.get(host, ())]
                listener.set_open(not down)
        for item in to_cut:
            _cut(item)
        self.services.sync(snapshot)
        generations = {h: self._key_generation(snapshot, h) for h in served}
        if generations != self._generations:
            self._generations = generations
            write_known_hosts(self.lab_dir, self.port)
        self._supervised = inputs

    def _try_bind(self, address: str) -> socket.socket | None:
        try:
            return bind(address, self.port)
        except OSError:
            return None  # the listener thread keeps trying

    # -- connections --------------------------------------------------------------------

    def _spawn(self, target: Callable[..., object], name: str, *args: object) -> threading.Thread:
        def run() -> None:
            try:
                target(*args)
            except Exception:
                log.exception("lab: %s failed", name)
            finally:
                with self._lock:
                    self._threads.discard(thread)

        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()
        return thread

    def _host_key(self, host: str, generation: int) -> paramiko.PKey:
        with self._lock:
            cached = self._keys.get(host)
        if cached is not None and cached[0] == generation:
            return cached[1]
        key = load_host_key(self.lab_dir, host)
        with self._lock:
            self._keys[host] = (generation, key)
        return key

    def _connection(self, host: str, conn: socket.socket) -> None:
        snapshot = self.store.snapshot()
        faults = self._faults(snapshot, host)
        if faults.get("mode") == "down":
            conn.close()  # raced the supervisor: act as if the host died right now
            return
        if faults.get("mode") == "hang":
            self._hold(host, conn)
            return
        # paramiko writes the output, the exit status, EOF and the close as separate small
        # packets: with Nagle on, each command waited ~40 ms for the client's delayed ACK
        # (OpenSSH coalesces them; the lab must not add a latency nobody configured).
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = SessionTransport(conn)
        transport.set_log_channel(self._ssh_log_name)
        # A drill clone ("drill-<vm>") presents its VM's key: it is a clone of the VM's disk.
        owner = vm_services.key_owner(snapshot, host)
        transport.add_server_key(self._host_key(owner, self._key_generation(snapshot, host)))
        session = Session(self.lab_dir)
        with self._lock:
            self._transports[host].add(transport)
        try:
            try:
                transport.start_server(server=session)
            except (paramiko.SSHException, EOFError, OSError):
                return
            settled = False
            while not self._stop.is_set() and transport.is_active():
                # Woken when the transport ends, whoever ends it (SessionTransport.close):
                # the timeout is only a backstop.
                channel = transport.accept(_CONNECTION_BACKSTOP_S)
                if channel is not None:
                    if not settled:  # a channel opens only once the client is authenticated
                        transport.settle()
                        settled = True
                    self._channels.submit(self._channel, host, transport, session, channel)
        finally:
            with self._lock:
                self._transports[host].discard(transport)
            transport.close()

    def _hold(self, host: str, conn: socket.socket) -> None:
        """A hung host: the TCP handshake completed (kernel), then silence until the client quits."""
        with self._lock:
            self._held[host].add(conn)
        try:
            # Blocking: the client hanging up ends it, and so does _cut() (the host comes
            # back or goes down, or the server stops), which shuts the socket down.
            while not self._stop.is_set():
                try:
                    if conn.recv(4096) == b"":
                        return
                except OSError:
                    return
        finally:
            with self._lock:
                self._held[host].discard(conn)
            close_quietly(conn)

    def _channel(
        self, host: str, transport: paramiko.Transport, session: Session, channel: paramiko.Channel
    ) -> None:
        try:
            command = session.wait_command(channel.get_id(), timeout=30)
            if command is not None:
                self._command(host, transport, channel, command, session)
        finally:
            channel.close()

    def _command(
        self,
        host: str,
        transport: paramiko.Transport,
        channel: paramiko.Channel,
        raw: bytes,
        session: Session,
    ) -> None:
        arrived, started = time.time(), time.monotonic()
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        argv = split_command(text)
        snapshot = self.store.snapshot()
        faults = self._faults(snapshot, host)
        if faults.get("mode") in {"down", "hang"}:
            mode = faults["mode"]
            note = "host down: connection dropped" if mode == "down" else "host hung: never answered"
            self.store.journal.append(
                host=host, command=redact_secrets(text), exit_status=None, seconds=0.0, notes=[note]
            )
            if mode == "down":
                transport.close()
            # Until the client gives up: its close (or the transport's end, or stop(), which
            # closes every transport) ends the read; a hung host reads and ignores stdin.
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                channel.settimeout(None)
                while not self._stop.is_set() and channel.recv(4096):
                    pass
            return
        notes: list[str] = []
        delay = float(faults.get("slow_seconds") or 0.0)
        if delay:
            notes.append(f"slow: +{delay:g} s")
        delay += latency_for(snapshot, argv or [])
        if delay > 0 and self._stop.wait(delay):
            return
        status, stdout, stderr = self._execute(host, argv, text, arrived, started, notes)
        session.wait_answered(channel.get_id())
        try:
            if stdout:
                channel.sendall(stdout.encode("utf-8"))
            if stderr:
                channel.sendall_stderr(stderr.encode("utf-8"))
            channel.send_exit_status(status)
        except (OSError, EOFError, paramiko.SSHException):
            pass  # the client went away; the journal already has the command

    def _execute(
        self, host: str, argv: list[str] | None, text: str, arrived: float, started: float, notes: list[str]
    ) -> ToolResult:
        return execute_command(self.store, host, argv, text, arrived, started, notes)


class _ThreadPool:
    """Runs each submitted call at once in a thread of its own: an idle thread if there is
    one, else a new one (``spawn``). A thread that stays idle ``idle_s`` ends; ``close()``
    ends every idle one now and makes the busy ones end after their call."""

    def __init__(self, spawn: Callable[..., threading.Thread], idle_s: float) -> None:
        self._spawn, self._idle_s = spawn, idle_s
        self._cond = threading.Condition()
        self._jobs: deque[tuple[Callable[..., object], tuple]] = deque()
        self._idle = 0  # threads waiting for a job
        self._closed = False

    def submit(self, target: Callable[..., object], *args: object) -> None:
        with self._cond:
            if self._closed:
                return
            self._jobs.append((target, args))
            if self._idle >= len(self._jobs):
                self._cond.notify()
                return
        self._spawn(self._work, "lab-chan")

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._jobs.clear()
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                if not self._jobs and not self._closed:
                    self._idle += 1
                    try:
                        self._cond.wait(self._idle_s)
                    finally:
                        self._idle -= 1
                if self._closed or not self._jobs:
                    return
                target, args = self._jobs.popleft()
            try:
                target(*args)
            except Exception:
                log.exception("lab: a channel failed")


def _cut(item: paramiko.Transport | socket.socket) -> None:
    """Close a live connection so that its thread notices at once: a transport's close
    shuts its socket down (hosts.drivers.ssh.Transport); a held socket is shut down here,
    since closing it alone does not wake a thread blocked reading it."""
    if isinstance(item, socket.socket):
        with contextlib.suppress(OSError):
            item.shutdown(socket.SHUT_RDWR)
        close_quietly(item)
    else:
        item.close()


def execute_command(
    store: LabStore,
    host: str,
    argv: list[str] | None,
    text: str,
    arrived: float,
    started: float,
    notes: list[str],
) -> ToolResult:
    """Run one command line on one lab host under the state lock, and journal it. Shared by
    the paramiko server and the OpenSSH ForceCommand entry point (hosts.lab.forced)."""
    with store.locked():
        try:
            with store.transaction() as state:
                result = _dispatch(state, host, argv, arrived, notes)
        except _HandlerCrashed as crash:
            cause = crash.__cause__
            result = (
                1,
                "",
                f"lab: {argv[0] if argv else '?'} crashed: {type(cause).__name__}: {cause}\n",
            )
            notes += ["state changes discarded", *traceback.format_exception(cause)[-3:]]
            log.error("lab: tool crashed on %s: %s", host, text, exc_info=cause)
        store.journal.append(
            host=host,
            command=redact_secrets(text),  # a password sent on a command line is never journalled
            exit_status=result[0],
            seconds=time.monotonic() - started,
            notes=notes,
            when=arrived,
        )
    return result


def _dispatch(state: dict, host: str, argv: list[str] | None, arrived: float, notes: list[str]) -> ToolResult:
    if host not in state["hosts"]:
        return vm_services.dispatch(state, host, argv, arrived, notes)  # a VM's own SSH
    faults = state.setdefault("faults", {}).setdefault(host, default_faults())
    if faults.get("fail_next"):
        message = str(faults["fail_next"])
        faults["fail_next"] = None
        notes.append("fail-next injected")
        return 1, "", message if message.endswith("\n") else message + "\n"
    if argv is None:
        return 2, "", "bash: -c: line 1: unexpected EOF while looking for matching quote\n"
    if not argv:
        return 0, "", ""
    handler = tools.resolve(argv[0])
    if handler is None:
        return command_not_found(argv[0])
    ctx = ToolContext(host=host, state=state, now=arrived)
    try:
        status, stdout, stderr = handler(ctx, argv)
    except Exception as exc:
        raise _HandlerCrashed() from exc
    finally:
        notes += ctx.notes
    return int(status), stdout, stderr


def start_lab_in_thread(lab_dir: str | os.PathLike[str], port: int = 0, **kwargs: object) -> LabServer:
    """For tests: a started server in this process (daemon threads). Call ``.stop()``."""
    return LabServer(lab_dir, port, **kwargs).start()  # type: ignore[arg-type]


def spawn_lab_process(
    lab_dir: str | os.PathLike[str],
    port: int = 0,
    *,
    timeout: float = 20.0,
    reset_state: bool = False,
    shard: Shard | None = None,
    shards: int = 1,
) -> tuple[subprocess.Popen[str], int]:
    """``python -m hosts.lab.server`` in a child process; returns it once "lab ready" is
    printed, with the port it listens on. Stop it with ``terminate()`` (SIGTERM).
    ``shard``: serve only that shard; ``shards``: the whole lab in that many processes."""
    argv = [sys.executable, "-m", "hosts.lab.server", "--lab-dir", str(lab_dir), "--port", str(port)]
    if reset_state:
        argv.append("--reset")
    if shard is not None:
        argv += ["--shard", str(shard)]
    if shards > 1:
        argv += ["--shards", str(shards)]
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(argv, cwd=repo, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        readable = wait_readable([proc.stdout], 0.2)
        if readable:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            match = re.match(r"lab ready port=(\d+)", line)
            if match:
                return proc, int(match.group(1))
        elif proc.poll() is not None:
            break
    proc.kill()
    raise LabError(f"lab process did not get ready within {timeout} s (exit {proc.poll()})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hosts.lab.server", description=__doc__.split("\n")[0])
    parser.add_argument("--lab-dir", default=None, help="default: $DRPORTAL_LAB_DIR or <repo>/var/lab")
    parser.add_argument("--port", type=int, default=LAB_PORT, help="0 picks a free port")
    parser.add_argument("--host", action="append", dest="hosts", help="serve only this host (repeatable)")
    parser.add_argument("--reset", action="store_true", help="reseed the reference estate first")
    parser.add_argument(
        "--shards",
        type=int,
        default=1,
        help="serve the lab from this many processes (a few hundred busy hosts are one core's work)",
    )
    parser.add_argument("--shard", metavar="I/N", help="serve only shard I of N (what --shards starts)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.shards < 1:
        parser.error("--shards: must be 1 or more")
    if sum(bool(x) for x in (args.hosts, args.shard, args.shards > 1)) > 1:
        parser.error("--host, --shard and --shards exclude each other")
    served: list[str] | Shard | None = args.hosts
    if args.shard:
        try:
            served = Shard.parse(args.shard)
        except ValueError as exc:
            parser.error(f"--shard: {exc}")
    elif args.shards > 1:
        served = Shard(0, args.shards)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    store = LabStore(args.lab_dir)
    if args.reset:
        reset(store)
    try:
        LabServer(
            store.lab_dir, args.port, served, verbose=args.verbose, announce=not args.shard
        ).serve_forever(out=lambda line: print(line, flush=True), lead=args.shards > 1)
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
