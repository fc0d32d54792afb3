"""The baseline of bench/workers.py: a Celery app whose one task does nothing but count itself.

    celery -A bench.noop_app worker -Q bench-noop -c 2   (SCN_BROKER_URL names the Redis broker)

It copies the broker and worker settings of scn_workflow.workers.celery_init_app (late acks,
requeue on worker loss, prefetch 1, ignored results, task events on), so the difference
between its rate and the notifications' rate is the work a notification does, not Celery's.
The task INCRs a Redis counter (on the broker's Redis) so the benchmark knows when all ran.
"""

from __future__ import annotations

import os

from celery import Celery

QUEUE = "bench-noop"
TASK = "bench.noop"
COUNTER = "bench:noop:done"


def make_app(broker_url: str) -> Celery:
    app = Celery("bench_noop", set_as_current=False)
    app.conf.update(
        broker_url=broker_url,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE,
        task_routes={TASK: {"queue": QUEUE}},
        broker_transport_options={"visibility_timeout": 3600, "socket_timeout": 5, "socket_connect_timeout": 2},
        broker_connection_timeout=2,
        broker_connection_retry_on_startup=True,
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
    )
    _client = []

    @app.task(name=TASK)
    def noop():
        if not _client:  # one connection per pool process, made on its first task
            import redis
            _client.append(redis.Redis.from_url(broker_url))
        _client[0].incr(COUNTER)

    return app


celery = make_app(os.environ.get("SCN_BROKER_URL") or "redis://127.0.0.1:6379/0")
