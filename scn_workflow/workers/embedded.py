"""The in-process worker of embedded mode (no SCN_BROKER_URL): a thread that sweeps the outbox and
performs each message itself, with the same handlers, retry policy and failure records as Celery."""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time

from celery.utils.time import get_exponential_backoff_interval

from scn_workflow.services import Services, attachments, digest, outbox, web_sessions
from scn_workflow.services.ops import record_task_run
from scn_workflow.services.reactions import HANDLERS, TASK_NAMES, give_up

log = logging.getLogger(__name__)


class EmbeddedWorker:
    def __init__(self, svc: Services):
        self.svc = svc
        self._messages: queue.SimpleQueue = queue.SimpleQueue()  # (queue, event id)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="scn-embedded-worker", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def publish(self, queue_name: str, event_id: str) -> None:
        """`svc.publish` in embedded mode: the message waits for the worker thread."""
        self._messages.put((queue_name, event_id))
        self._wake.set()

    def wake(self, _event_ids=None) -> None:
        """`svc.after_commit` in embedded mode: sweep now rather than at the next interval."""
        self._wake.set()

    def run_once(self) -> int:
        """Publish what the outbox holds due, then perform every message; returns how many ran."""
        outbox.publish(self.svc)
        ran = 0
        while True:
            try:
                queue_name, event_id = self._messages.get_nowait()
            except queue.Empty:
                return ran
            self.perform(queue_name, event_id)
            ran += 1

    def perform(self, queue_name: str, event_id: str) -> None:
        """One message, retried as Celery retries it (exponential backoff, full jitter), then given up."""
        settings = self.svc.settings
        for retries in range(settings.max_retries + 1):
            started = time.monotonic()
            try:
                HANDLERS[queue_name](self.svc, event_id)
                self._record(queue_name, event_id, "succeeded", started)
                return
            except Exception as exc:  # noqa: BLE001 - retried, then recorded as a failure
                last = retries == settings.max_retries
                self._record(queue_name, event_id, "failed" if last else "retried", started)
                if last:
                    log.warning("embedded worker: %s for %s failed for good: %s", queue_name, event_id, exc)
                    give_up(self.svc, queue_name, event_id, f"{type(exc).__name__}: {exc}", retries + 1)
                    return
                wait = get_exponential_backoff_interval(settings.retry_base_s, retries, settings.retry_cap_s, True)
                if self._stop.wait(wait):
                    return

    def _record(self, queue_name: str, event_id: str, outcome: str, started: float) -> None:
        """The run, as Celery's workers record theirs (workers/signals.py), so /ops counts it."""
        try:
            record_task_run(self.svc.engine, task=TASK_NAMES[queue_name], event_id=event_id, outcome=outcome,
                            duration_ms=(time.monotonic() - started) * 1000, finished_at=self.svc.clock(),
                            worker=f"embedded@{socket.gethostname()}")
        except Exception:  # noqa: BLE001 - bookkeeping must never fail the work
            log.exception("embedded worker: could not record the task run")

    def _run(self) -> None:
        # What beat schedules besides the outbox sweep: (every how many seconds, what, its name for the log).
        periodic = [(attachments.SWEEP_EVERY_S, attachments.sweep_orphans, "the sweep of stored files"),
                    (web_sessions.SWEEP_EVERY_S, web_sessions.sweep, "the sweep of web sessions"),
                    (digest.SEND_EVERY_S, digest.send_digests, "the daily digest")]
        last_run = [float("-inf")] * len(periodic)  # the first round already does what is due
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - keep the worker alive; the next sweep tries again
                log.exception("embedded worker: the sweep failed")
            for index, (every_s, job, name) in enumerate(periodic):
                if time.monotonic() - last_run[index] >= every_s:
                    last_run[index] = time.monotonic()
                    try:
                        job(self.svc)
                    except Exception:  # noqa: BLE001 - the next round tries again
                        log.exception("embedded worker: %s failed", name)
            self._wake.wait(self.svc.settings.sweep_interval_s)
