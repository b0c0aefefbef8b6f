"""The lab's tools behind Debian's OpenSSH server (openssh-server): proof that the SSH
layer, enrollment and discovery work with a real sshd, not only with the paramiko lab.

sshd authenticates with its own host key and authorized_keys, then runs
``python -m hosts.lab.forced`` as its ForceCommand, which answers SSH_ORIGINAL_COMMAND
from a lab directory and journals it with the note "via OpenSSH".
"""

from __future__ import annotations

import getpass
import io
import json
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command

from hosts import reference
from hosts.drivers.base import CommandResult
from hosts.drivers.ssh import SSHConnection, SSHTarget
from hosts.drivers.xen import XenDriver
from hosts.lab.journal import read_journal
from hosts.lab.store import LabStore
from hosts.models import VM, Host, Site
from tests.ssh.conftest import SSHD, _in_ci, keygen, run_sshd, ssh_keygen_fingerprint

from .conftest import make_lab_dir

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ForcedSshd:
    port: int
    lab_dir: Path
    key_path: Path  # the lab's client key, authorized by this sshd
    fingerprint: str  # of sshd's host key, as ssh-keygen prints it

    def target(self) -> SSHTarget:
        return SSHTarget(
            name="xenka01",
            address="127.0.0.1",
            port=self.port,
            user=_user(),
            key_path=str(self.key_path),
            fingerprint=self.fingerprint,
            connect_timeout=10.0,
            command_timeout=20.0,
        )

    def journal(self, since: int = 0) -> list[dict]:
        return read_journal(self.lab_dir, since_seq=since)

    def last_seq(self) -> int:
        entries = self.journal()
        return entries[-1]["seq"] if entries else 0


def _user() -> str:
    return getpass.getuser()


@pytest.fixture(scope="module")
def forced_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForcedSshd]:
    if not SSHD.exists():
        reason = f"{SSHD} not found: install the Debian package openssh-server"
        if _in_ci():
            pytest.fail(reason)
        pytest.skip(reason)

    workdir = tmp_path_factory.mktemp("forced-sshd")
    lab_dir = make_lab_dir(workdir / "lab")
    client_key = lab_dir / "keys" / "id_drportal"
    host_key = keygen(workdir / "ssh_host_ed25519_key", "ed25519")
    authorized = workdir / "authorized_keys"
    authorized.write_text(Path(f"{client_key}.pub").read_text())

    # sshd hands ForceCommand to the user's shell with -c; `python -m` from the repo root
    # imports `hosts` whatever the login environment is.
    forced = (
        f"cd {shlex.quote(str(REPO))} && exec {shlex.quote(sys.executable)} -m hosts.lab.forced"
        f" --lab-dir {shlex.quote(str(lab_dir))} --host xenka01"
    )
    extra = f"PermitUserEnvironment no\nDisableForwarding yes\nPermitTTY no\nForceCommand {forced}\n"
    with run_sshd(workdir, host_key, authorized, extra) as port:
        yield ForcedSshd(
            port=port,
            lab_dir=lab_dir,
            key_path=client_key,
            fingerprint=ssh_keygen_fingerprint(Path(f"{host_key}.pub")),
        )


@pytest.fixture
def fresh_lab(forced_sshd: ForcedSshd) -> ForcedSshd:
    """Every test starts from the reference estate (the journal keeps counting)."""
    make_lab_dir(forced_sshd.lab_dir)
    return forced_sshd


def test_enroll_host_and_discover_work_against_a_real_openssh_server(fresh_lab: ForcedSshd, db) -> None:
    for site in reference.SITES:
        Site.objects.create(**site)
    since = fresh_lab.last_seq()

    out = io.StringIO()
    call_command(
        "enroll_host",
        "xenka01",
        "--site",
        "KA",
        "--address",
        f"127.0.0.1:{fresh_lab.port}",
        "--user",
        _user(),
        "--key",
        str(fresh_lab.key_path),
        "--accept-fingerprint",
        fresh_lab.fingerprint,
        "--json",
        stdout=out,
        stderr=io.StringIO(),
    )
    enrolled = json.loads(out.getvalue())
    assert (enrolled["created"], enrolled["toolstack"], enrolled["ram_mb"]) == (True, "xl", 4096)
    host = Host.objects.get(name="xenka01")
    assert (host.host_key_fingerprint, host.ssh_port) == (fresh_lab.fingerprint, fresh_lab.port)

    out = io.StringIO()
    call_command("discover", "xenka01", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert [d["name"] for d in report["found"]] == ["Domain-0", "lws-xen01", "tomcat-xen01", "dasi-xen01"]
    assert report["created"] == ["lws-xen01", "tomcat-xen01", "dasi-xen01"]
    assert report["skipped"] == [] and report["warnings"] == []
    assert report["dom0_memory_mb"] == 256
    assert VM.objects.get(name="dasi-xen01").interfaces.count() == 2

    journal = fresh_lab.journal(since)
    assert [e["command"] for e in journal] == ["xl info", "xl info", "xl list", "xl list -l"]
    assert all(e["notes"] == ["via OpenSSH"] and e["host"] == "xenka01" for e in journal)


def test_the_xen_driver_starts_a_vm_through_a_real_openssh_server(fresh_lab: ForcedSshd) -> None:
    sent: list[CommandResult] = []
    since = fresh_lab.last_seq()

    with SSHConnection(fresh_lab.target(), on_result=sent.append) as conn:
        xen = XenDriver(conn, "xl", timeout=20)
        xen.destroy("lws-xen01")
        xen.create("/etc/xen/vm/lws-xen01", memory_mb=256)
        running = {d.name: d.memory_mb for d in xen.list_domains()}
        assert not xen.file_exists("/etc/xen/vm/a b; touch /tmp/drportal-pwned $(id) é")

    assert running["lws-xen01"] == 256
    domains = LabStore(fresh_lab.lab_dir).read()["hosts"]["xenka01"]["domains"]
    assert {d["name"]: d["memory_mb"] for d in domains}["lws-xen01"] == 256
    journal = fresh_lab.journal(since)
    assert [(e["command"], e["exit_status"]) for e in journal] == [(r.command, r.exit_status) for r in sent]
    assert [e["command"] for e in journal] == [
        "xl destroy lws-xen01",
        "xl create /etc/xen/vm/lws-xen01 memory=256",
        "xl list",
        "test -e '/etc/xen/vm/a b; touch /tmp/drportal-pwned $(id) é'",
    ]
    assert all("via OpenSSH" in e["notes"] for e in journal)
    assert not Path("/tmp/drportal-pwned").exists()
