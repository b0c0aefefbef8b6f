"""`manage.py check --deploy` under the production environment: the compose file's web
environment, interpolated with .env.example (secrets filled in), and a real key file in
place of the Docker secret. Each run is a fresh process, as in a container."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .compose import REPO, interpolate, load_compose
from .test_compose import filled_env


@pytest.fixture
def ssh_key(tmp_path):
    key = tmp_path / "drportal_ssh_key"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n(a test stands in for the key)\n", encoding="utf-8")
    key.chmod(0o600)
    return key


@pytest.fixture
def production_env(tmp_path, ssh_key) -> dict[str, str]:
    """What the web container's environment would be: .env (env_file) under the compose
    file's `environment`, with the key where the secret would be."""
    dotenv = filled_env()
    web = interpolate(load_compose()["services"]["web"], dotenv)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    env |= dotenv | {key: str(value) for key, value in web["environment"].items()}
    env["DRPORTAL_SSH_KEY"] = str(ssh_key)
    env["DRPORTAL_VAR_DIR"] = str(tmp_path / "var")
    assert env["DEBUG"] == "0"
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def import_settings(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import drportal.settings"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_deploy_is_clean_under_the_production_environment(production_env):
    result = manage(production_env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_fails_when_https_is_turned_off(production_env):
    result = manage(production_env | {"DRPORTAL_HTTPS": "0"}, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    for check in ("security.W008", "security.W012", "security.W016", "security.W004"):
        assert check in result.stderr, check


def test_check_deploy_warns_of_an_ssh_key_others_can_read(production_env, ssh_key):
    ssh_key.chmod(0o644)
    result = manage(production_env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "drportal.W002" in result.stderr and "readable by other users (mode 0644)" in result.stderr


def test_check_deploy_warns_of_a_missing_ssh_key(production_env, tmp_path):
    env = production_env | {"DRPORTAL_SSH_KEY": str(tmp_path / "nowhere")}
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "drportal.W001" in result.stderr and "No such file or directory" in result.stderr


def test_production_refuses_the_demo_secret_key(production_env):
    env = {k: v for k, v in production_env.items() if k != "SECRET_KEY"}
    result = import_settings(env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_a_trusted_origin_without_its_scheme_is_refused_by_name(production_env):
    result = import_settings(production_env | {"CSRF_TRUSTED_ORIGINS": "drportal.example.org"})
    assert result.returncode != 0
    assert (
        "CSRF_TRUSTED_ORIGINS: 'drportal.example.org' needs its scheme, e.g. https://drportal.example.org"
        in result.stderr
    )


def test_a_session_idle_time_shorter_than_an_event_stream_is_refused(production_env):
    result = import_settings(production_env | {"DRPORTAL_SESSION_IDLE_S": "240"})
    assert result.returncode != 0
    assert (
        "DRPORTAL_SESSION_IDLE_S=240 must exceed DRPORTAL_SSE_MAX_SECONDS=300 by more than" in result.stderr
    )
    assert "an open run board would be logged out between two streams" in result.stderr


def test_a_setting_that_is_not_a_number_is_refused_by_name(production_env):
    result = import_settings(production_env | {"DRPORTAL_LOGIN_FAILURE_LIMIT": "five"})
    assert result.returncode != 0
    assert "DRPORTAL_LOGIN_FAILURE_LIMIT='five': expected a whole number" in result.stderr


def test_the_secret_key_can_come_from_a_docker_secret_file(production_env, tmp_path):
    secret = tmp_path / "secret_key"
    secret.write_text("k" * 20 + "from-a-file-" + "0123456789abcdefghijklmnopqrstuv\n", encoding="utf-8")
    env = {k: v for k, v in production_env.items() if k != "SECRET_KEY"} | {"SECRET_KEY_FILE": str(secret)}
    result = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.SECRET_KEY)"],
        cwd=REPO,
        env=env | {"DJANGO_SETTINGS_MODULE": "drportal.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == secret.read_text(encoding="utf-8").strip()
