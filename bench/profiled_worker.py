"""scn-workflow's worker (worker.py) with cProfile in every pool process, for `bench/workers.py --profile`.

    BENCH_PROFILE_DIR=/tmp/x celery -A bench.profiled_worker worker -Q notifications -c 2

Each pool process profiles itself from its start (so Celery's own per-task work in the child
is included, not only the task body) and writes <dir>/<pid>.pstats after every 20 tasks and
when it shuts down. Nothing in scn_workflow is changed: this only wraps worker.py's app.
"""

from __future__ import annotations

import cProfile
import os

from celery import signals

from worker import celery  # noqa: F401 - the app celery -A looks for

_state: dict = {}


def _dump() -> None:
    profiler = _state.get("profiler")
    if profiler is None:
        return
    profiler.disable()
    profiler.dump_stats(os.path.join(os.environ["BENCH_PROFILE_DIR"], f"{os.getpid()}.pstats"))
    profiler.enable()


@signals.worker_process_init.connect
def _start(**_kwargs) -> None:
    _state["profiler"] = cProfile.Profile()
    _state["tasks"] = 0
    _state["profiler"].enable()


@signals.task_postrun.connect
def _after_task(**_kwargs) -> None:
    _state["tasks"] = _state.get("tasks", 0) + 1
    if _state["tasks"] % 20 == 0:
        _dump()


@signals.worker_process_shutdown.connect
def _stop(**_kwargs) -> None:
    _dump()
