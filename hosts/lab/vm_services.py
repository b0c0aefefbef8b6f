"""The VMs' own services in the lab: what the functional checks (thesis tables 3.1, 3.2) talk to.

Every VM of ``state["services"]`` (seeded from ``hosts.reference.SERVICES``) has a loopback
service address. While its domain is alive on a dom0 that is not "down" (any dom0: after
a failover the VM answers from the other site, on the same address), the lab serves on
that address:

  - its ports: HTTP and HTTPS pages (one self-signed certificate for all, made once in
    ``keys/tls_cert.pem``), and plain TCP ports that send an optional banner (SMTP,
    rsync, svnserve) and otherwise just accept;
  - SSH on the lab's port, with a host key per VM (``keys/host_<vm>``, like a dom0's),
    answering a few VM-side tools: systemctl, svn, rsync, cat, test, ... (``VM_TOOLS``).

A drill clone (a running domain named ``drill-<vm>``, started from a snapshot of the VM's
disks) serves the same ports and the same SSH (same host key: it is a clone of the disk)
on the VM's ``drill_address``, while the VM itself keeps serving on its own address.

Listeners open when the domain comes alive and close, cutting live connections, when it
stops, is destroyed, or its dom0 goes down. ``lab fault VM service-down PORT|ssh|all``
takes single services away (the unit behind a down port reports "failed").
The server's supervisor calls ``ServiceManager.sync`` every 0.2 s; the SSH side lives in
the server (``ssh_endpoints``), the commands in ``dispatch``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import http.server
import ipaddress
import logging
import os
import posixpath
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from hosts import reference
from hosts.lab.keys import (
    _write_private,
    fingerprint_of,
    host_key_path,
    keys_dir,
    load_host_key,
    write_secret,
)
from hosts.lab.seed import default_drill_address
from hosts.lab.sshd import Shard, bind, close_quietly, served_names
from hosts.lab.store import LabStore
from hosts.lab.tools.base import ToolResult
from hosts.lab.tools.core import command_not_found

log = logging.getLogger("hosts.lab.vm_services")

_CONN_TIMEOUT = 5.0
_WARN_AFTER = 2.0  # a port still busy this long after we wanted it is worth a warning
_BIN_DIRS = frozenset({"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"})

# -- the state's view -----------------------------------------------------------------------


DRILL_PREFIX = "drill-"  # a domain "drill-<vm>" is a drill clone of <vm>


def reference_services() -> dict[str, dict]:
    services = {vm["name"]: reference.vm_services(vm["name"]) for vm in reference.VMS}
    for spec in services.values():
        spec["drill_address"] = default_drill_address(spec["address"])
    return services


def specs(state: dict) -> dict[str, dict]:
    """``state["services"]``; a lab state from before services existed (or a synthetic one)
    gets the reference's. READ-ONLY: the reference's is built once and shared (the
    supervisor asks several times per pass); ``reference_services()`` for one to change."""
    if "services" in state:
        return state["services"]
    global _REFERENCE_SPECS
    if _REFERENCE_SPECS is None:
        _REFERENCE_SPECS = reference_services()
    return _REFERENCE_SPECS


_REFERENCE_SPECS: dict[str, dict] | None = None


def alive_vms(state: dict) -> dict[str, str]:
    """{VM name: dom0} for every domain that runs (not paused, shut down, crashed or dying)
    on a dom0 that is not "down". A VM alive on two dom0s (split brain) counts once."""
    alive: dict[str, str] = {}
    faults = state.get("faults", {})
    for host, info in state["hosts"].items():
        if info.get("kind") != "dom0" or faults.get(host, {}).get("mode") == "down":
            continue
        for dom in info.get("domains", ()):
            if dom.get("domid") == 0 or dom["name"] == "Domain-0":
                continue
            if _runs(str(dom.get("state", ""))):
                alive.setdefault(dom["name"], host)
    return alive


@functools.lru_cache(maxsize=256)
def _runs(flags: str) -> bool:
    """An ``xl list`` state that runs: only r and b flags set."""
    return set(flags.replace("-", "")) <= {"r", "b"}


def drill_clones(state: dict, alive: dict[str, str] | None = None) -> dict[str, str]:
    """{drill domain: VM} for every running ``drill-<vm>`` whose VM has a drill address
    (``alive``: alive_vms(state) if the caller has it)."""
    all_specs = specs(state)
    clones = {}
    for name in alive_vms(state) if alive is None else alive:
        vm = name[len(DRILL_PREFIX) :] if name.startswith(DRILL_PREFIX) else None
        if vm and all_specs.get(vm, {}).get("drill_address"):
            clones[name] = vm
    return clones


def resolve_vm(state: dict, name: str) -> tuple[str, dict, str] | None:
    """(VM, its spec, the address served) for a VM's name or its drill clone's, else None."""
    if name in state.get("hosts", {}):
        return None
    all_specs = specs(state)
    if name in all_specs:
        return name, all_specs[name], all_specs[name]["address"]
    vm = name[len(DRILL_PREFIX) :] if name.startswith(DRILL_PREFIX) else ""
    spec = all_specs.get(vm)
    if spec is not None and spec.get("drill_address"):
        return vm, spec, spec["drill_address"]
    return None


def key_owner(state: dict, name: str) -> str:
    """Whose SSH host key ``name`` presents: a drill clone has its VM's (a clone of its disk)."""
    resolved = resolve_vm(state, name)
    return resolved[0] if resolved is not None else name


