"""Fixtures of the real services the worker tests use: a Redis server of our own, an SMTP server,
a webhook receiver, real `celery -A worker worker` processes, and RabbitMQ. The services
themselves live in tests/harness.py, which the benchmarks share."""

from __future__ import annotations

import shutil
import socket

import pytest

from tests.conftest import need
from tests.harness import (BIN, ROOT, MailSink, RabbitVhost, RedisServer, WebhookReceiver, Worker,  # noqa: F401
                           body_json, free_port, wait_for, worker_env)


@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None:
        need("Redis", "redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp_server():
    sink = MailSink()
    sink.controller.start()
    yield sink
    sink.controller.stop()


@pytest.fixture
def webhook_receiver():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def start_worker(tmp_path):
    started = []

    def start(env: dict, concurrency: int = 2, beat: bool = True) -> Worker:
        worker = Worker(env, tmp_path / f"worker{len(started)}.log", concurrency, beat)
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def rabbitmq_vhost():
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError as exc:
        need("RabbitMQ", f"127.0.0.1:5672: {exc}")
    if shutil.which("rabbitmqctl") is None:
        need("RabbitMQ", "rabbitmqctl is not installed")
    vhost = RabbitVhost()
    vhost.create()
    yield vhost
    vhost.delete()


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_url(request):
    """The worker suite runs on each broker DESIGN.md allows: Redis and RabbitMQ."""
    if request.param == "redis":
        return request.getfixturevalue("redis_server").url
    return request.getfixturevalue("rabbitmq_vhost").url
