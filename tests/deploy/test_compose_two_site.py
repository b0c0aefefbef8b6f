"""docker-compose.two-site.yml and its env files (issue 14), checked without a Docker engine:
against the Compose Specification, against the settings the portal reads (each site's web,
worker and beat environment is loaded by drportal/settings.py in a subprocess), against each
other (the sites point at each other), and against the harness the replication tests use
(the same PostgreSQL settings as tests/twosite/pgpair.py)."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys

import pytest
from jsonschema.validators import validator_for

from tests.twosite.pgpair import PRIMARY_SETTINGS, SLOT

from .compose import REPO, MissingVariable, argv, compose_schema, interpolate, read_env_file, variables

TWO_SITE_FILE = REPO / "docker-compose.two-site.yml"
ENV_EXAMPLES = {"WSL": REPO / "two-site" / "wsl.env.example", "KA": REPO / "two-site" / "ka.env.example"}
APP = ("migrate", "web", "worker", "beat")
# Set per machine, not per replication design: the harness keeps them small for a shared CI box.
HOST_SPECIFIC = {"listen_addresses", "shared_buffers", "max_connections"}
SHARED_SECRETS = {"SECRET_KEY": secrets.token_urlsafe(50), "POSTGRES_PASSWORD": secrets.token_hex(24)}


@pytest.fixture(scope="module")
def compose() -> dict:
    import yaml

    return yaml.safe_load(TWO_SITE_FILE.read_text(encoding="utf-8"))


def shipped(site: str) -> dict[str, str]:
    return read_env_file(ENV_EXAMPLES[site].read_text(encoding="utf-8"))


def filled(site: str) -> dict[str, str]:
    """The site's env file as an operator fills it: the shared secrets, its own Redis's."""
    return {**shipped(site), **SHARED_SECRETS, "REDIS_PASSWORD": secrets.token_hex(24)}


def container_env(compose: dict, service: str, env: dict[str, str]) -> dict[str, str]:
    """What the container gets: the env file's lines, then the service's environment over them."""
    svc = interpolate(compose, env)["services"][service]
    return {**env, **{k: str(v) for k, v in svc["environment"].items()}}


def start_script(compose: dict, env: dict[str, str]) -> str:
    return interpolate(compose, env)["configs"]["db-start"]["content"]


def test_the_two_site_file_is_valid_under_the_compose_specification_for_both_sites(compose):
    schema = compose_schema()
    validator = validator_for(schema)(schema)
    for raw in (compose, *(interpolate(compose, filled(site)) for site in ENV_EXAMPLES)):
        errors = list(validator.iter_errors(raw))
        assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_each_site_runs_web_worker_beat_redis_and_its_own_postgresql(compose):
    assert set(compose["services"]) == {"db", "redis", *APP}
    assert compose["services"]["db"]["image"].startswith("postgres:15")
    for name in ("web", "worker", "beat"):
        depends = compose["services"][name]["depends_on"]
        assert depends["db"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_the_env_examples_lack_only_the_secrets_and_the_sites_point_at_each_other(compose):
    wsl, ka = shipped("WSL"), shipped("KA")
    assert set(wsl) == set(ka), "the two env files set different variables"
    for site, env in (("WSL", wsl), ("KA", ka)):
        with pytest.raises(MissingVariable, match=r"SECRET_KEY|POSTGRES_PASSWORD|REDIS_PASSWORD"):
            interpolate(compose, env)
        assert env["DRPORTAL_SITE"] == site
        assert env["DRPORTAL_ENV_FILE"] == f"two-site/{site.lower()}.env", "the env file must name itself"
    assert (wsl["DRPORTAL_PG_ROLE"], ka["DRPORTAL_PG_ROLE"]) == ("primary", "standby")
    assert (
        wsl["DRPORTAL_PEER_DB_HOST"] == ka["POSTGRES_BIND"]
        and ka["DRPORTAL_PEER_DB_HOST"] == wsl["POSTGRES_BIND"]
    )
    assert wsl["DRPORTAL_PEER_PORTAL_URL"] == ka["DRPORTAL_BASE_URL"]
    assert ka["DRPORTAL_PEER_PORTAL_URL"] == wsl["DRPORTAL_BASE_URL"]
    # Every variable the file reads is set in the examples or has a default in the file.
    text = TWO_SITE_FILE.read_text(encoding="utf-8")
    defaulted = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?-", text))
    unset = sorted(name for name in variables(compose) if name not in wsl and name not in defaulted)
    assert not unset, f"read by the compose file, in neither env file nor defaulted: {unset}"


def test_every_two_site_setting_is_in_the_runbook_and_the_containers_get_only_real_settings(compose):
    settings_py = (REPO / "drportal" / "settings.py").read_text(encoding="utf-8")
    two_site = settings_py[settings_py.index("# Two sites (issue 14") :]
    read = set(re.findall(r'"(DRPORTAL_[A-Z0-9_]+)"', two_site))
    assert {"DRPORTAL_SITE", "DRPORTAL_PEER_DATABASE_URL"} <= read
    runbook = (REPO / "docs" / "two-sites.md").read_text(encoding="utf-8")
    undocumented = sorted(name for name in read if f"`{name}`" not in runbook)
    assert not undocumented, f"not in docs/two-sites.md: {undocumented}"
    known = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', settings_py))
    for service in APP:
        given = set(compose["services"][service]["environment"])
        assert not given - known, f"{service} sets what drportal/settings.py never reads: {given - known}"


@pytest.mark.parametrize("site", list(ENV_EXAMPLES))
def test_each_sites_portal_environment_is_accepted_by_the_settings(compose, site):
    """drportal/settings.py loads each app service's environment as the container would get
    it (two sites need PostgreSQL and a peer; a wrong value is an ImproperlyConfigured)."""
    env = filled(site)
    peer = "KA" if site == "WSL" else "WSL"
    probe = (
        "import json, django; django.setup(); from django.conf import settings as s;"
        "print(json.dumps({'site': s.DRPORTAL_SITE, 'engine': s.DATABASES['default']['ENGINE'],"
        "'host': s.DATABASES['default']['HOST'], 'peer': s.DRPORTAL_PEER_DATABASE_URL,"
        "'portal': s.DRPORTAL_PEER_PORTAL_URL, 'cache': s.CACHES['default']['BACKEND'],"
        "'debug': s.DEBUG, 'csp': 'csp.middleware.CSPMiddleware' in s.MIDDLEWARE}))"
    )
    for service in APP:
        child_env = {
            "PATH": os.environ["PATH"],
            "DJANGO_SETTINGS_MODULE": "drportal.settings",
            "DRPORTAL_VAR_DIR": "/tmp/drportal-compose-check",
            **container_env(compose, service, env),
        }
        done = subprocess.run(
            [sys.executable, "-c", probe],
            cwd=REPO,
            env=child_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{site} {service}: {done.stderr.strip().splitlines()[-1:]}"
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        assert seen["site"] == site and seen["engine"] == "django.db.backends.postgresql"
        assert seen["host"] == "db", f"{site} {service} uses another site's database"
        assert f"@{shipped(peer)['POSTGRES_BIND']}:5432/drportal" in seen["peer"]
        assert seen["portal"] == shipped(peer)["DRPORTAL_BASE_URL"]
        assert seen["cache"].endswith("RedisCache"), "sessions must live in the site's Redis"
        assert seen["debug"] is False and seen["csp"] is True


def test_postgresql_runs_with_the_replication_settings_of_the_harness(compose):
    script = start_script(compose, filled("KA"))
    given = dict(re.findall(r"-c (\w+)=(\S+)", script))
    expected = {k: v.strip("'") for k, v in PRIMARY_SETTINGS.items() if k not in HOST_SPECIFIC}
    assert {k: v.strip("'") for k, v in given.items() if k in expected} == expected
    assert set(expected) <= set(given), f"missing: {set(expected) - set(given)}"
    # asynchronous: no synchronous standby named anywhere
    assert "synchronous_standby_names" not in script and "synchronous_commit" not in script


def test_an_empty_standby_is_made_by_a_base_backup_through_the_slot_and_the_script_is_valid_shell(compose):
    script = start_script(compose, filled("KA"))
    backup = next(line for line in script.splitlines() if "pg_basebackup" in line)
    words = argv(backup.replace("$peer", "").replace("$make_slot", "-C"))
    assert {"-R", "-c"} <= set(words) and words[words.index("-S") + 1] == SLOT
    assert words[words.index("-X") + 1] == "stream"
    assert '[ "$DRPORTAL_PG_ROLE" = standby ]' in script and '! -s "$PGDATA/PG_VERSION"' in script
    checked = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    hba = interpolate(compose, filled("KA"))["configs"]["db-hba"]["content"]
    assert re.search(r"^host\s+replication\s+drportal\s+\S+\s+scram-sha-256$", hba, re.M)
    assert "trust" not in "\n".join(line for line in hba.splitlines() if line.startswith("host"))


def test_migrations_run_only_where_postgresql_takes_writes(compose):
    command = argv(compose["services"]["migrate"]["command"])
    assert command[:2] == ["sh", "-c"]
    assert "pg_is_in_recovery()" in command[2] and "exec python manage.py migrate --noinput" in command[2]