def _served_vms(state: dict, only: Iterable[str] | Shard | None) -> list[tuple[str, dict, str]]:
    """(name served, spec, address) of every running VM and drill clone (``only``: by VM
    or clone name, or a shard of the lab's names)."""
    alive = alive_vms(state)
    wanted = served_names(only)
    served = [(vm, spec, spec["address"]) for vm, spec in specs(state).items() if vm in alive]
    for clone, vm in drill_clones(state, alive).items():
        spec = specs(state)[vm]
        served.append((clone, spec, spec["drill_address"]))
    if wanted is None:
        return served
    if isinstance(wanted, Shard):  # a drill clone is served by its VM's shard, never by two
        return [entry for entry in served if entry[0].removeprefix(DRILL_PREFIX) in wanted]
    return [
        (name, spec, address)
        for name, spec, address in served
        if name in wanted or name.removeprefix(DRILL_PREFIX) in wanted
    ]


def _down(spec: dict) -> set:
    return set(spec.get("down") or ())


def service_is_down(spec: dict, what: int | str) -> bool:
    down = _down(spec)
    return "all" in down or what in down


def unit_is_active(spec: dict, unit: str) -> bool:
    if "all" in _down(spec):
        return False
    return not any(service_is_down(spec, port) for port in spec.get("units", {}).get(unit, ()))


def ssh_endpoints(state: dict, only: Iterable[str] | Shard | None = None) -> dict[str, str]:
    """{VM or drill clone: address} of the VM SSH servers that should listen now."""
    return {
        name: address for name, spec, address in _served_vms(state, only) if not service_is_down(spec, "ssh")
    }


def port_endpoints(
    state: dict, only: Iterable[str] | Shard | None = None
) -> dict[tuple[str, int], tuple[str, dict]]:
    """{(address, port): (VM or drill clone, port entry)} of the service ports that should listen now."""
    endpoints: dict[tuple[str, int], tuple[str, dict]] = {}
    for name, spec, address in _served_vms(state, only):
        for entry in spec.get("ports", ()):
            if not service_is_down(spec, entry["port"]):
                endpoints.setdefault((address, int(entry["port"])), (name, entry))
    return endpoints


def key_generation(state: dict, vm: str) -> int:
    resolved = resolve_vm(state, vm)
    return int(resolved[1].get("key_generation", 0)) if resolved is not None else 0


# -- faults and keys (manage.py lab fault VM service-down|service-up|rekey) ------------------


