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


def _redis_of_this_process() -> None:
    """Under pytest-xdist (make test runs two test processes) each process takes its own
    Redis database: gw0 the one REDIS_URL names, gw1 the one before it, and so on. The
    Celery workers a test starts share their test process's database; with one database
    for both processes a worker would take the other process's tasks (for actions its test
    database does not hold) and a test's flush would drop the other's queue. Settings are
    loaded before this file (pytest-django), but everything reads REDIS_URL at use, and the
    processes the tests start are given it or inherit it from the environment."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return
    from django.conf import settings

    base, _, db = settings.REDIS_URL.rpartition("/")
    mine = int(db or 0) - int(worker[2:])
    if mine < 1:
        raise pytest.UsageError(
            f"REDIS_URL={settings.REDIS_URL}: no Redis database left for test process {worker}"
        )
    url = f"{base}/{mine}"
    settings.REDIS_URL = settings.CELERY_BROKER_URL = os.environ["REDIS_URL"] = url
    from drportal.celery import app

    app.conf.broker_url = url


_redis_of_this_process()


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
    # The roles first, as in ``users``: a transactional test that ran before this one in
    # this process (any order under pytest-xdist) flushed the groups the migration made.
    sync_roles(Group, Permission)

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


def _octets_of_this_process() -> list[int]:
    """The /24s this test process may take, in random order. Under pytest-xdist (make test
    runs two processes) each process has its own share: two of them probing at the same
    moment could both find one /24 free and start their labs' VM services on it."""
    octets = sorted(set(range(20, 250)) - _AVOID)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ...
    if worker.startswith("gw"):
        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        octets = [octet for octet in octets if octet % count == int(worker[2:]) % count]
    return random.sample(octets, min(40, len(octets)))


@pytest.fixture(scope="session")
def vm_addresses() -> dict[str, str]:
    """{VM: 127.0.N.i} on a /24 where every service port is free right now."""
    for octet in _octets_of_this_process():
        if _octet_is_free(octet):
            return {vm["name"]: f"127.0.{octet}.{i}" for i, vm in enumerate(reference.VMS, start=1)}
    pytest.skip("no loopback /24 with the service ports free")


@pytest.fixture(scope="session")
def vm_drill_addresses(vm_addresses: dict[str, str]) -> dict[str, str]:
    """{VM: 127.0.N.i} for the VMs' drill clones, on another free /24 than ``vm_addresses``."""
    taken = {int(address.split(".")[2]) for address in vm_addresses.values()}
    for octet in [octet for octet in _octets_of_this_process() if octet not in taken]:
        if _octet_is_free(octet):
            return {vm["name"]: f"127.0.{octet}.{i}" for i, vm in enumerate(reference.VMS, start=1)}
    pytest.skip("no second loopback /24 with the service ports free for the drill clones")
