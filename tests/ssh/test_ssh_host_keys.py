"""Host keys are pinned: fingerprints as OpenSSH prints them, checked before anything runs."""

from __future__ import annotations

import base64
from pathlib import Path

import paramiko
import pytest

from hosts.drivers.ssh import (
    HostKeyMismatch,
    HostKeyNotPinned,
    SSHConnection,
    SSHTarget,
    fetch_host_key,
    fingerprint,
)


def public_key(pub: Path) -> paramiko.PKey:
    key_type, blob = pub.read_text().split()[:2]
    return paramiko.PKey.from_type_string(key_type, base64.b64decode(blob))


def test_fingerprint_matches_ssh_keygen_for_the_host_key(sshd) -> None:
    assert fingerprint(public_key(sshd.host_key_pub)) == sshd.fingerprint


@pytest.mark.parametrize("key_type", ("ed25519", "ecdsa", "rsa"))
def test_fingerprint_matches_ssh_keygen_for_each_key_type(sshd, key_type: str) -> None:
    private = paramiko.PKey.from_path(sshd.client_keys[key_type])
    expected = sshd.keygen_fingerprint(Path(f"{sshd.client_keys[key_type]}.pub"))

    assert fingerprint(private) == expected
    assert "=" not in expected


def test_fetch_host_key_reads_the_key_ssh_keygen_shows(sshd) -> None:
    info = fetch_host_key(sshd.address, sshd.port, timeout=5.0)

    assert info.key_type == "ssh-ed25519"
    assert info.fingerprint == sshd.fingerprint


def test_it_refuses_a_changed_host_key_before_anything_runs(sshd, tmp_path: Path) -> None:
    pinned = sshd.keygen_fingerprint(Path(f"{sshd.stranger_key}.pub"))
    marker = tmp_path / "ran"
    conn = SSHConnection(sshd.target(fingerprint=pinned))

    with pytest.raises(HostKeyMismatch) as caught:
        conn.run(["touch", str(marker)])

    assert str(caught.value) == f"host key mismatch for xenka01: expected {pinned}, got {sshd.fingerprint}"
    assert not marker.exists()
    assert not conn.is_connected


def test_it_refuses_an_unpinned_host_without_touching_the_network(unused_key: Path, unused_port: int) -> None:
    # Nothing listens on this port: had we connected, we would see SSHConnectError instead.
    target = SSHTarget(
        name="xenka09", address="127.0.0.1", port=unused_port, user="root", key_path=str(unused_key)
    )

    with pytest.raises(HostKeyNotPinned, match="host key for xenka09 is not pinned"):
        SSHConnection(target).run(["true"])


def test_a_pin_not_in_openssh_format_is_refused_at_once(unused_key: Path) -> None:
    with pytest.raises(ValueError, match="SHA256:"):
        SSHTarget(name="x", address="127.0.0.1", user="root", key_path=str(unused_key), fingerprint="ab:cd")