def set_services(store: LabStore, vm: str, what: list[str], *, down: bool) -> str:
    """Take services of ``vm`` down (or bring them up): port numbers, ``ssh`` or ``all``
    (``service-up`` with nothing named means all). Returns a one-line summary; raises
    KeyError for an unknown VM and ValueError for a port the VM does not serve."""
    with store.transaction() as state:
        services = state.setdefault("services", reference_services())
        spec = services[vm]
        ports = [int(entry["port"]) for entry in spec["ports"]]
        everything: set[int | str] = {*ports, "ssh"}
        current = set(everything) if "all" in _down(spec) else _down(spec) & everything
        if not what:
            if down:
                raise ValueError("service-down needs PORT, ssh or all")
            what = ["all"]
        for word in what:
            if word == "all":
                current = set(everything) if down else set()
                continue
            item: int | str = "ssh" if word == "ssh" else _port(word)
            if item not in everything:
                serves = ", ".join(str(p) for p in sorted(ports))
                raise ValueError(f"{vm} serves no port {word}; it serves: {serves} and ssh")
            if down:
                current.add(item)
            else:
                current.discard(item)
        spec["down"] = ["all"] if current == everything else sorted(current, key=str)
        return describe(vm, spec)


def _port(word: str) -> int:
    try:
        return int(word)
    except ValueError:
        raise ValueError(f"not a port: {word!r} (use a port number, ssh or all)") from None


def describe(vm: str, spec: dict) -> str:
    kinds = {int(entry["port"]): entry["kind"] for entry in spec["ports"]}
    up = [f"{kind} {port}" for port, kind in sorted(kinds.items()) if not service_is_down(spec, port)]
    down = [f"{kind} {port}" for port, kind in sorted(kinds.items()) if service_is_down(spec, port)]
    (up if not service_is_down(spec, "ssh") else down).append("ssh")
    drill = f", drill {spec['drill_address']}" if spec.get("drill_address") else ""
    text = f"{vm} ({spec['address']}{drill}): up: {', '.join(up) or 'nothing'}"
    return text + (f"; down: {', '.join(down)}" if down else "")


def rekey_vm(store: LabStore, vm: str) -> str:
    """New SSH host key for ``vm``; a running server uses it for new connections."""
    with store.transaction() as state:
        spec = state.setdefault("services", reference_services())[vm]
        _write_private(host_key_path(store.lab_dir, vm), f"root@{vm}")
        spec["key_generation"] = int(spec.get("key_generation", 0)) + 1
    return fingerprint_of(load_host_key(store.lab_dir, vm))


def vm_fingerprints(lab_dir: str | os.PathLike[str]) -> dict[str, str]:
    """{VM: "SHA256:..."} of every VM with services (keys generated if missing)."""
    state = LabStore(lab_dir).read()
    return {vm: fingerprint_of(load_host_key(lab_dir, vm)) for vm in specs(state)}


# -- TLS ----------------------------------------------------------------------------------------


