"""docker-compose.yml cannot run here (no Docker engine), so it is checked against the code:
every command, module, queue and variable it uses exists."""

import re
from pathlib import Path

import click
import pytest
import yaml

from scn_workflow.cli import COMMANDS
from scn_workflow.domain.workflow import QUEUES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
APP_SERVICES = {name: s for name, s in COMPOSE["services"].items() if "build" in s}
CONFIG_SOURCE = (ROOT / "scn_workflow" / "config.py").read_text() + (ROOT / "scn_workflow" / "app.py").read_text()


def test_the_stack_has_its_parts():
    assert {"postgres", "redis", "migrate", "web", "beat"} <= set(COMPOSE["services"])
    assert "--appendonly" in COMPOSE["services"]["redis"]["command"]
    assert "noeviction" in COMPOSE["services"]["redis"]["command"]
    assert all("healthcheck" in COMPOSE["services"][s] for s in ("postgres", "redis", "web"))


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_every_command_exists(name):
    command = APP_SERVICES[name]["command"]
    program = command[0]
    if program == "scn-workflow":
        group = click.Group(commands={c.name: c for c in COMMANDS})
        ctx = click.Context(group)
        sub = group.get_command(ctx, command[1])
        assert sub is not None, f"scn-workflow has no command {command[1]!r}"
        if isinstance(sub, click.Group):
            assert sub.get_command(ctx, command[2]) is not None, f"no 'scn-workflow {command[1]} {command[2]}'"
    elif program == "gunicorn":
        module, attr = command[-1].split(":")
        assert re.search(rf"^{attr} = ", (ROOT / f"{module}.py").read_text(), re.M)
        bind_port = command[command.index("--bind") + 1].rsplit(":", 1)[1]
        assert any(p.split(":")[1] == bind_port for p in APP_SERVICES[name].get("ports", []))
    elif program == "celery" and command[3] == "flower":
        assert APP_SERVICES[name].get("profiles") == ["flower"], "Flower runs only behind its profile"
        assert "flower" in (ROOT / "pyproject.toml").read_text() and ".[flower]" in (ROOT / "Dockerfile").read_text()
    elif program == "celery":
        assert command[1:3] == ["-A", "worker"]
        assert re.search(r"^celery = ", (ROOT / "worker.py").read_text(), re.M)
        if "-Q" in command:
            queues = command[command.index("-Q") + 1].split(",")
            assert set(queues) <= set(QUEUES), f"unknown queue in {queues}"
    else:
        pytest.fail(f"unexpected program {program!r} in service {name}")


def test_workers_cover_every_queue():
    served = set()
    for service in APP_SERVICES.values():
        command = service["command"]
        if command[:4] == ["celery", "-A", "worker", "worker"]:
            served |= set(command[command.index("-Q") + 1].split(","))
    assert served == set(QUEUES)


def test_every_variable_is_read_by_the_code():
    env = APP_SERVICES["web"]["environment"]
    for variable in env:
        assert f'"{variable}"' in CONFIG_SOURCE, f"{variable} is set in docker-compose.yml but never read"
    assert env["SCN_ENV"] == "production"


def test_production_refuses_unsafe_settings(tmp_path, monkeypatch):
    """SCN_ENV=production with the defaults: the app refuses to start and says why."""
    from scn_workflow.app import create_app
    for name in ("SCN_SECRET_KEY", "SCN_DATABASE_URL", "SCN_BROKER_URL", "SCN_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SCN_ENV", "production")
    with pytest.raises(RuntimeError) as refused:
        create_app({"instance_path": str(tmp_path)})
    message = str(refused.value)
    assert "SCN_SECRET_KEY" in message and "SQLite" in message and "SCN_BROKER_URL" in message
    assert "SCN_BASE_URL" in message
    monkeypatch.setenv("SCN_BASE_URL", "https://ascn.example")
    monkeypatch.setenv("SCN_SECRET_KEY", "a-real-secret-of-enough-length")
    monkeypatch.setenv("SCN_DATABASE_URL", "postgresql://scn@db.invalid/scn")
    monkeypatch.setenv("SCN_BROKER_URL", "redis://redis.invalid:6379/0")
    assert create_app({"instance_path": str(tmp_path)}).extensions["scn"].settings.env == "production"
