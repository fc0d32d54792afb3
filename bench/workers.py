"""Notification throughput of a real worker against a no-op Celery task, and commit-to-mail latency.

    .venv/bin/python bench/workers.py [--events 400] [--rate 20] [--seconds 10] [--concurrency 2]
                                      [--profile [auto|py-spy|cprofile]] [--py-spy PATH]

Everything runs on this machine and is started here: a redis-server of its own on a free port,
an aiosmtpd SMTP sink on loopback (it notes the arrival time of every message and its
X-SCN-Event-Id), and a temporary PostgreSQL database created through SCN_TEST_POSTGRES_URL
(default postgresql://postgres@127.0.0.1:5432/postgres), migrated, and dropped at the end.
Workers are real `celery -A ... worker -c 2` processes (no beat) with the environment the
integration tests give them (tests/integration/conftest.py: worker_env).

1. Drain. N notification events (alternately nomination.submitted and nomination.returned,
   two mails each: the member state's two submitters) are committed through the service layer
   with nothing published. One worker `-Q notifications -c 2` is started, 4 warm-up messages
   are drained, then all N messages are published at once through the outbox relay
   (restricted to the notifications queue) and the clock stops when the sink has accepted
   every mail. Baseline in the same run: a no-op task (bench/noop_app.py: same broker, same
   worker settings, one Redis INCR) drained by a `-c 2` worker on the same Redis, timed from
   the first publish until the last task ran. The figure is notifications/s : no-op/s
   (target >= 0.6). For both, the CPU time each group of processes spent per task (worker
   pool, worker main process, Redis, PostgreSQL backends, this process) is read from /proc:
   unlike the rates, it does not depend on what else the machine is doing.
2. Latency. One worker on every queue (checks, notifications, handover, webhooks; no beat),
   and this process as the web side (create_app with broker and SMTP set, publishing after
   commit). Transitions (submit, return_for_revision, round robin over a pool of
   nominations) are fired at --rate per second for --seconds, after about a second of
   warm-up; for every mail of those events the time from the commit (the relay's
   after-commit hook, called with the event ids as the transaction commits) to the sink's
   acceptance is taken; median and p99 are printed (target p99 < 200 ms), and also from the
   moment fire() returned. Submissions also cause the checks task and a checks.completed
   mail to the reviewers: real load on the worker, not counted in the latency. The offered
   load (task time the timed transitions caused per second, over -c) says whether the worker
   could keep up at all.

--profile drains once more under a profiler and prints where a notification's time goes:
py-spy (`pip install py-spy`; wall clock, sampling every pool process, including the time
spent waiting on PostgreSQL and SMTP) when found on PATH or given by --py-spy, else cProfile
in every pool process (bench/profiled_worker.py; it inflates Python-heavy code, so read its
shares, not its milliseconds). Figures go to bench/results/workers.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# bench/transitions.py is named like the `transitions` library the domain imports: keep this
# folder off sys.path, and put the project root on it (for tests.* and bench.*).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from scn_workflow.app import create_app  # noqa: E402
from scn_workflow.db import migrate  # noqa: E402
from scn_workflow.db import tables as t  # noqa: E402
from scn_workflow.domain.errors import StaleVersion  # noqa: E402
from scn_workflow.domain.model import Nomination  # noqa: E402
from scn_workflow.services import nominations, notifications, relay  # noqa: E402
from scn_workflow.workers import publisher  # noqa: E402
from tests.conftest import build_world, complete_draft  # noqa: E402
from tests.integration.conftest import BIN, RedisServer, Worker, free_port, wait_for, worker_env  # noqa: E402

from bench import noop_app  # noqa: E402
from bench.support import children, cpu_seconds, percentile, source_state  # noqa: E402

RESULTS = HERE / "results" / "workers.json"
PG_ADMIN_URL = os.environ.get("SCN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ALL_QUEUES = "checks,notifications,handover,webhooks"
WARMUP = 4
CONCURRENCY = 2  # -c of every worker started here (--concurrency)
EVENT_ID = re.compile(rb"^X-SCN-Event-Id:[ \t]*(\S+)", re.M | re.I)
SUCCEEDED = re.compile(r"Task (\S+)\[(\S+)\] succeeded in ([0-9.eE+-]+)s")


# --- the parts ------------------------------------------------------------------------------

class TimedSink:
    """aiosmtpd on loopback noting, per accepted message, perf_counter() and X-SCN-Event-Id.

    Unlike tests' MailSink it does not parse the message (a regex on the raw bytes), and it
    names itself (server_hostname) so it does no getfqdn() per connection: the sink should
    cost the machine as little as it can, since it shares the CPUs with the worker.
    """

    def __init__(self):
        from aiosmtpd.controller import Controller
        self.by_event: dict[str, list[tuple[float, str]]] = {}
        self.total = 0
        self.cond = threading.Condition()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                now = time.perf_counter()
                match = EVENT_ID.search(envelope.content)
                event_id = match.group(1).decode() if match else ""
                with sink.cond:
                    sink.by_event.setdefault(event_id, []).extend((now, r) for r in envelope.rcpt_tos)
                    sink.total += 1
                    sink.cond.notify_all()
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                     server_hostname="bench-sink.localdomain")

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def wait_for_mails(self, expected: dict[str, int], timeout: float) -> bool:
        """Wait until each event has at least its expected number of mails."""
        def complete():
            return all(len(self.by_event.get(e, ())) >= n for e, n in expected.items())
        with self.cond:
            return self.cond.wait_for(complete, timeout)

    def mails(self, event_id: str) -> list[tuple[float, str]]:
        with self.cond:
            return list(self.by_event.get(event_id, ()))


class BenchWorker(Worker):
    """tests' Worker (stop, kill, log), started with a chosen app and queues and without beat."""

    def __init__(self, env: dict, log_path: Path, app: str, queues: str, concurrency: int | None = None):
        super().__init__(env, log_path, concurrency or CONCURRENCY)
        self.app, self.queues = app, queues

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "celery"), "-A", self.app, "worker", "-Q", self.queues, "-c", str(self.concurrency),
                 "--loglevel", "INFO", "--without-mingle", "--without-gossip",
                 "--hostname", f"{self.log_path.stem}@%h"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: b"ready." in self.log_path.read_bytes() or self.process.poll() is not None, 60,
                 what=f"the {self.app} worker to be ready")
        if self.process.poll() is not None:
            raise SystemExit(f"the {self.app} worker did not start:\n{self.log()[-3000:]}")

    def task_runtimes(self, name: str) -> list[float]:
        """Seconds per task, as Celery logged them ("succeeded in ...s")."""
        return [float(m.group(3)) for m in SUCCEEDED.finditer(self.log()) if m.group(1) == name]


