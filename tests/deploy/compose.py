"""Reading the deployment files as Docker Compose and people read them: docker-compose.yml
(YAML, with Compose's ${VARIABLE} interpolation), .env.example, the Dockerfile's CMD and
the README's "Deployment" section."""

from __future__ import annotations

import json
import re
import shlex
from importlib import resources
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
README = REPO / "README.md"
# The services that run drportal's own image (the others are postgres and redis).
IMAGE = "drportal:latest"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; $$ is a dollar.
_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingVariable(Exception):
    pass


def compose_schema() -> dict:
    """The Compose Specification's JSON schema, as check-jsonschema (pinned in
    requirements.lock) vendors it from compose-spec/compose-spec (Apache-2.0)."""
    schema = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    return json.loads(schema.read_text(encoding="utf-8"))


def load_compose(text: str | None = None) -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8") if text is None else text)


def variables(value) -> set[str]:
    """Every variable a Compose value (any nesting) interpolates."""
    if isinstance(value, dict):
        return set().union(*(variables(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(variables(v) for v in value)) if value else set()
    if isinstance(value, str):
        return {m.group("name") for m in _VARIABLE.finditer(value) if m.group("name")}
    return set()


def interpolate(value, env: dict[str, str]):
    """Compose's interpolation of a value (any nesting); a ${NAME:?error} that is unset or
    empty (${NAME?error}: unset) raises MissingVariable with Compose's message."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        name = match.group("name")
        if name is None:
            return "$"
        op, arg = match.group("op"), match.group("arg") or ""
        present = name in env
        empty = not env.get(name)
        if op in (":-", "-") and (not present or (op == ":-" and empty)):
            return arg
        if op in (":?", "?") and (not present or (op == ":?" and empty)):
            raise MissingVariable(f"required variable {name} is missing a value: {arg}")
        return env.get(name, "")

    return _VARIABLE.sub(one, value)


def read_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines of an env file (comments and blank lines skipped)."""
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"not KEY=VALUE: {line!r}"
            env[key.strip()] = value.strip()
    return env


def argv(command) -> list[str]:
    """A Compose command (string or list) as the argv it runs."""
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


def image_services(compose: dict) -> dict[str, dict]:
    return {name: svc for name, svc in compose["services"].items() if svc.get("image") == IMAGE}


def dockerfile_cmd() -> list[str]:
    lines = [line for line in DOCKERFILE.read_text(encoding="utf-8").splitlines() if line.startswith("CMD ")]
    assert len(lines) == 1, f"expected one CMD in the Dockerfile, found {len(lines)}"
    return json.loads(lines[0][len("CMD ") :])


def readme_deployment() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Deployment\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def readme_commands(section: str) -> dict[str, list[str]]:
    """{service: argv} from the section's table whose header is "| service | command |"."""
    lines = section.splitlines()
    header = next(i for i, line in enumerate(lines) if re.match(r"\|\s*service\s*\|\s*command\s*\|", line))
    commands = {}
    for line in lines[header + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        service, command = (re.fullmatch(r"`([^`]+)`", cell) for cell in cells[:2])
        assert service and command, f"a row of the services table without `service` and `command`: {line}"
        commands[service.group(1)] = shlex.split(command.group(1))
    return commands
