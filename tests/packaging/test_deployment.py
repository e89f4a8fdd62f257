"""docker-compose.yaml is checked statically (no Docker engine here): it validates against the Compose
specification, and every service references an image or build, commands, config keys and files that exist.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from importlib import resources
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW_SERVICES = sorted(name for name in SERVICES if name.startswith("airflow-"))
LONG_RUNNING = sorted(name for name in SERVICES if name != "airflow-init")


def compose_schema() -> dict:
    schema = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(schema.read_text())


def compose_validator():
    import jsonschema

    schema = compose_schema()
    return jsonschema.validators.validator_for(schema)(schema)


def test_compose_file_validates_against_the_compose_specification():
    errors = sorted(compose_validator().iter_errors(COMPOSE), key=lambda e: list(e.path))
    assert [f"{list(e.path)}: {e.message}" for e in errors] == []


def test_the_distributed_topology_is_complete():
    assert {
        "postgres",
        "redis",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "airflow-init",
    } <= set(SERVICES)
    # Workers scale with --scale: no fixed container name or host port may pin them to one instance.
    worker = SERVICES["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def _queues(command: list[str]) -> tuple[str, ...]:
    return tuple(command[command.index("--queues") + 1].split(","))


def test_queues_and_broker_are_those_of_the_local_celery_stack():
    """`make up EXECUTOR=celery` (lab.celery_stack) and compose run the same topology: a Redis broker,
    results in PostgreSQL, the same default queue, and the training queue served by one worker only."""
    from feedback_loop.lab import celery_stack

    env = COMPOSE["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == celery_stack.DEFAULT_QUEUE
    assert env[celery_stack.ENV_TRAINING_QUEUE] == celery_stack.TRAINING_QUEUE
    workers = {name: s for name, s in SERVICES.items() if s.get("command", [])[:2] == ["celery", "worker"]}
    compose_queues = sorted(_queues(s["command"]) for s in workers.values())
    assert compose_queues == sorted(w.queues for w in celery_stack.WORKERS)
    serving_training = [n for n, s in workers.items() if celery_stack.TRAINING_QUEUE in _queues(s["command"])]
    assert serving_training == ["airflow-worker-training"]
    local = celery_stack.airflow_settings("redis://127.0.0.1:6379/0", "postgresql+psycopg://u@h/db")
    assert local["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql")
    assert local["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
    assert local[celery_stack.ENV_TRAINING_QUEUE] == env[celery_stack.ENV_TRAINING_QUEUE]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_an_image_or_a_build_that_exists(name):
    service = SERVICES[name]
    assert "image" in service or "build" in service
    if "build" in service:
        context = ROOT / service["build"]["context"]
        dockerfile = context / service["build"].get("dockerfile", "Dockerfile")
        assert dockerfile.is_file()


def test_dockerfile_builds_on_the_locked_airflow_version():
    lock = (ROOT / "uv.lock").read_text()
    locked = re.search(r'name = "apache-airflow"\nversion = "([^"]+)"', lock).group(1)
    base = re.search(r"^FROM apache/airflow:(\S+)", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    assert base.startswith(f"{locked}-python3.11")
    assert "--locked" in (ROOT / "Dockerfile").read_text()


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_every_long_running_service_has_a_healthcheck(name):
    assert SERVICES[name]["healthcheck"]["test"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_dependencies_and_bind_mounts_exist(name):
    service = SERVICES[name]
    for dependency in service.get("depends_on", {}):
        assert dependency in SERVICES, f"{name} depends on undefined service {dependency}"
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            assert (ROOT / source).exists(), f"{name} mounts missing {source}"
        else:
            assert source in COMPOSE["volumes"], f"{name} uses undeclared volume {source}"


def _airflow_subcommands() -> set[str]:
    from airflow.cli import cli_parser

    parser = cli_parser.get_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_commands_exist(name):
    command = SERVICES[name]["command"]
    if command[:2] == ["bash", "-c"]:
        steps = [shlex.split(step) for step in command[2].split("&&")]
    else:
        steps = [["airflow", *command]]  # the image's entrypoint prefixes `airflow`
    for step in steps:
        if step[0] == "airflow":
            assert step[1] in _airflow_subcommands(), f"{name}: airflow {step[1]} is not a command"
        elif step[0] == "feedback-loop":
            from feedback_loop import cli

            cli.build_parser().parse_args(step[1:])  # exits 2 on an unknown command
        else:
            pytest.fail(f"{name}: unexpected program {step[0]}")


def test_airflow_settings_in_the_environment_are_real_config_options():
    from airflow.configuration import conf

    conf.load_providers_configuration()
    known = {
        section: set(body.get("options", {})) for section, body in conf.configuration_description.items()
    }
    env = COMPOSE["x-airflow-common"]["environment"]
    for variable in env:
        match = re.fullmatch(r"AIRFLOW__([A-Z_]+?)__([A-Z_]+)", variable)
        if not match:
            continue
        section, option = match.group(1).lower(), match.group(2).lower()
        assert option in known.get(section, set()), f"{variable} is not an Airflow option"


def test_no_secret_values_in_the_compose_file():
    text = (ROOT / "docker-compose.yaml").read_text()
    for key in ("PASSWORD", "JWT_SECRET", "FERNET_KEY", "WEBHOOK_URL"):
        for line in text.splitlines():
            if key in line and ":" in line and "${" not in line and not line.strip().startswith("#"):
                raise AssertionError(f"literal secret in docker-compose.yaml: {line.strip()}")


def test_the_schema_check_catches_a_broken_file():
    import copy

    broken = copy.deepcopy(COMPOSE)
    broken["services"]["redis"]["restart_policy"] = "always"  # not a Compose key
    broken["services"]["postgres"]["depends_on"] = 42  # must be a list or a mapping
    messages = [e.message for e in compose_validator().iter_errors(broken)]
    assert any("restart_policy" in m for m in messages)
    assert any("42" in m for m in messages)