def tls_paths(lab_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    directory = keys_dir(lab_dir)
    return directory / "tls_cert.pem", directory / "tls_key.pem"


def ensure_tls(lab_dir: str | os.PathLike[str], addresses: Iterable[str], names: Iterable[str] = ()) -> Path:
    """The lab's self-signed certificate (made once; remade only when an address is not
    among its subject alternative names). Returns the certificate's path, which is also
    what a client trusts to verify it (``DRPORTAL_TLS_CA_FILE``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = tls_paths(lab_dir)
    wanted = {ipaddress.ip_address(a) for a in addresses if _is_ip(a)}
    with LabStore(lab_dir).locked():
        if cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            if wanted <= set(san.get_values_for_type(x509.IPAddress)):
                return cert_path
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "drportal lab services")])
        now = dt.datetime.now(dt.UTC)
        alt = [x509.DNSName("localhost"), *(x509.DNSName(n) for n in sorted(set(names)))]
        alt += [x509.IPAddress(a) for a in sorted(wanted)]
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        pem_key = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_secret(key_path, pem_key)
        tmp = cert_path.with_name(cert_path.name + ".tmp")
        tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        os.replace(tmp, cert_path)
    return cert_path


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# -- the listeners ------------------------------------------------------------------------------


class _HTTPHandler(http.server.BaseHTTPRequestHandler):
    """One request, then close (HTTP/1.0): pages from the port's entry, 404 otherwise."""

    protocol_version = "HTTP/1.0"
    server_version = "Apache/2.2.3"
    sys_version = ""
    timeout = _CONN_TIMEOUT

    def do_GET(self) -> None:
        self._answer(body_too=True)

    def do_HEAD(self) -> None:
        self._answer(body_too=False)

    def _answer(self, *, body_too: bool) -> None:
        entry: dict = self.server.entry  # type: ignore[attr-defined]
        path = urlsplit(self.path).path or "/"
        headers = {"Content-Type": "text/html; charset=utf-8", "Connection": "close"}
        pages = entry.get("pages") or {}
        if "status" in entry:
            status, body = int(entry["status"]), str(entry.get("body", ""))
        elif path in pages:
            status, body = 200, pages[path]
        elif path + "/" in pages:
            status, body = 301, ""
            headers["Location"] = path + "/"
        else:
            status, body = 404, f"<html><body><h1>Not Found</h1><p>{path}</p></body></html>\n"
        data = body.encode("utf-8")
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(name, value)
        self.end_headers()
        if body_too:
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("lab service %s: " + format, self.client_address, *args)


class _PortListener:
    """One service port of one VM: owns its socket; ``retire()`` closes it and cuts clients."""

    def __init__(self, vm: str, entry: dict, sock: socket.socket, tls: ssl.SSLContext | None) -> None:
        self.vm = vm
        self.entry = entry
        self.sock = sock
        self.tls = tls
        self.retired = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.threads: set[threading.Thread] = set()
        self.thread = threading.Thread(
            target=self._accept_loop, name=f"lab-svc-{vm}-{entry['port']}", daemon=True
        )
        self.thread.start()

    def retire(self) -> None:
        self.retired.set()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        # Shut down and closed here, not by the accept loop: the shutdown wakes the loop's
        # blocked accept(), the port refuses at once and is free for a quick reopen. The loop
        # then fails on the closed socket object, never on a reused descriptor.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        close_quietly(self.sock)

    def _accept_loop(self) -> None:
        # Blocks in accept(): retire() shuts the socket down, which wakes it at once (no
        # polling, so an idle lab costs nothing however many service ports it serves).
        while not self.retired.is_set():
            try:
                conn, peer = self.sock.accept()
            except (OSError, ValueError):
                if self.retired.is_set():
                    return
                time.sleep(0.05)  # e.g. out of descriptors: try again, do not spin
                continue
            if self.retired.is_set():
                close_quietly(conn)
                return
            thread = threading.Thread(target=self._serve, args=(conn, peer), daemon=True)
            with self._lock:
                self._conns.add(conn)
                self.threads.add(thread)
            thread.start()

    def _serve(self, raw: socket.socket, peer: tuple) -> None:
        conn = raw
        try:
            conn.settimeout(_CONN_TIMEOUT)
            kind = self.entry["kind"]
            if kind == "tcp":
                self._tcp(conn)
                return
            if kind == "https":
                if self.tls is None:
                    return
                # The handshake happens here, in the connection's thread: a client that
                # connects and never speaks TLS holds up nobody but itself.
                conn = self.tls.wrap_socket(conn, server_side=True)
            _HTTPHandler(conn, peer, self)  # type: ignore[arg-type]
        except (OSError, ssl.SSLError, ValueError):
            pass  # a client that hangs up or refuses our certificate
        finally:
            with self._lock:
                self._conns.discard(raw)
                self.threads.discard(threading.current_thread())
            close_quietly(conn)
            close_quietly(raw)

    def _tcp(self, conn: socket.socket) -> None:
        banner = self.entry.get("banner")
        if banner:
            conn.sendall(banner.encode("utf-8"))
        # Blocks in recv() (the socket's timeout is _CONN_TIMEOUT): the client's close ends
        # it, the usual end of a port probe, and retire() shuts the connection down.
        deadline = time.monotonic() + _CONN_TIMEOUT
        while not self.retired.is_set() and time.monotonic() < deadline:
            if not conn.recv(4096):
                return


class ServiceManager:
    """The VMs' service ports of one lab: ``sync(state)`` opens and closes listeners."""

    def __init__(self, lab_dir: str | os.PathLike[str], only: Iterable[str] | Shard | None = None) -> None:
        self.lab_dir = Path(lab_dir)
        self.only = served_names(only)
        self._listeners: dict[tuple[str, int], _PortListener] = {}
        self._failing: dict[tuple[str, int], float] = {}
        self._warned: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._tls: tuple[frozenset[str], ssl.SSLContext | None] | None = None
        self._stopped = False  # a supervisor pass racing stop() must not reopen anything

    def serving(self) -> dict[tuple[str, int], str]:
        with self._lock:
            return {key: listener.vm for key, listener in self._listeners.items()}

    def sync(self, state: dict) -> None:
        wanted = port_endpoints(state, self.only)
        with self._lock:
            if self._stopped:
                return
            for key, listener in list(self._listeners.items()):
                if wanted.get(key) != (listener.vm, listener.entry):
                    listener.retire()
                    del self._listeners[key]
            for key, (vm, entry) in wanted.items():
                if key not in self._listeners:
                    self._open(key, vm, entry, state)
            for key in list(self._failing):
                if key not in wanted:
                    del self._failing[key]
                    self._warned.discard(key)

    def _open(self, key: tuple[str, int], vm: str, entry: dict, state: dict) -> None:
        tls = self._tls_context(state) if entry["kind"] == "https" else None
        try:
            sock = bind(*key)
        except OSError as exc:
            first = self._failing.setdefault(key, time.monotonic())
            if time.monotonic() - first >= _WARN_AFTER and key not in self._warned:
                self._warned.add(key)
                hint = (
                    " (ports below 1024 need root: set DRPORTAL_LAB_SERVICE_PORT_OFFSET)"
                    if key[1] < 1024
                    else ""
                )
                log.warning(
                    "lab: cannot serve %s %s on %s:%s: %s%s",
                    vm,
                    entry["kind"],
                    *key,
                    exc.strerror or exc,
                    hint,
                )
            return
        self._failing.pop(key, None)
        self._warned.discard(key)
        self._listeners[key] = _PortListener(vm, entry, sock, tls)

    def _tls_context(self, state: dict) -> ssl.SSLContext | None:
        addresses = frozenset(
            address
            for spec in specs(state).values()
            for address in (spec["address"], spec.get("drill_address"))
            if address
        )
        if self._tls is not None and self._tls[0] == addresses:
            return self._tls[1]
        context: ssl.SSLContext | None = None
        try:
            cert = ensure_tls(self.lab_dir, addresses, specs(state))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, tls_paths(self.lab_dir)[1])
        except (OSError, ValueError, ssl.SSLError) as exc:
            log.warning("lab: no TLS certificate for the HTTPS services: %s", exc)
            context = None
        self._tls = (addresses, context)
        return context

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            listeners = list(self._listeners.values())
            self._listeners.clear()
        for listener in listeners:
            listener.retire()
        deadline = time.monotonic() + 2
        for listener in listeners:
            listener.thread.join(max(0.0, deadline - time.monotonic()))
            for thread in list(listener.threads):
                thread.join(max(0.0, deadline - time.monotonic()))


