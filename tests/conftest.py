from __future__ import annotations

import os
import random
import socket

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from hosts import reference
from hosts.permissions import ROLE_DR_ADMIN, ROLE_HELPDESK, ROLE_MOD, sync_roles

# Every lab the tests start (in this process or a child) checks its state store's change
# tracking against the full comparison on every command (hosts/lab/store.py).
os.environ.setdefault("DRPORTAL_LAB_VERIFY_TRACKING", "1")

ROLES = {"helpdesk": ROLE_HELPDESK, "mod": ROLE_MOD, "dradmin": ROLE_DR_ADMIN}


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory) -> None:
    """On SQLite (`pytest -m sqlite`, the demo's database) the test database is a file, not
    Django's in-memory default: the Celery workers and servers the tests start are other
    processes and must open the same database."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("sqlite") / "test_drportal.sqlite3")


@pytest.fixture
def reference_estate(db):
    """The thesis estate, loaded by the same code as the management command."""
    from hosts.services import estate_load_reference

    estate_load_reference()


@pytest.fixture
def users(db):
    """One user per role, named after it: helpdesk, mod, dradmin (the API, board and report
    tests log in as them). The roles are synced first: a transactional test before this
    one may have flushed the groups the migration made."""
    sync_roles(Group, Permission)
    User = get_user_model()
    made = {}
    for name, role in ROLES.items():
        user, _ = User.objects.get_or_create(username=name)
        user.groups.set([Group.objects.get(name=role)])
        made[name] = user
    return made


@pytest.fixture
def make_user(db):
    def make(role: str | None):
        User = get_user_model()
        user, _ = User.objects.get_or_create(username=f"user-{role or 'none'}")
        if role:
            user.groups.set([Group.objects.get(name=ROLES[role])])
        return user

    return make


@pytest.fixture
def client_as(client, make_user):
    def login(role: str | None):
        if role is None:
            return client
        client.force_login(make_user(role))
        return client

    return login


@pytest.fixture
def load_reference_command(db):
    def run(*args):
        call_command("load_reference_estate", "--no-lab-keys", *args)

    return run


# The lab's VM services listen on fixed ports; each test session takes a free /24 for
# them, so a demo lab or another test run on this machine cannot answer in their place.
_AVOID = {0, 1, 2, 3, 4, 255}  # the reference estate's own 127.0.1-4.x (4: drill clones)


def _octet_is_free(octet: int) -> bool:
    probes = []
    try:
        for index, vm in enumerate(reference.VMS, start=1):
            for entry in reference.vm_services(vm["name"])["ports"]:
                sock = socket.socket()
                probes.append(sock)
                sock.bind((f"127.0.{octet}.{index}", entry["port"]))
        return True
    except OSError:
        return False
    finally:
        for sock in probes:
            sock.close()


@pytest.fixture(scope="session")
def vm_addresses() -> dict[str, str]:
    """{VM: 127.0.N.i} on a /24 where every service port is free right now."""
    for octet in random.sample(sorted(set(range(20, 250)) - _AVOID), 40):
        if _octet_is_free(octet):
            return {vm["name"]: f"127.0.{octet}.{i}" for i, vm in enumerate(reference.VMS, start=1)}
    pytest.skip("no loopback /24 with the service ports free")


@pytest.fixture(scope="session")
def vm_drill_addresses(vm_addresses: dict[str, str]) -> dict[str, str]:
    """{VM: 127.0.N.i} for the VMs' drill clones, on another free /24 than ``vm_addresses``."""
    taken = {int(address.split(".")[2]) for address in vm_addresses.values()}
    for octet in random.sample(sorted(set(range(20, 250)) - _AVOID - taken), 40):
        if _octet_is_free(octet):
            return {vm["name"]: f"127.0.{octet}.{i}" for i, vm in enumerate(reference.VMS, start=1)}
    pytest.skip("no second loopback /24 with the service ports free for the drill clones")
