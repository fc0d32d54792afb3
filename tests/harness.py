"""Real services for the integration tests and the benchmarks: free ports, a redis-server of our
own, an SMTP sink, a webhook receiver, a temporary PostgreSQL database, and `gunicorn` and
`celery` processes run from a project tree.

Nothing here imports scn_workflow: bench/ab.py runs the processes of another copy of the tree.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("SCN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
QUEUES = "checks,notifications,handover,webhooks"


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


def stop_process_group(process: subprocess.Popen | None, grace_s: float = 20) -> None:
    """SIGTERM a process started with start_new_session=True and its children; SIGKILL them if
    they have not exited after `grace_s`."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def children(pid: int) -> list[int]:
    """The direct children of a process (a gunicorn master's workers, a Celery worker's pool)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


# --- PostgreSQL -------------------------------------------------------------------------------

def create_database(prefix: str = "scn_test", admin_url: str = PG_ADMIN_URL) -> str:
    """A new empty database on the server of `admin_url`; its URL. Raises sqlalchemy's
    OperationalError when the server cannot be reached."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        return admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        admin.dispose()


def drop_database(url: str, admin_url: str = PG_ADMIN_URL) -> None:
    """Drop the database of `url`, closing its connections."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{sa.make_url(url).database}" WITH (FORCE)'))
    finally:
        admin.dispose()


# --- brokers ----------------------------------------------------------------------------------

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


# --- SMTP and HTTP receivers ------------------------------------------------------------------

class MailSink:
    """An aiosmtpd SMTP server on loopback that keeps every message it accepts and when it arrived.

    `messages[i]` arrived at `arrivals[i]` (time.time()). The server names itself, so it does not
    look up the machine's name for each connection.
    """

    def __init__(self):
        from aiosmtpd.controller import Controller
        self.messages = []
        self.arrivals: list[float] = []
        self._lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                now = time.time()
                message = message_from_bytes(envelope.content)
                with sink._lock:
                    sink.messages.append(message)
                    sink.arrivals.append(now)
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                     server_hostname="mail-sink.localdomain")

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def received(self):
        with self._lock:
            return list(self.messages)

    def received_since(self, index: int) -> list[tuple[float, object]]:
        """(arrival time, message) of every message from the `index`-th on."""
        with self._lock:
            return list(zip(self.arrivals[index:], self.messages[index:]))


class WebhookReceiver:
    """An HTTP server recording every POST; `script` lists the statuses to answer, then 200.

    `delay` (seconds) makes it a slow receiver: each POST is recorded, then answered that much later.
    `answer_headers` go with every answer (a `Location` makes it redirect). A GET is recorded too,
    with its method: a client that follows a redirect may change a POST into a GET.
    """

    def __init__(self):
        self.calls = []
        self.script: list[int] = []
        self.delay = 0.0
        self.answer_headers: dict[str, str] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.script.pop(0) if receiver.script else 200
                receiver.calls.append({"path": self.path, "body": body, "method": self.command,
                                       "headers": {k.lower(): v for k, v in self.headers.items()},
                                       "status": status})
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(status)
                for name, value in receiver.answer_headers.items():
                    self.send_header(name, value)
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self, path=None):
        return [c for c in self.calls if c["status"] < 300 and (path is None or c["path"] == path)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def body_json(call) -> dict:
    return json.loads(call["body"])


# --- the service's processes ------------------------------------------------------------------

def worker_env(db_url: str, broker_url: str, smtp_url: str | None, instance: Path, root: Path = ROOT,
               **extra) -> dict:
    """The environment of a web or worker process of the tree at `root`; `extra` sets more variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCN_")}
    env.update(SCN_DATABASE_URL=db_url, SCN_BROKER_URL=broker_url, SCN_REDELIVER_AFTER_S="3",
               SCN_SWEEP_INTERVAL_S="0.5", SCN_RETRY_BASE_S="1", SCN_MAX_RETRIES="4",
               SCN_INSTANCE_PATH=str(instance), PYTHONPATH=str(root),
               SCN_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8")  # the tests' webhook receivers
    if smtp_url:
        env["SCN_SMTP_URL"] = smtp_url
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Worker:
    """A real `celery -A worker worker` process on every queue (with beat for the outbox sweep)."""

    def __init__(self, env: dict, log_path: Path, concurrency: int = 2, beat: bool = True, root: Path = ROOT):
        self.env, self.log_path, self.concurrency, self.beat, self.root = env, log_path, concurrency, beat, root
        self.process = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "celery"), "-A", "worker", "worker", *(["-B"] if self.beat else []),
                 "-Q", QUEUES, "-n", f"{self.log_path.stem}@%h",
                 "-c", str(self.concurrency), "--loglevel", "INFO", "-s", str(self.log_path.with_suffix(".beat")),
                 "--without-mingle", "--without-gossip"],
                cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
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

    def pids(self) -> list[int]:
        return [self.process.pid, *children(self.process.pid)] if self.process else []


class Gunicorn:
    """`gunicorn -w N --worker-class gthread web:app` on a free port, run from the tree at `root`."""

    def __init__(self, env: dict, log_path: Path, workers: int = 2, threads: int = 8, root: Path = ROOT):
        self.env, self.log_path, self.workers, self.root = env, log_path, workers, root
        self.port = free_port()
        self.command = [str(BIN / "gunicorn"), "-w", str(workers), "--worker-class", "gthread", "--threads",
                        str(threads), "-b", f"127.0.0.1:{self.port}", "--timeout", "120", "--log-level", "warning",
                        "web:app"]
        self.process = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, cwd=self.root, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self.process.poll() is not None
                 or (self._answers() and len(self.worker_pids()) >= self.workers), 60, 0.2, what="gunicorn to answer")
        assert self.process.poll() is None, self.log_path.read_text()[-3000:]

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def worker_pids(self) -> list[int]:
        return children(self.process.pid) if self.process else []

    def pids(self) -> list[int]:
        return [self.process.pid, *self.worker_pids()] if self.process else []

    def stop(self) -> None:
        stop_process_group(self.process)
