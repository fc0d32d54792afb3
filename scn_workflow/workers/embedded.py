"""The in-process worker of embedded mode (no SCN_BROKER_URL): a thread that relays the outbox
and performs the reactions itself, with the same handlers, retries and failure records as Celery."""

from __future__ import annotations

import logging
import threading
import time

from scn_workflow.services import Services, relay
from scn_workflow.services.reactions import HANDLERS, backoff, give_up

log = logging.getLogger(__name__)


class EmbeddedWorker:
    def __init__(self, svc: Services):
        self.svc = svc
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._extra: list[tuple[str, str]] = []

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

    def wake(self, _outbox_ids=None) -> None:
        """Called after each commit: relay now rather than at the next sweep."""
        self._wake.set()

    def perform_later(self, queue: str, event_ids) -> None:
        """Queue reactions for the worker thread (an operator's retry): one event id or a list."""
        with self._lock:
            self._extra.extend((queue, e) for e in ([event_ids] if isinstance(event_ids, str) else event_ids))
        self.wake()

    def run_once(self) -> int:
        """Relay what is due and perform its reactions; returns how many reactions ran."""
        with self._lock:
            due, self._extra = list(self._extra), []
        relay.publish(self.svc, lambda queue, event_ids, **_: due.extend((queue, e) for e in event_ids))
        for queue, event_id in due:
            self.perform(queue, event_id)
        return len(due)

    def perform(self, queue: str, event_id: str) -> None:
        settings = self.svc.settings
        for attempt in range(settings.max_retries + 1):
            try:
                HANDLERS[queue](self.svc, event_id)
                return
            except Exception as exc:  # noqa: BLE001 - retried, then recorded as a failure
                if attempt == settings.max_retries:
                    log.warning("embedded worker: %s for %s failed for good: %s", queue, event_id, exc)
                    give_up(self.svc, queue, event_id, f"{type(exc).__name__}: {exc}", attempt + 1)
                    return
                if self._stop.wait(backoff(attempt, settings.retry_base_s, settings.retry_cap_s)):
                    return

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                while self.run_once():
                    pass
            except Exception:  # noqa: BLE001 - keep the worker alive; the next sweep tries again
                log.exception("embedded worker: relay failed")
            self._wake.wait(self.svc.settings.sweep_interval_s)
            self._wake.clear()
            time.sleep(0.01)  # let a burst of commits gather into one relay pass