# -- commands on a VM (over its SSH) ------------------------------------------------------------


class _VM:
    def __init__(self, name: str, spec: dict, now: float) -> None:
        self.name = name
        self.spec = spec
        self.now = now
        self.files: dict[str, str] = spec.get("files") or {}
        dirs = {"/", "/etc", "/root", "/tmp", "/var", "/var/log", "/srv", "/usr", "/usr/bin"}
        for path in self.files:
            parent = posixpath.dirname(path)
            while parent not in dirs:
                dirs.add(parent)
                parent = posixpath.dirname(parent)
        self.dirs = dirs

    def path(self, word: str) -> str:
        return posixpath.normpath(word if word.startswith("/") else posixpath.join("/root", word))

    def unit(self, word: str) -> str:
        return word.removesuffix(".service")

    def knows_unit(self, unit: str) -> bool:
        return unit in self.spec.get("units", {}) or unit in ("sshd", "ssh")


def _vm_true(vm: _VM, argv: list[str]) -> ToolResult:
    return 0, "", ""


def _vm_false(vm: _VM, argv: list[str]) -> ToolResult:
    return 1, "", ""


def _vm_echo(vm: _VM, argv: list[str]) -> ToolResult:
    return 0, " ".join(argv[1:]) + "\n", ""


def _vm_hostname(vm: _VM, argv: list[str]) -> ToolResult:
    return 0, vm.name + "\n", ""


