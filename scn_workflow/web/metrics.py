"""/metrics in Prometheus format: figures read from the database on each scrape (transitions,
nominations, tasks, outbox, queues) and this process's HTTP requests.

With several gunicorn workers, set PROMETHEUS_MULTIPROC_DIR so the HTTP figures of all of them add up.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import sqlalchemy as sa
from flask import Blueprint, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from scn_workflow.current import svc
from scn_workflow.db import tables as t
from scn_workflow.domain.workflow import STATES, TRIGGER_OF_EVENT
from scn_workflow.services import ops, outbox

bp = Blueprint("metrics", __name__)
REGISTRY = CollectorRegistry(auto_describe=True)
HTTP_REQUESTS = Counter("scn_http_requests", "HTTP requests by endpoint, method and status",
                        ["endpoint", "method", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram("scn_http_request_duration_seconds", "HTTP request latency by endpoint",
                         ["endpoint"], registry=REGISTRY,
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


class DatabaseCollector:
    """Figures computed at scrape time, so every web process reports the same truth."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        with self.app.app_context():
            services = svc()
            with services.uow(read_only=True) as uow:
                s = uow.session
                transitions = CounterMetricFamily("scn_transitions", "Transitions fired, by trigger", labels=["trigger"])
                counts = dict(s.execute(sa.select(t.events.c.name, sa.func.count()).where(
                    t.events.c.name.in_(list(TRIGGER_OF_EVENT))).group_by(t.events.c.name)).all())
                for name, trigger in TRIGGER_OF_EVENT.items():
                    transitions.add_metric([trigger], counts.get(name, 0))
                yield transitions
                states = GaugeMetricFamily("scn_nominations", "Nominations by state", labels=["state"])
                by_state = dict(s.execute(sa.select(t.nominations.c.state, sa.func.count())
                                          .group_by(t.nominations.c.state)).all())
                for state in STATES:  # every state, 0 included: a series that vanishes breaks alerts and graphs
                    states.add_metric([state], by_state.get(state, 0))
                yield states
                tasks = CounterMetricFamily("scn_task_runs", "Task executions by task and outcome",
                                            labels=["task", "outcome"])
                durations = GaugeMetricFamily("scn_task_duration_ms_mean", "Mean task duration (ms), last hour",
                                              labels=["task"])
                for task, outcome, count in s.execute(sa.select(t.task_runs.c.task, t.task_runs.c.outcome,
                                                                sa.func.count()).group_by(t.task_runs.c.task,
                                                                                          t.task_runs.c.outcome)):
                    tasks.add_metric([task, outcome], count)
                since = services.clock() - timedelta(hours=1)
                for task, mean in s.execute(sa.select(t.task_runs.c.task, sa.func.avg(t.task_runs.c.duration_ms))
                                            .where(t.task_runs.c.finished_at >= since)
                                            .group_by(t.task_runs.c.task)):
                    durations.add_metric([task], float(mean))
                yield tasks
                yield durations
                failures = GaugeMetricFamily("scn_failures_open", "Failures waiting for an operator")
                failures.add_metric([], s.scalar(sa.select(sa.func.count()).select_from(t.failures)
                                                 .where(t.failures.c.status == "open")))
                yield failures
            backlog = outbox.backlog(services)
            unpublished = GaugeMetricFamily("scn_outbox_unpublished", "Outbox rows not yet published")
            unpublished.add_metric([], backlog["unpublished"])
            yield unpublished
            age = GaugeMetricFamily("scn_outbox_oldest_unpublished_age_seconds", "Age of the oldest unpublished row")
            age.add_metric([], backlog["oldest_unpublished_age_s"])
            yield age
            report = ops.queues(services)
            depth = GaugeMetricFamily("scn_queue_depth", "Messages waiting in each queue", labels=["queue"])
            oldest = GaugeMetricFamily("scn_queue_oldest_age_seconds", "Age of each queue's oldest message",
                                       labels=["queue"])
            for q in report["queues"]:
                if q["depth"] is not None:
                    depth.add_metric([q["name"]], q["depth"])
                if q["oldest_age_s"] is not None:
                    oldest.add_metric([q["name"]], q["oldest_age_s"])
            yield depth
            yield oldest


def install(app) -> None:
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(app))
    app.extensions["scn_metrics_registry"] = registry

    @app.before_request
    def _start_timer():
        g.request_started = time.perf_counter()

    @app.after_request
    def _count(response):
        started = g.pop("request_started", None)
        if started is not None and request.endpoint != "metrics.metrics":
            endpoint = request.endpoint or "unmatched"
            HTTP_REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
            HTTP_LATENCY.labels(endpoint).observe(time.perf_counter() - started)
        return response

    app.register_blueprint(bp)


@bp.get("/metrics")
def metrics():
    from flask import current_app
    body = generate_latest(current_app.extensions["scn_metrics_registry"])
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess
        shared = CollectorRegistry()
        multiprocess.MultiProcessCollector(shared)
        body += generate_latest(shared)
    else:
        body += generate_latest(REGISTRY)
    return Response(body, mimetype=CONTENT_TYPE_LATEST)
