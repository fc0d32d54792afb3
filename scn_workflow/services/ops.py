"""What operators watch: queues, workers, task outcomes, failures, the outbox, waiting nominations,
and the verdict `ops status` and the alerts act on."""

from __future__ import annotations

import json
import statistics
import threading
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.domain.workflow import QUEUES
from scn_workflow.services import Services, outbox

WORKER_SILENT_AFTER_S = 20.0
BROKER_TIMEOUT_S = 1.0


@dataclass
class QueueReport:
    name: str
    depth: int | None
    oldest_age_s: float | None
    error: str | None = None


def _redis_queues(url: str, now_ts: float) -> list[QueueReport]:
    import redis
    client = redis.Redis.from_url(url, socket_timeout=BROKER_TIMEOUT_S, socket_connect_timeout=BROKER_TIMEOUT_S)
    try:
        out = []
        for name in QUEUES:
            depth = client.llen(name)
            oldest = None
            if depth:
                raw = client.lindex(name, -1)  # kombu LPUSHes and BRPOPs: the oldest is at the right
                try:
                    published = json.loads(raw)["headers"].get("published_at")
                    oldest = max(0.0, now_ts - float(published)) if published else None
                except (ValueError, KeyError, TypeError):
                    oldest = None
            out.append(QueueReport(name, depth, oldest))
        return out
    finally:
        client.close()


def _amqp_queues(url: str) -> list[QueueReport]:
    from kombu import Connection
    out = []
    with Connection(url, connect_timeout=BROKER_TIMEOUT_S) as connection:
        channel = connection.channel()
        for name in QUEUES:
            try:
                _, depth, _ = channel.queue_declare(queue=name, passive=True)
                out.append(QueueReport(name, depth, None, None))
            except Exception as exc:  # noqa: BLE001 - a queue no worker declared yet
                out.append(QueueReport(name, 0, None, f"not declared yet ({type(exc).__name__})"))
                channel = connection.channel()
    return out