def _vm_cat(vm: _VM, argv: list[str]) -> ToolResult:
    out, err, status = [], [], 0
    for word in argv[1:]:
        path = vm.path(word)
        if path in vm.files:
            out.append(vm.files[path])
        else:
            reason = "Is a directory" if path in vm.dirs else "No such file or directory"
            err.append(f"cat: {word}: {reason}\n")
            status = 1
    return status, "".join(out), "".join(err)


def _vm_test(vm: _VM, argv: list[str]) -> ToolResult:
    words = argv[1:]
    if argv[0] == "[":
        if not words or words[-1] != "]":
            return 2, "", "[: missing `]'\n"
        words = words[:-1]
    negate = bool(words) and words[0] == "!"
    if negate:
        words = words[1:]
    if len(words) == 1:
        result = bool(words[0])
    elif len(words) == 2 and words[0] in {"-e", "-f", "-d", "-s", "-r"}:
        path = vm.path(words[1])
        is_file, is_dir = path in vm.files, path in vm.dirs
        result = {
            "-e": is_file or is_dir,
            "-r": is_file or is_dir,
            "-f": is_file,
            "-d": is_dir,
            "-s": is_dir or bool(vm.files.get(path)),
        }[words[0]]
    elif not words:
        result = False
    else:
        return 2, "", f"test: lab: unsupported expression: {' '.join(words)}\n"
    return (0 if result != negate else 1), "", ""


def _vm_systemctl(vm: _VM, argv: list[str]) -> ToolResult:
    words = [w for w in argv[1:] if not w.startswith("-")]
    quiet = "-q" in argv or "--quiet" in argv
    if not words:
        return 1, "", "systemctl: lab: only is-active, status, start and restart are simulated\n"
    verb, units = words[0], [vm.unit(w) for w in words[1:]]
    if not units:
        return 1, "", f"Too few arguments.\n{verb} needs a unit name\n"
    if verb == "is-active":
        states = [
            ("active" if _active(vm, u) else "failed") if vm.knows_unit(u) else "inactive" for u in units
        ]
        out = "" if quiet else "".join(f"{s}\n" for s in states)
        return (0 if all(s == "active" for s in states) else 3), out, ""
    if verb == "status":
        out, status = [], 0
        for unit in units:
            if not vm.knows_unit(unit):
                return 4, "".join(out), f"Unit {unit}.service could not be found.\n"
            active = _active(vm, unit)
            state = "active (running)" if active else "failed (Result: exit-code)"
            out.append(f"● {unit}.service\n     Loaded: loaded\n     Active: {state}\n")
            status = status or (0 if active else 3)
        return status, "".join(out), ""
    if verb in {"start", "restart", "reload", "try-restart"}:
        for unit in units:
            if not vm.knows_unit(unit):
                return 5, "", f"Failed to {verb} {unit}.service: Unit {unit}.service not found.\n"
            if not _active(vm, unit):
                return (
                    1,
                    "",
                    f"Job for {unit}.service failed because the control process exited with error code.\n"
                    f'See "systemctl status {unit}.service" and "journalctl -xeu {unit}.service" for details.\n',
                )
        return 0, "", ""
    return 1, "", f"systemctl: lab: '{verb}' is not simulated (is-active, status, start, restart)\n"