@contextmanager
def running(worker: BenchWorker):
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


@contextmanager
def temporary_database():
    name = f"scn_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        raise SystemExit(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {' '.join(str(exc.orig).split())}") \
            from None
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- figures --------------------------------------------------------------------------------

def distribution_ms(seconds: list[float]) -> dict:
    if not seconds:
        return {"count": 0}
    ms = [s * 1000 for s in seconds]
    return {"count": len(ms), "median_ms": round(statistics.median(ms), 2), "p90_ms": round(percentile(ms, 90), 2),
            "p99_ms": round(percentile(ms, 99), 2), "max_ms": round(max(ms), 2),
            "mean_ms": round(statistics.fmean(ms), 2)}


# --- the world ------------------------------------------------------------------------------

def prepare_world(svc):
    """tests' world (member states, users of every role); its cycle open now and without a limit.

    ID has two submitters (sub-id, sub-id2): each submitted or returned event is two mails.
    """
    world = build_world(svc)
    now = datetime.now(timezone.utc)
    with svc.engine.begin() as connection:
        connection.execute(sa.update(t.cycles).where(t.cycles.c.code == world.cycle).values(
            opens_at=now - timedelta(days=30), closes_at=now + timedelta(days=365), limit_per_state=1_000_000))
    return world


def new_pool(svc, world, size: int, tag: str) -> list[Nomination]:
    return [nominations.create(svc, world.submitter_id, complete_draft(f"{tag} {i:04d}", csco_email="csco@bench.example"))
            for i in range(size)]


def fire_next(svc, world, nomination: Nomination) -> Nomination:
    """submit a drafted nomination, return a submitted one (a retry if the checks worker raced us)."""
    trigger, actor, comment = (("submit", world.submitter_id, None) if nomination.state == "drafted"
                               else ("return_for_revision", world.reviewer_sg, "Please revise (bench)."))
    for attempt in range(5):
        try:
            return nominations.fire(svc, actor, nomination.id, trigger, None, comment=comment)
        except StaleVersion:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def expected_mails(svc, event_ids: list[str]) -> dict[str, int]:
    """How many mails each event should cause (notifications.recipients, as the worker decides)."""
    out = {}
    with svc.uow() as uow:
        rows = uow.session.execute(sa.select(t.events).where(t.events.c.event_id.in_(event_ids))).all()
        for event in rows:
            out[event.event_id] = len(notifications.recipients(uow, event, uow.session.get(Nomination,
                                                                                          event.nomination_id)))
    return out


