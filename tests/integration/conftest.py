"""Real services for the worker tests: a Redis server of our own, an SMTP server, a webhook
receiver, and real `celery -A worker worker` processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import need
from tests.processes import stop_process_group

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class RedisServer:
    """A redis-server process on a free port, which a test may stop and start again."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, 10, what="redis-server to answer")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None:
        need("Redis", "redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


class MailSink:
    """An aiosmtpd SMTP server on loopback that keeps every message it accepts."""

    def __init__(self):
        from aiosmtpd.controller import Controller
        self.messages = []
        self._lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                from email import message_from_bytes
                with sink._lock:
                    sink.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def received(self):
        with self._lock:
            return list(self.messages)


@pytest.fixture
def smtp_server():
    sink = MailSink()
    sink.controller.start()
    yield sink
    sink.controller.stop()


class WebhookReceiver:
    """An HTTP server recording every POST; `script` lists the statuses to answer, then 200.

    `delay` (seconds) makes it a slow receiver: each POST is recorded, then answered that much later.
    """

    def __init__(self):
        self.calls = []
        self.script: list[int] = []
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.script.pop(0) if receiver.script else 200
                receiver.calls.append({"path": self.path, "body": body,
                                       "headers": {k.lower(): v for k, v in self.headers.items()},
                                       "status": status})
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self, path=None):
        return [c for c in self.calls if c["status"] < 300 and (path is None or c["path"] == path)]


@pytest.fixture
def webhook_receiver():
    receiver = WebhookReceiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def worker_env(db_url: str, broker_url: str, smtp_url: str | None, instance: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCN_")}
    env.update(SCN_DATABASE_URL=db_url, SCN_BROKER_URL=broker_url, SCN_REDELIVER_AFTER_S="3",
               SCN_SWEEP_INTERVAL_S="0.5", SCN_RETRY_BASE_S="0.1", SCN_MAX_RETRIES="4",
               SCN_INSTANCE_PATH=str(instance), PYTHONPATH=str(ROOT))
    if smtp_url:
        env["SCN_SMTP_URL"] = smtp_url
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Worker:
    """A real `celery -A worker worker` process (with beat for the outbox sweep)."""

    def __init__(self, env: dict, log_path: Path, concurrency: int = 2, beat: bool = True):
        self.env, self.log_path, self.concurrency, self.beat = env, log_path, concurrency, beat
        self.process = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "celery"), "-A", "worker", "worker", *(["-B"] if self.beat else []),
                 "-Q", "checks,notifications,handover,webhooks", "-n", f"{self.log_path.stem}@%h",
                 "-c", str(self.concurrency), "--loglevel", "INFO", "-s", str(self.log_path.with_suffix(".beat")),
                 "--without-mingle", "--without-gossip"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: b"ready." in self.log_path.read_bytes() or self.process.poll() is not None, 60,
                 what="the celery worker to be ready")
        assert self.process.poll() is None, self.log_path.read_text()[-3000:]

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and its pool children."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        stop_process_group(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


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


def body_json(call) -> dict:
    return json.loads(call["body"])


class RabbitVhost:
    """A fresh virtual host on the machine's RabbitMQ, so a test sees only its own queues."""

    def __init__(self):
        self.name = f"scn-test-{os.getpid()}-{time.monotonic_ns() % 10**9}"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:5672/{self.name}"

    def _ctl(self, *args) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)

    def create(self) -> None:
        self._ctl("add_vhost", self.name)
        self._ctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")

    def delete(self) -> None:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.name], capture_output=True, timeout=60)


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
