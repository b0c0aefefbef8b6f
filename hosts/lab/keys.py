"""SSH keys of the lab: one persistent host key per lab host, one client key pair.

All Ed25519 in OpenSSH format (what ``ssh-keygen -t ed25519`` writes), which paramiko's
``PKey.from_path`` and OpenSSH both load. Generation happens under the store lock and
files are replaced atomically, so a server reading a key never sees half of one.

    keys/host_<name>       host key of lab host <name> (private, 0600)
    keys/id_drportal       the portal's client key (private, 0600) and .pub
    keys/authorized_keys   public keys the lab accepts (the client key, seeded once)
    keys/known_hosts       written by a running server: "[address]:port type base64"
    keys/host_<vm>         SSH host key of a VM's own SSH (hosts/lab/vm_services.py)
    keys/tls_cert.pem      the self-signed certificate of the VMs' HTTPS services, and tls_key.pem
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hosts.lab.store import LabStore


def keys_dir(lab_dir: str | os.PathLike[str]) -> Path:
    path = Path(lab_dir) / "keys"
    path.mkdir(parents=True, exist_ok=True)
    return path


def host_key_path(lab_dir: str | os.PathLike[str], host: str) -> Path:
    return keys_dir(lab_dir) / f"host_{host}"


def client_key_path(lab_dir: str | os.PathLike[str]) -> Path:
    return keys_dir(lab_dir) / "id_drportal"


def fingerprint_of(key: paramiko.PKey) -> str:
    """``ssh-keygen -lf`` format: SHA256 of the public key blob, base64 without padding."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode("ascii").rstrip("=")


def write_secret(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only, replacing it atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _write_private(path: Path, comment: str) -> None:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    write_secret(path, pem)
    pub_tmp = path.with_name(path.name + ".pub.tmp")
    pub_tmp.write_text(f"{public.decode('ascii')} {comment}\n", encoding="ascii")
    os.replace(pub_tmp, path.with_name(path.name + ".pub"))


def ensure_keys(lab_dir: str | os.PathLike[str]) -> Path:
    """Create the client key pair and authorized_keys if missing; return the private key path."""
    store = LabStore(lab_dir)
    path = client_key_path(lab_dir)
    authorized = keys_dir(lab_dir) / "authorized_keys"
    with store.locked():
        if not path.exists():
            _write_private(path, "drportal@lab")
        if not authorized.exists():
            authorized.write_text(
                path.with_name(path.name + ".pub").read_text(encoding="ascii"), encoding="ascii"
            )
    return path


def load_host_key(lab_dir: str | os.PathLike[str], host: str) -> paramiko.PKey:
    """The host's key, generated on first use."""
    path = host_key_path(lab_dir, host)
    if not path.exists():
        with LabStore(lab_dir).locked():
            if not path.exists():
                _write_private(path, f"root@{host}")
    return paramiko.Ed25519Key(filename=str(path))


def rekey_host(store: LabStore, host: str) -> str:
    """New host key for ``host``; bumps ``faults[host].key_generation`` so a running server
    loads it for new connections. Returns the new fingerprint."""
    with store.transaction() as state:
        if host not in state["hosts"]:
            raise KeyError(host)
        _write_private(host_key_path(store.lab_dir, host), f"root@{host}")
        faults = state["faults"].setdefault(host, {})
        faults["key_generation"] = int(faults.get("key_generation", 0)) + 1
    return fingerprint_of(load_host_key(store.lab_dir, host))


def authorized_keys(lab_dir: str | os.PathLike[str]) -> set[tuple[str, str]]:
    """(type, base64) pairs from keys/authorized_keys; options and comments ignored."""
    found: set[tuple[str, str]] = set()
    try:
        text = (keys_dir(lab_dir) / "authorized_keys").read_text(encoding="ascii")
    except FileNotFoundError:
        return found
    for line in text.splitlines():
        words = line.split()
        for index, word in enumerate(words[:-1]):
            if word.startswith(("ssh-", "ecdsa-", "sk-")):
                found.add((word, words[index + 1]))
                break
    return found


def fingerprints(lab_dir: str | os.PathLike[str]) -> dict[str, str]:
    """{host: "SHA256:..."} for every host of the lab state (keys generated if missing)."""
    state = LabStore(lab_dir).read()
    return {host: fingerprint_of(load_host_key(lab_dir, host)) for host in state["hosts"]}


def write_known_hosts(lab_dir: str | os.PathLike[str], port: int) -> Path:
    """An OpenSSH known_hosts for the lab as served on ``port`` (for `ssh -o UserKnownHostsFile`)."""
    state = LabStore(lab_dir).read()
    lines = []
    # The dom0s and arrays, then the VMs' own SSH (hosts/lab/vm_services.py).
    addresses = {host: info["address"] for host, info in state["hosts"].items()}
    for vm, spec in state.get("services", {}).items():
        addresses.setdefault(vm, spec["address"])
    for host, address in addresses.items():
        key = load_host_key(lab_dir, host)
        where = address if port == 22 else f"[{address}]:{port}"
        lines.append(f"{where} {key.get_name()} {key.get_base64()}\n")
    path = keys_dir(lab_dir) / "known_hosts"
    # A lab of several shards (server.py) has several writers: each its own temporary file.
    tmp = path.with_name(f"known_hosts.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text("".join(lines), encoding="ascii")
    os.replace(tmp, path)
    return path
