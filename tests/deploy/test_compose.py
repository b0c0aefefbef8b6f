"""docker-compose.yml, checked without a Docker engine: against the Compose Specification's
JSON schema, against the README's commands and the Dockerfile, and for what production
needs (Redis never evicts, health checks, named volumes, scalable workers, the lab apart)."""

from __future__ import annotations

import copy
import re
import secrets

import jsonschema
import pytest
from jsonschema.validators import validator_for

from .compose import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    MissingVariable,
    argv,
    compose_schema,
    dockerfile_cmd,
    image_services,
    interpolate,
    load_compose,
    read_env_file,
    readme_commands,
    readme_deployment,
    variables,
)

LONG_RUNNING = {"db", "redis", "web", "worker", "beat", "lab", "lab-web", "lab-worker", "lab-beat"}
ONE_SHOT = {"migrate", "lab-setup"}
LAB = {"lab", "lab-setup", "lab-web", "lab-worker", "lab-beat"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


@pytest.fixture(scope="module")
def validator():
    schema = compose_schema()
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def filled_env() -> dict[str, str]:
    """.env.example with its empty secrets filled in, as an operator does."""
    env = read_env_file(ENV_EXAMPLE.read_text(encoding="utf-8"))
    # As .env.example says to make them.
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    env["POSTGRES_PASSWORD"] = secrets.token_hex(24)
    env["REDIS_PASSWORD"] = secrets.token_hex(24)
    return env


def test_the_compose_file_is_valid_under_the_compose_specification(compose, validator):
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_compose_file_is_still_valid_once_interpolated_with_the_example_env(compose, validator):
    errors = list(validator.iter_errors(interpolate(compose, filled_env())))
    assert not errors, errors[0].message


MUTATIONS = {
    "an unknown service key": lambda c: c["services"]["web"].update(restart_policy="always"),
    "ports that are not a list": lambda c: c["services"]["web"].update(ports=8000),
    "a depends_on condition Compose does not know": lambda c: c["services"]["worker"]["depends_on"][
        "db"
    ].update(condition="service_ready"),
    "a health check interval that is a list": lambda c: c["services"]["worker"]["healthcheck"].update(
        interval=["30s"]
    ),
    "a command that is a mapping": lambda c: c["services"]["beat"].update(command={"celery": "beat"}),
    "an unknown top-level key": lambda c: c.update(volume={"pgdata": None}),
}


@pytest.mark.parametrize("mutation", MUTATIONS, ids=list(MUTATIONS))
def test_a_broken_compose_file_fails_the_schema(compose, validator, mutation):
    broken = copy.deepcopy(compose)
    MUTATIONS[mutation](broken)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_the_example_env_lacks_only_the_secrets_the_operator_must_choose(compose):
    shipped = read_env_file(ENV_EXAMPLE.read_text(encoding="utf-8"))
    with pytest.raises(MissingVariable, match=r"SECRET_KEY|POSTGRES_PASSWORD|REDIS_PASSWORD"):
        interpolate(compose, shipped)
    interpolate(compose, filled_env())  # and with them, nothing else is missing


def test_every_variable_the_compose_file_reads_is_documented(compose):
    section = readme_deployment()
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    undocumented = sorted(name for name in variables(compose) if f"`{name}`" not in section)
    assert not undocumented, f"not in the README's Deployment section: {undocumented}"
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    required = {match.group(1) for match in re.finditer(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?", text)}
    assert required, "the compose file requires no variable at all?"
    missing = sorted(name for name in required if not re.search(rf"^{name}=", example, re.M))
    assert not missing, f"required, but not in .env.example: {missing}"


def test_the_images_commands_are_the_ones_the_readme_documents(compose):
    documented = readme_commands(readme_deployment())
    ours = {name: argv(svc["command"]) for name, svc in image_services(compose).items()}
    assert set(ours) == set(documented), "services of drportal's image and rows of the README's table differ"
    for name, command in ours.items():
        assert command == documented[name], (
            f"{name}: compose runs {command}, the README says {documented[name]}"
        )


def test_the_images_default_command_is_the_web_services(compose):
    assert dockerfile_cmd() == argv(compose["services"]["web"]["command"])


def test_the_lab_runs_the_same_web_worker_and_beat_as_production(compose):
    services = compose["services"]
    for role in ("web", "worker", "beat"):
        assert argv(services[f"lab-{role}"]["command"]) == argv(services[role]["command"])


def test_redis_runs_with_no_eviction_and_a_memory_limit(compose):
    command = argv(compose["services"]["redis"]["command"])
    assert command[0] == "redis-server"
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options["--maxmemory-policy"] == "noeviction"
    assert "--maxmemory" in options
    assert options["--appendonly"] == "yes"
    assert "--requirepass" in options


def test_every_long_running_service_has_a_health_check_and_restarts(compose):
    services = compose["services"]
    assert set(services) == LONG_RUNNING | ONE_SHOT, "a service was added or removed: sort it in here"
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no health check"
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, f"{name}: {check['test']}"
        assert services[name].get("restart") == "unless-stopped", f"{name} does not restart"
    for name in ONE_SHOT:
        assert services[name]["restart"] == "no", f"{name} runs once"


def test_the_beat_health_check_watches_the_schedule_beat_writes(compose):
    from drportal.healthcheck import BEAT_SCHEDULE

    for name in ("beat", "lab-beat"):
        command = argv(compose["services"][name]["command"])
        assert command[command.index("--schedule") + 1] == BEAT_SCHEDULE


def test_volumes_are_named_and_declared(compose):
    declared = set(compose["volumes"])
    used = set()
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            assert not source.startswith((".", "/", "~")), f"{name} mounts a host path: {volume}"
            assert source in declared, f"{name} uses the undeclared volume {source}"
            used.add(source)
    assert used == declared, f"declared but unused: {declared - used}"


def test_workers_can_be_scaled(compose):
    for name, svc in compose["services"].items():
        assert "container_name" not in svc, f"{name} has a fixed name: --scale would fail"
    for name in ("worker", "lab-worker"):
        svc = compose["services"][name]
        assert "ports" not in svc, f"{name} publishes ports: a second one would collide"
        assert "deploy" not in svc or "replicas" not in svc["deploy"], f"{name} fixes its replicas"


def test_web_worker_and_beat_wait_for_the_database_redis_and_migrations(compose):
    for name in ("web", "worker", "beat"):
        depends = compose["services"][name]["depends_on"]
        assert depends["db"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_the_lab_is_an_optional_profile_apart_from_production(compose):
    services = compose["services"]
    for name, svc in services.items():
        if name in LAB:
            assert svc.get("profiles") == ["lab"], f"{name} is not in the profile lab"
            assert "drportal_ssh_key" not in svc.get("secrets", []), f"{name} gets production's key"
            env = svc["environment"]
            assert env["DATABASE_URL"].startswith("sqlite:"), f"{name} uses production's database"
            assert env["REDIS_URL"].endswith("/1"), f"{name} uses production's Redis database"
        else:
            assert "profiles" not in svc, f"{name} would not start by default"
            assert not set(svc.get("depends_on", {})) & LAB, f"{name} depends on the lab"
            assert "network_mode" not in svc, f"{name} shares another container's network"
    # The lab serves its hosts on loopback: the UI and workers that talk to it share its network.
    for name in ("lab-web", "lab-worker"):
        assert services[name]["network_mode"] == "service:lab"


def test_production_runs_with_debug_off_and_the_ssh_key_as_a_secret(compose):
    for name in ("migrate", "web", "worker", "beat"):
        env = compose["services"][name]["environment"]
        assert env["DEBUG"] == "0", name
        assert env["DRPORTAL_SSH_KEY"] == "/run/secrets/drportal_ssh_key", name
    for name in ("web", "worker"):
        assert compose["services"][name]["secrets"] == ["drportal_ssh_key"], name
    assert compose["secrets"]["drportal_ssh_key"]["file"].startswith("${DRPORTAL_SSH_KEY_FILE")