def _with_deadline(fn, seconds: float):
    """Run fn in a thread; give up after `seconds` so a hanging broker never hangs the caller."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except Exception as exc:  # noqa: BLE001
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def queues(svc: Services) -> dict:
    """Depth and age of the oldest message of each queue, read from the broker (or the outbox, embedded)."""
    settings = svc.settings
    now = svc.clock()
    if not settings.broker_url:
        with svc.uow(read_only=True) as uow:
            o = t.outbox.c
            pending, oldest = uow.session.execute(sa.select(sa.func.count(), sa.func.min(o.created_at))
                                                  .where(o.completed_at.is_(None))).one()
        age = (now - oldest).total_seconds() if oldest else None
        return {"broker": "embedded", "reachable": True,
                "queues": [{"name": "embedded", "depth": pending, "oldest_age_s": age, "error": None}]}
    try:
        if settings.broker_url.startswith(("amqp", "pyamqp")):
            reports = _with_deadline(lambda: _amqp_queues(settings.broker_url), BROKER_TIMEOUT_S * 3)
        else:
            reports = _with_deadline(lambda: _redis_queues(settings.broker_url, now.timestamp()), BROKER_TIMEOUT_S * 3)
        reachable, error = True, None
    except Exception as exc:  # noqa: BLE001 - shown as such, never raised to the page
        reports = [QueueReport(name, None, None, f"broker unreachable: {exc}") for name in QUEUES]
        reachable, error = False, f"{type(exc).__name__}: {exc}"
    return {"broker": settings.broker_url.split("://")[0], "reachable": reachable, "error": error,
            "queues": [r.__dict__ for r in reports]}


def workers(svc: Services, celery=None) -> list[dict]:
    """Workers that sent a heartbeat, their queues, what runs now, when last heard from; plus a live
    ping (remote control, short timeout) when a Celery app is given."""
    now = svc.clock()
    with svc.uow(read_only=True) as uow:
        rows = uow.session.execute(sa.select(t.worker_heartbeats).order_by(t.worker_heartbeats.c.hostname)).all()
    answered = None
    if celery is not None and svc.settings.broker_url:
        try:
            replies = _with_deadline(lambda: celery.control.ping(timeout=BROKER_TIMEOUT_S), BROKER_TIMEOUT_S * 2.5)
            answered = {name for reply in replies or [] for name in reply}
        except Exception:  # noqa: BLE001
            answered = set()
    out = []
    for row in rows:
        silent = (now - row.last_seen).total_seconds()
        out.append({"hostname": row.hostname, "queues": row.queues, "running": row.running,
                    "last_seen": row.last_seen, "silent_s": round(silent, 1),
                    "online": silent <= WORKER_SILENT_AFTER_S,
                    "answers_ping": None if answered is None else row.hostname in answered})
    return out


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


_INSERT_RUN = sa.insert(t.task_runs)  # built once: a statement built per task costs more than it runs


def record_task_run(engine: sa.Engine, *, task: str, event_id: str | None, outcome: str, duration_ms: float,
                    finished_at, worker: str | None) -> None:
    """One task execution (succeeded, retried or failed), for the dashboard and /metrics: what Celery's
    workers record through their signals and the embedded worker records itself."""
    # On PostgreSQL one statement, committed by itself: no BEGIN and COMMIT round trips a task.
    with (engine.connect().execution_options(isolation_level="AUTOCOMMIT")
          if engine.dialect.name == "postgresql" else engine.begin()) as connection:
        connection.execute(_INSERT_RUN, {"task": task, "event_id": event_id, "outcome": outcome,
                                         "duration_ms": duration_ms, "finished_at": finished_at, "worker": worker})


def task_outcomes(svc: Services) -> dict:
    """Per task, over the last hour and day: succeeded, retried, failed; median and p95 duration (ms)."""
    now = svc.clock()
    windows = {"hour": now - timedelta(hours=1), "day": now - timedelta(days=1)}
    with svc.uow(read_only=True) as uow:
        rows = uow.session.execute(sa.select(t.task_runs.c.task, t.task_runs.c.outcome, t.task_runs.c.duration_ms,
                                             t.task_runs.c.finished_at)
                                   .where(t.task_runs.c.finished_at >= windows["day"])
                                   .order_by(t.task_runs.c.finished_at.desc()).limit(200_000)).all()
    out: dict = {}
    for window, since in windows.items():
        per_task: dict = {}
        for row in rows:
            if row.finished_at < since:
                continue
            entry = per_task.setdefault(row.task, {"succeeded": 0, "retried": 0, "failed": 0, "_d": []})
            entry[row.outcome] = entry.get(row.outcome, 0) + 1
            if row.outcome == "succeeded":
                entry["_d"].append(row.duration_ms)
        for entry in per_task.values():
            durations = sorted(entry.pop("_d"))
            entry["median_ms"] = round(statistics.median(durations), 1) if durations else None
            entry["p95_ms"] = round(_percentile(durations, 95), 1) if durations else None
        out[window] = per_task
    return out


def throughput(svc: Services, minutes: int = 60) -> list[dict]:
    """Tasks finished per minute over the last hour, and the queue depth samples beside them."""
    now = svc.clock()
    since = now - timedelta(minutes=minutes)
    with svc.uow(read_only=True) as uow:
        finished = uow.session.scalars(sa.select(t.task_runs.c.finished_at).where(t.task_runs.c.finished_at >= since)).all()
        samples = uow.session.execute(sa.select(t.queue_samples.c.taken_at, sa.func.sum(t.queue_samples.c.depth))
                                      .where(t.queue_samples.c.taken_at >= since)
                                      .group_by(t.queue_samples.c.taken_at)).all()
    buckets = [{"minute": i, "tasks": 0, "depth": None} for i in range(minutes)]
    for moment in finished:
        index = int((moment - since).total_seconds() // 60)
        if 0 <= index < minutes:
            buckets[index]["tasks"] += 1
    for taken_at, depth in samples:
        index = int((taken_at - since).total_seconds() // 60)
        if 0 <= index < minutes:
            buckets[index]["depth"] = max(buckets[index]["depth"] or 0, int(depth or 0))
    return buckets


def sample_queues(svc: Services) -> int:
    """Store one depth sample per queue (beat calls this every minute) for the charts."""
    report = queues(svc)
    now = svc.clock()
    rows = [{"taken_at": now, "queue": q["name"], "depth": q["depth"], "oldest_age_s": q["oldest_age_s"]}
            for q in report["queues"] if q["depth"] is not None]
    with svc.uow() as uow:
        if rows:
            uow.session.execute(sa.insert(t.queue_samples), rows)
        uow.session.execute(sa.delete(t.queue_samples).where(t.queue_samples.c.taken_at < now - timedelta(days=2)))
        uow.session.execute(sa.delete(t.task_runs).where(t.task_runs.c.finished_at < now - timedelta(days=8)))
        uow.commit()
    return len(rows)


def waiting(svc: Services) -> list[dict]:
    """Nominations waiting in submitted or reviewed longer than SCN_STUCK_AFTER_H hours."""
    now = svc.clock()
    limit = now - timedelta(hours=svc.settings.stuck_after_h)
    n = t.nominations.c
    with svc.uow(read_only=True) as uow:
        rows = uow.session.execute(sa.select(n.id, n.reference, n.city_name, n.member_state, n.state, n.updated_at)
                                   .where(n.state.in_(("submitted", "reviewed")), n.updated_at < limit)
                                   .order_by(n.updated_at).limit(200)).all()
    return [{"id": r.id, "reference": r.reference, "city_name": r.city_name, "member_state": r.member_state,
             "state": r.state, "waiting_h": round((now - r.updated_at).total_seconds() / 3600, 1)} for r in rows]


def by_state(svc: Services) -> dict[str, int]:
    from scn_workflow.services.nominations import count_by_state
    return count_by_state(svc)


@dataclass
class Status:
    problems: list[str] = field(default_factory=list)
    report: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def status(svc: Services, celery=None) -> Status:
    """Everything at a glance, and the list of what is wrong (empty when all is well)."""
    from scn_workflow.services import acknowledgements, failures
    settings = svc.settings
    queue_report = queues(svc)
    # No ping through a broker that just failed to answer: it would only wait out its own timeout.
    report = {"queues": queue_report, "workers": workers(svc, celery if queue_report["reachable"] else None),
              "outbox": outbox.backlog(svc),
              "failures": len(failures.list_failures(svc, "open")), "nominations": by_state(svc),
              "waiting": waiting(svc), "unacknowledged": acknowledgements.unacknowledged(svc)}
    problems = []
    if not report["queues"]["reachable"]:
        problems.append(f"broker unreachable: {report['queues'].get('error')}")
    for q in report["queues"]["queues"]:
        if q["oldest_age_s"] is not None and q["oldest_age_s"] > settings.queue_max_age_s:
            problems.append(f"queue {q['name']}: oldest message waits {q['oldest_age_s']:.0f} s "
                            f"(threshold {settings.queue_max_age_s:.0f} s)")
    if settings.broker_url and report["queues"]["reachable"]:
        served = {name for w in report["workers"] if w["online"] for name in w["queues"]}
        for name in QUEUES:
            if name not in served:
                problems.append(f"queue {name}: no worker online")
    if report["failures"]:
        problems.append(f"{report['failures']} failure(s) waiting for an operator")
    if report["outbox"]["oldest_unpublished_age_s"] > settings.outbox_max_age_s:
        problems.append(f"outbox: {report['outbox']['unpublished']} row(s) unpublished, the oldest for "
                        f"{report['outbox']['oldest_unpublished_age_s']:.0f} s")
    if report["unacknowledged"]:
        problems.append(f"{len(report['unacknowledged'])} nomination(s) handed over, not yet acknowledged by the "
                        f"lead agency after {settings.ack_after_days} days")
    return Status(problems, report)