def _active(vm: _VM, unit: str) -> bool:
    return unit in ("sshd", "ssh") or unit_is_active(vm.spec, unit)


def _vm_svn(vm: _VM, argv: list[str]) -> ToolResult:
    if "svnserve" not in vm.spec.get("units", {}):
        return command_not_found(argv[0])
    if argv[1:2] == ["--version"]:
        return 0, "svn, version 1.14.2 (r1899510)\n", ""
    if argv[1:2] != ["info"]:
        return 1, "", "svn: lab: only 'svn info URL' is simulated\n"
    targets = [w for w in argv[2:] if not w.startswith("-")]
    if not targets:
        return (
            1,
            "",
            "svn: warning: W155007: '/root' is not a working copy\nsvn: E200009: Could not display info for all targets because some targets don't exist\n",
        )
    url = targets[0].rstrip("/")
    if url.startswith("svn://") and not unit_is_active(vm.spec, "svnserve"):
        host = urlsplit(url).hostname or "localhost"
        return (
            1,
            "",
            f"svn: E170013: Unable to connect to a repository at URL '{url}'\n"
            f"svn: E000111: Can't connect to host '{host}': Connection refused\n",
        )
    if not url.startswith(("svn://", "file://")):
        return 1, "", f"svn: E170000: Unrecognized URL scheme for '{url}'\n"
    name = posixpath.basename(urlsplit(url).path) or "repos"
    return (
        0,
        f"Path: {name}\nURL: {url}\nRelative URL: ^/\nRepository Root: {url}\n"
        "Repository UUID: 5e7d134a-54fb-0310-bd04-b611643e5c25\nRevision: 4711\nNode Kind: directory\n"
        "Last Changed Author: admin\nLast Changed Rev: 4711\n"
        "Last Changed Date: 2007-03-14 10:12:00 +0100 (Wed, 14 Mar 2007)\n\n",
        "",
    )


def _vm_rsync(vm: _VM, argv: list[str]) -> ToolResult:
    if argv[1:2] == ["--version"]:
        return (
            0,
            "rsync  version 3.2.7  protocol version 31\nCopyright (C) 1996-2022 by Andrew Tridgell, Wayne Davison, and others.\n",
            "",
        )
    return 1, "", "rsync: lab: only 'rsync --version' is simulated\n"


def _vm_uptime(vm: _VM, argv: list[str]) -> ToolResult:
    clock = time.strftime("%H:%M:%S", time.gmtime(vm.now))
    return 0, f" {clock} up 12 days,  3:04,  0 users,  load average: 0.08, 0.03, 0.01\n", ""


VM_TOOLS = {
    "true": _vm_true,
    "false": _vm_false,
    "echo": _vm_echo,
    "hostname": _vm_hostname,
    "cat": _vm_cat,
    "test": _vm_test,
    "[": _vm_test,
    "systemctl": _vm_systemctl,
    "svn": _vm_svn,
    "rsync": _vm_rsync,
    "uptime": _vm_uptime,
}


def is_vm(state: dict, name: str) -> bool:
    return name not in state.get("hosts", {}) and name in specs(state)


def dispatch(state: dict, vm: str, argv: list[str] | None, now: float, notes: list[str]) -> ToolResult:
    """Run one command line on a VM (read-only: a VM's tools never change the lab state)."""
    resolved = resolve_vm(state, vm)
    if resolved is None:
        return 255, "", f"lab: no host or VM named {vm}\n"
    vm, spec, _address = resolved  # a drill clone answers as its VM (a clone of its disk)
    if argv is None:
        return 2, "", "bash: -c: line 1: unexpected EOF while looking for matching quote\n"
    if not argv:
        return 0, "", ""
    word = argv[0]
    if "/" in word:
        directory, word = posixpath.split(posixpath.normpath(word))
        if directory not in _BIN_DIRS:
            return command_not_found(argv[0])
    tool = VM_TOOLS.get(word)
    if tool is None:
        return command_not_found(argv[0])
    notes.append("on the VM")
    return tool(_VM(vm, spec, now), [word, *argv[1:]])