def unpublished_events(svc, world, count: int, tag: str) -> list[str]:
    """`count` notified events (submitted, returned, ...) committed with nothing published."""
    collected: list[str] = []
    relay_publish = svc.after_commit
    try:
        svc.after_commit = None
        pool = new_pool(svc, world, max(1, min(50, count // 8)), tag)
        svc.after_commit = collected.extend  # note the committed event ids; publish nothing
        i = 0
        while len(collected) < count:
            k = i % len(pool)
            pool[k] = fire_next(svc, world, pool[k])
            i += 1
    finally:
        svc.after_commit = relay_publish
    return collected[:count]


# --- CPU accounting -------------------------------------------------------------------------

def postgres_backends(database: str) -> list[int]:
    """The server processes serving `database` ("postgres: 15/main: user database host(port) state")."""
    pids, needle = [], f" {database} ".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"postgres: ") and needle in cmdline:
                pids.append(int(entry.name))
    return pids


class CpuMeter:
    """CPU seconds (user + system) spent by groups of processes between start() and stop().

    Unlike rates, these do not depend on what else the machine is doing at the time.
    """

    def __init__(self, groups: dict):
        self.groups = groups  # name -> callable returning the pids now in the group
        self.before: dict[str, dict[int, float]] = {}

    def _sample(self) -> dict[str, dict[int, float]]:
        out = {}
        for name, pids in self.groups.items():
            out[name] = {pid: cpu for pid in set(pids()) if (cpu := cpu_seconds(pid)) is not None}
        return out

    def start(self) -> None:
        self.before = self._sample()

    def stop(self) -> dict[str, float]:
        after = self._sample()
        return {name: sum(cpu - self.before.get(name, {}).get(pid, 0.0) for pid, cpu in pids.items())
                for name, pids in after.items()}


def cpu_figures(cpu: dict[str, float], count: int, elapsed: float) -> dict:
    total = sum(cpu.values())
    return {"ms_per_task": {name: round(s / count * 1000, 3) for name, s in cpu.items()},
            "total_ms_per_task": round(total / count * 1000, 3),
            "machine_busy_share": round(total / (elapsed * (os.cpu_count() or 1)), 3)}


def meter_for(worker: "BenchWorker", redis_server: RedisServer, database: str | None) -> CpuMeter:
    groups = {"worker pool processes": lambda: children(worker.process.pid),
              "worker main process (consumer)": lambda: [worker.process.pid],
              "redis-server": lambda: [redis_server.process.pid],
              "this process (SMTP sink, publisher)": lambda: [os.getpid()]}
    if database:
        groups["postgres backends"] = lambda: postgres_backends(database)
    return CpuMeter(groups)


def print_cpu(cpu: dict, indent: str = "     ") -> None:
    parts = ", ".join(f"{name} {ms:.1f}" for name, ms in cpu["ms_per_task"].items())
    print(f"{indent}CPU per task {cpu['total_ms_per_task']:.1f} ms ({parts}); "
          f"machine busy {cpu['machine_busy_share']:.0%} of {os.cpu_count()} CPUs")


# --- 1. drain -------------------------------------------------------------------------------

def drain_noop(redis_server: RedisServer, env: dict, workdir: Path, n: int) -> dict:
    import redis
    client = redis.Redis.from_url(redis_server.url)
    app = noop_app.make_app(redis_server.url)
    client.delete(noop_app.COUNTER)

    def publish(count: int) -> None:
        for _ in range(count):
            app.send_task(noop_app.TASK, queue=noop_app.QUEUE, retry=False)

    def wait_count(target: int, timeout: float = 120) -> float:
        deadline = time.perf_counter() + timeout
        while int(client.get(noop_app.COUNTER) or 0) < target:
            if time.perf_counter() > deadline:
                raise SystemExit(f"no-op drain: only {client.get(noop_app.COUNTER)} of {target} ran")
            time.sleep(0.002)
        return time.perf_counter()

    worker = BenchWorker(env, workdir / "noop-worker.log", "bench.noop_app", noop_app.QUEUE)
    with running(worker):
        publish(WARMUP)
        wait_count(WARMUP)
        meter = meter_for(worker, redis_server, None)
        meter.start()
        start = time.perf_counter()
        publish(n)
        published = time.perf_counter()
        end = wait_count(WARMUP + n)
        cpu = meter.stop()
        left = client.llen(noop_app.QUEUE)
    app.close()
    client.close()
    elapsed = end - start
    return {"tasks": n, "publish_s": round(published - start, 4), "elapsed_s": round(elapsed, 4),
            "per_s": round(n / elapsed, 1), "left_in_queue": left,
            "task_runtime": distribution_ms(worker.task_runtimes(noop_app.TASK)[WARMUP:]),
            "cpu": cpu_figures(cpu, n, elapsed)}


def drain_notifications(svc, world, celery_app, sink: TimedSink, redis_server: RedisServer, database: str,
                        env: dict, workdir: Path, n: int, *, worker_app: str = "worker",
                        label: str = "notifications", spy: str | None = None) -> dict:
    event_ids = unpublished_events(svc, world, WARMUP + n, label)
    warm, timed = event_ids[:WARMUP], event_ids[WARMUP:]
    expected = expected_mails(svc, event_ids)
    publish = publisher(celery_app)

    def notifications_only(queue: str, event_id: str, **kwargs) -> None:
        if queue == "notifications":
            publish(queue, event_id, **kwargs)

    worker = BenchWorker(env, workdir / f"{label}-worker.log", worker_app, "notifications")
    spy_out, spy_process = workdir / f"{label}.pyspy.txt", None
    with running(worker), open(workdir / f"{label}.pyspy.log", "wb") as spy_log:
        if spy:
            spy_process = subprocess.Popen(
                [spy, "record", "--idle", "--subprocesses", "--nonblocking", "--rate", str(SPY_RATE),
                 "--format", "raw", "-o", str(spy_out), "-p", str(worker.process.pid)],
                stdout=subprocess.DEVNULL, stderr=spy_log)
            time.sleep(1.0)  # py-spy attaches to the processes
        relay.publish(svc, notifications_only, warm, limit=len(warm))
        if not sink.wait_for_mails({e: expected[e] for e in warm}, 60):
            raise SystemExit(f"warm-up mails did not arrive; worker log:\n{worker.log()[-3000:]}")
        timed_expected = {e: expected[e] for e in timed}
        meter = meter_for(worker, redis_server, database)
        meter.start()
        start = time.perf_counter()
        relay.publish(svc, notifications_only, timed, limit=len(timed))
        published = time.perf_counter()
        if not sink.wait_for_mails(timed_expected, 300):
            got = sum(min(len(sink.mails(e)), k) for e, k in timed_expected.items())
            raise SystemExit(f"only {got} of {sum(timed_expected.values())} mails arrived; worker log:\n"
                             f"{worker.log()[-3000:]}")
        end = max(at for e in timed for at, _ in sink.mails(e))
        cpu = meter.stop()
        # Every task also records its work: wait for that before stopping the worker.
        wait_for(lambda: _done_count(svc, timed) == len(timed), 60, interval=0.1,
                 what="every notification to be recorded done")
        if spy_process is not None:
            spy_process.send_signal(signal.SIGINT)
            spy_process.wait(60)
    duplicates = sum(len(sink.mails(e)) - k for e, k in timed_expected.items())
    mails = sum(timed_expected.values())
    elapsed = end - start
    figures = {"events": n, "mails": mails, "mails_per_event": round(mails / n, 2),
               "publish_s": round(published - start, 4), "elapsed_s": round(elapsed, 4),
               "per_s": round(n / elapsed, 1), "mails_per_s": round(mails / elapsed, 1),
               "duplicate_mails": duplicates,
               "task_runtime": distribution_ms(worker.task_runtimes("scn.notifications")[WARMUP:]),
               "cpu": cpu_figures(cpu, n, elapsed)}
    if spy:
        figures["py_spy_raw"] = str(spy_out) if spy_out.exists() else None
    return figures


def _done_count(svc, event_ids: list[str]) -> int:
    with svc.engine.connect() as connection:
        return connection.scalar(sa.select(sa.func.count()).select_from(t.effects).where(
            t.effects.c.event_id.in_(event_ids), t.effects.c.effect == "done:notifications"))


# --- 2. latency -----------------------------------------------------------------------------

def latency(svc, world, sink: TimedSink, env: dict, workdir: Path, rate: float, seconds: float) -> dict:
    total = max(1, round(rate * seconds))
    pool = new_pool(svc, world, max(10, math.ceil(2 * rate)), "Latency")  # each one touched every ~2 s
    relay_publish = svc.after_commit  # create_app's: relay.publish after commit
    commits: list[tuple[str, float]] = []

    def timed_relay(ids: list[str]) -> None:
        now = time.perf_counter()
        commits.extend((i, now) for i in ids)
        relay_publish(ids)

    fired: list[dict] = []

    def fire_at_rate(count: int, record: bool) -> tuple[float, float]:
        start = time.perf_counter()
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            k = len(fired) % len(pool)
            before = len(commits)
            pool[k] = fire_next(svc, world, pool[k])
            returned = time.perf_counter()
            for event_id, committed in commits[before:]:
                fired.append({"event_id": event_id, "committed": committed, "returned": returned,
                              "record": record})
        return start, time.perf_counter()

    worker = BenchWorker(env, workdir / "all-queues-worker.log", "worker", ALL_QUEUES)
    svc.after_commit = timed_relay
    try:
        with running(worker):
            warm_count = max(4, round(rate))  # about a second of warm-up, not counted
            fire_at_rate(warm_count, record=False)
            worker_busy_before = sum(worker.task_runtimes("scn.checks") + worker.task_runtimes("scn.notifications"))
            start, stop = fire_at_rate(total, record=True)
            expected = expected_mails(svc, [f["event_id"] for f in fired])
            if not sink.wait_for_mails(expected, 120):
                got = sum(min(len(sink.mails(e)), k) for e, k in expected.items())
                raise SystemExit(f"only {got} of {sum(expected.values())} mails arrived; worker log:\n"
                                 f"{worker.log()[-3000:]}")
            tracked = list(expected)
            wait_for(lambda: _done_count(svc, tracked) == len(tracked), 60, interval=0.1,
                     what="every notification to be recorded done")
            stranded = _stranded(svc, [n.id for n in pool])
            checks_runtimes = worker.task_runtimes("scn.checks")
            notify_runtimes = worker.task_runtimes("scn.notifications")
            # the work the timed transitions caused, over the time they took to fire: above 1, the
            # worker cannot keep up and messages wait in Redis, so latency grows with the run
            offered = (sum(checks_runtimes + notify_runtimes) - worker_busy_before) / (worker.concurrency
                                                                                        * (stop - start))
    finally:
        svc.after_commit = relay_publish
    from_commit, from_return, per_event_last = [], [], []
    recorded = [f for f in fired if f["record"]]
    for f in recorded:
        arrivals = [at for at, _ in sink.mails(f["event_id"])]
        from_commit += [at - f["committed"] for at in arrivals]
        from_return += [at - f["returned"] for at in arrivals]
        if arrivals:
            per_event_last.append(max(arrivals) - f["committed"])
    fire_s = [f["returned"] - f["committed"] for f in recorded]
    return {"rate_target_per_s": rate, "seconds": seconds, "transitions": len(recorded),
            "achieved_rate_per_s": round(len(recorded) / (stop - start), 2),
            "mails": len(from_commit), "commit_to_mail": distribution_ms(from_commit),
            "fire_return_to_mail": distribution_ms(from_return),
            "commit_to_last_mail_of_event": distribution_ms(per_event_last),
            "relay_publish_after_commit": distribution_ms(fire_s),
            "worker_concurrency": worker.concurrency,
            "offered_load": round(offered, 3),
            "outbox_rows_all_done_but_not_completed": stranded,
            "task_runtime_checks": distribution_ms(checks_runtimes),
            "task_runtime_notifications": distribution_ms(notify_runtimes),
            "worker_log": str(worker.log_path)}


def _stranded(svc, nomination_ids: list[int]) -> int:
    """Outbox rows of these nominations whose every queue recorded done:<queue>, yet completed_at is unset.

    relay.mark_done sets completed_at only when it sees every queue done; two queues finishing
    at the same moment (checks and notifications of one submission) each see only their own
    mark, so neither sets it. Only the sweep (beat, not run here) closes such rows later.
    """
    stranded = 0
    with svc.engine.connect() as connection:
        rows = connection.execute(sa.select(t.outbox.c.id, t.outbox.c.queues).where(
            t.outbox.c.nomination_id.in_(nomination_ids), t.outbox.c.completed_at.is_(None))).all()
        for outbox_id, queues in rows:
            done = set(connection.scalars(sa.select(t.effects.c.effect).where(
                t.effects.c.event_id == outbox_id, t.effects.c.effect.like("done:%"))))
            if queues and {f"done:{q}" for q in queues} <= done:
                stranded += 1
    return stranded


# --- profile --------------------------------------------------------------------------------

SPY_RATE = 200  # py-spy samples per second and thread

PROFILED = [  # cProfile: (label, module path fragment, function name)
    ("task body (tasks._react)", "workers/tasks.py", "_react"),
    ("notifications.notify_many", "services/notifications.py", "notify_many"),
    ("  choose_recipients()", "services/notifications.py", "choose_recipients"),
    ("  compose() (jinja, MIME by hand)", "services/notifications.py", "compose"),
    ("  mailer.send_recorded (SMTP)", "services/mailer.py", "send_recorded"),
    ("    smtplib.SMTP.__init__ (connect, banner)", "smtplib.py", "__init__"),
    ("    mailer._stage (MAIL, RCPT, DATA, message)", "services/mailer.py", "_stage"),
    ("  effects.record_effects", "services/effects.py", "record_effects"),
    ("  relay.mark_done_many", "services/relay.py", "mark_done_many"),
    ("  UnitOfWork.commit", "db/uow.py", "commit"),
    ("Celery signal handlers (Signal.send)", "celery/utils/dispatch/signal.py", "send"),
    ("all psycopg Cursor.execute (round trips)", "psycopg/cursor.py", "execute"),
    ("all psycopg Connection.commit", "psycopg/connection.py", "commit"),
    ("all pool checkouts (pre-ping)", "sqlalchemy/pool/base.py", "_checkout"),
]


def cprofile_report(folder: Path, tasks: int) -> dict:
    import pstats
    files = sorted(str(p) for p in folder.glob("*.pstats"))
    if not files:
        return {"error": "no profile was written"}
    stats = pstats.Stats(*files)
    rows = []
    for label, path, name in PROFILED:
        calls, cum = 0, 0.0
        for (filename, _line, func), (_cc, nc, _tt, ct, _callers) in stats.stats.items():
            if func == name and filename.replace("\\", "/").endswith(path):
                calls += nc
                cum += ct
        rows.append({"what": label, "calls_per_task": round(calls / tasks, 2),
                     "ms_per_task": round(cum / tasks * 1000, 3)})
    top = sorted(((tt, key) for key, (_cc, _nc, tt, _ct, _c) in stats.stats.items()), reverse=True)[:20]
    return {"tool": "cProfile", "note": "cProfile inflates Python-heavy code; read the shares, not the ms",
            "per_task": rows,
            "top_self_time": [{"function": f"{Path(k[0]).name}:{k[1]}:{k[2]}",
                               "ms_per_task": round(tt / tasks * 1000, 3)} for tt, k in top]}


SMTP_STEPS = (("getfqdn", "connect: getfqdn"), ("SMTP.__init__", "connect + banner"),
              ("SMTP.connect", "connect + banner"), ("SMTP.ehlo", "EHLO round trip"),
              ("_stage (", "MAIL, RCPT, DATA and the message (pipelined over the group's connections)"),
              ("SMTP.getreply", "the final '.' and its reply"), ("SMTP.quit", "QUIT round trip"),
              ("SMTP.close", "close"))


def _classify(frames: list[str]) -> tuple[str, str]:
    """(broad, detail) for one pool-process stack of py-spy (frames "function (file:line)", root first)."""
    joined = ";".join(frames)
    body_at = next((i for i, f in enumerate(frames) if f.startswith("_react (")), None)
    if body_at is None:
        if "Signal.send (" in joined:
            last = next((f for f in reversed(frames) if "scn_workflow/" in f), "")
            db = "waiting on PostgreSQL" if "psycopg/" in joined else "Python"
            return "Celery signal handlers (workers/signals.py: task_runs row)", f"{last.split(' (')[0]} [{db}]"
        if "trace_task" in joined or "fast_trace_task" in joined:
            return "Celery per-task work in the pool process", frames[-1].split(" (")[0]
        return "idle (waiting for a task)", ""
    body = frames[body_at:]
    inner = ";".join(body)
    if "services/mailer.py" in inner:
        for key, step in SMTP_STEPS:
            if key + " (" in inner:
                return "SMTP conversation", step
        return "SMTP conversation", "other"
    if "compose (scn_workflow/services/notifications.py" in inner:
        return "composing the mail (jinja, MIME by hand)", ""
    scn = [f for f in body if "scn_workflow/" in f]
    where = scn[-1].split(" (")[0] if scn else "?"
    if "sqlalchemy/" in inner or "psycopg/" in inner:
        if "do_ping" in inner:
            return "PostgreSQL: pool pre-ping (one per unit of work)", where
        if any(k in inner for k in ("Connection.wait (psycopg", "_execute_send", "_exec_command", "recv")):
            what = "commit (WAL flush)" if where == "commit" else where
            return "PostgreSQL: waiting for the server", what
        return "SQLAlchemy/psycopg Python", where
    return "other Python in the task", where


def spy_report(raw: Path, tasks: int) -> dict:
    import collections
    broad, detail = collections.Counter(), collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if len(frames) < 2 or not frames[1].startswith("process "):
            continue  # the worker's main process (consumer, heartbeat thread)
        b, d = _classify(frames[2:])
        broad[b] += int(count)
        detail[(b, d)] += int(count)
    busy = sum(v for k, v in broad.items() if not k.startswith("idle"))
    per_task = lambda samples: round(samples / SPY_RATE / tasks * 1000, 3)  # noqa: E731
    return {"tool": "py-spy (wall clock, --idle)", "busy_ms_per_task": per_task(busy),
            "broad": [{"what": k, "ms_per_task": per_task(v), "share": round(v / busy, 3)}
                      for k, v in broad.most_common() if not k.startswith("idle")],
            "detail": [{"what": f"{b}: {d}" if d else b, "ms_per_task": per_task(v), "share": round(v / busy, 3)}
                       for (b, d), v in detail.most_common(25) if not b.startswith("idle")]}


def profile(tool: str, spy_path: str | None, svc, world, celery_app, sink, redis_server, database: str,
            env: dict, workdir: Path, n: int) -> dict:
    if tool == "py-spy":
        figures = drain_notifications(svc, world, celery_app, sink, redis_server, database, env, workdir, n,
                                      label="spied", spy=spy_path)
        raw = figures.pop("py_spy_raw", None)
        if not raw:
            log = (workdir / "spied.pyspy.log").read_text(errors="replace")[-1000:]
            return {"figures": figures, "error": f"py-spy wrote nothing: {log}"}
        return {"figures": figures, **spy_report(Path(raw), WARMUP + n)}
    folder = workdir / "profiles"
    folder.mkdir(exist_ok=True)
    figures = drain_notifications(svc, world, celery_app, sink, redis_server, database,
                                  dict(env, BENCH_PROFILE_DIR=str(folder)), workdir, n,
                                  worker_app="bench.profiled_worker", label="profiled")
    return {"figures": figures, **cprofile_report(folder, WARMUP + n)}


def print_profile(prof: dict) -> None:
    if "error" in prof:
        print(f"   {prof['error']}")
        return
    if "broad" in prof:
        print(f"   pool-process wall time per notification (busy) {prof['busy_ms_per_task']:.1f} ms:")
        for row in prof["broad"]:
            print(f"     {row['share']:6.1%}  {row['ms_per_task']:7.2f} ms  {row['what']}")
        print("   in detail:")
        for row in prof["detail"][:18]:
            print(f"     {row['share']:6.1%}  {row['ms_per_task']:7.2f} ms  {row['what']}")
        return
    print(f"   ({prof['note']})")
    for row in prof["per_task"]:
        print(f"     {row['ms_per_task']:8.3f} ms/task  {row['calls_per_task']:6} calls  {row['what']}")


# --- main -----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=400, help="notification events (and no-op tasks) to drain")
    parser.add_argument("--rate", type=float, default=20.0, help="transitions per second in the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    parser.add_argument("--concurrency", type=int, default=2,
                        help="-c of every worker (default 2; the no-op and the notification workers alike)")
    parser.add_argument("--profile", nargs="?", const="auto", choices=("auto", "py-spy", "cprofile"),
                        help="also drain once more under a profiler: py-spy (if found) or cProfile")
    parser.add_argument("--py-spy", dest="py_spy", default=shutil.which("py-spy"),
                        help="the py-spy binary (default: py-spy on PATH)")
    args = parser.parse_args(argv)
    if args.events < 1 or args.rate <= 0 or args.seconds <= 0 or args.concurrency < 1:
        parser.error("--events, --rate, --seconds and --concurrency must be positive")
    global CONCURRENCY
    CONCURRENCY = args.concurrency
    tool = None
    if args.profile:
        tool = args.profile if args.profile != "auto" else ("py-spy" if args.py_spy else "cprofile")
        if tool == "py-spy" and not args.py_spy:
            parser.error("py-spy not found: pip install py-spy, or give --py-spy PATH")

    began = time.perf_counter()
    results: dict = {"benchmark": "workers", "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
                     "load_average_at_start": os.getloadavg(), "source": source_state(),
                     "options": {k: v for k, v in vars(args).items() if k != "py_spy"}}
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scn-bench-workers-")))
        redis_server = RedisServer(workdir)
        redis_server.start()
        stack.callback(redis_server.stop)
        sink = TimedSink()
        sink.controller.start()
        stack.callback(sink.controller.stop)
        db_url = stack.enter_context(temporary_database())
        database = sa.engine.make_url(db_url).database
        app = create_app({"database_url": db_url, "broker_url": redis_server.url, "smtp_url": sink.url,
                          "instance_path": str(workdir / "web")})
        svc = app.extensions["scn"]
        celery_app = app.extensions["celery"]
        stack.callback(svc.engine.dispose)
        stack.callback(celery_app.close)
        world = prepare_world(svc)
        env = worker_env(db_url, redis_server.url, sink.url, workdir / "worker")
        with svc.engine.connect() as connection:
            results["postgresql"] = ".".join(map(str, connection.dialect.server_version_info))
        results["redis"] = subprocess.run(["redis-server", "--version"], capture_output=True,
                                          text=True).stdout.split()[2].removeprefix("v=")
        print(f"load average {results['load_average_at_start'][0]:.2f} on {os.cpu_count()} CPUs; "
              f"code at {results['source']['head']}"
              + (f" + {results['source']['uncommitted_changes_in_scn_workflow']} uncommitted file(s)"
                 if results["source"]["uncommitted_changes_in_scn_workflow"] else ""))

        print(f"1. drain: {args.events} messages, one worker -c {CONCURRENCY} on its queue, {WARMUP} warm-up messages first")
        noop = drain_noop(redis_server, env, workdir, args.events)
        print(f"   no-op task (Redis INCR)      {noop['per_s']:7.1f} tasks/s   ({noop['elapsed_s']:.2f} s, "
              f"task body median {noop['task_runtime'].get('median_ms')} ms)")
        print_cpu(noop["cpu"])
        notes = drain_notifications(svc, world, celery_app, sink, redis_server, database, env, workdir, args.events)
        ratio = notes["per_s"] / noop["per_s"]
        print(f"   notifications                {notes['per_s']:7.1f} events/s  ({notes['elapsed_s']:.2f} s, "
              f"{notes['mails_per_s']:.1f} mails/s at {notes['mails_per_event']} mails/event, "
              f"task median {notes['task_runtime'].get('median_ms')} ms, p99 {notes['task_runtime'].get('p99_ms')} ms)")
        print_cpu(notes["cpu"])
        cpu_ratio = noop["cpu"]["total_ms_per_task"] / notes["cpu"]["total_ms_per_task"]
        print(f"   ratio notifications : no-op  {ratio:7.3f}   (target >= 0.6: {'met' if ratio >= 0.6 else 'NOT met'}); "
              f"by CPU cost per task {cpu_ratio:.3f} (less sensitive to a busy machine)")
        results["drain"] = {"noop": noop, "notifications": notes, "ratio": round(ratio, 4),
                            "ratio_by_cpu_cost": round(cpu_ratio, 4), "target_ratio": 0.6}

        print(f"2. latency: transitions at {args.rate:g}/s for {args.seconds:g} s, one worker -c {CONCURRENCY} "
              f"on all queues")
        lat = latency(svc, world, sink, env, workdir, args.rate, args.seconds)
        c, f = lat["commit_to_mail"], lat["fire_return_to_mail"]
        print(f"   {lat['transitions']} transitions (achieved {lat['achieved_rate_per_s']}/s), {lat['mails']} mails; "
              f"worker tasks: notifications median {lat['task_runtime_notifications'].get('median_ms')} ms, "
              f"checks median {lat['task_runtime_checks'].get('median_ms')} ms")
        print(f"   offered load on the worker {lat['offered_load']:.2f} (task time caused per second of firing / "
              f"-c {lat['worker_concurrency']}; above 1 the queue grows for the whole run)")
        print(f"   commit -> SMTP accepted      median {c['median_ms']:.1f} ms, p99 {c['p99_ms']:.1f} ms "
              f"(p90 {c['p90_ms']:.1f}, max {c['max_ms']:.1f}); target p99 < 200 ms: "
              f"{'met' if c['p99_ms'] < 200 else 'NOT met'}")
        print(f"   fire() returned -> accepted  median {f['median_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms "
              f"(fire() returns after the relay published: median "
              f"{lat['relay_publish_after_commit']['median_ms']} ms after the commit)")
        if lat["outbox_rows_all_done_but_not_completed"]:
            print(f"   note: {lat['outbox_rows_all_done_but_not_completed']} outbox row(s) had every queue done but "
                  f"no completed_at (mark_done race; only the sweep closes them)")
        results["latency"] = lat

        if tool:
            print(f"3. profile ({tool}): the drain once more, {args.events} notifications")
            prof = profile(tool, args.py_spy, svc, world, celery_app, sink, redis_server, database, env, workdir,
                           args.events)
            results["profile"] = prof
            print_profile(prof)

    results["wall_s"] = round(time.perf_counter() - began, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)} (whole run {results['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
