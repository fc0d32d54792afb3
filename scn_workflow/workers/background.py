"""The web process's relay: commits hand their outbox ids to a thread that publishes them in
batches, so a request never waits on the broker (and a broker outage never slows a request)."""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time

from scn_workflow.services import Services, relay

log = logging.getLogger(__name__)
BATCH = 500
# How long the relay waits for more commits before it publishes: LINGER_S while the workers keep up,
# longer while events published lately wait for them (relay.in_flight: LINGER_S more for every
# IN_FLIGHT_PER_LINGER, up to MAX_LINGER_S), so that a backlog is sent in fewer, larger messages,
# which the workers handle at a lower cost per event, and drains. bench/lifecycle.py (2 CPUs, 32 clients) with a fixed wait:
# 10 ms gave 54 delivered transitions/s, 25 ms 94/s, 50 ms 114/s (commit-to-mail p99 at half that rate
# 44-58 ms, 143-158 ms and 263 ms).
LINGER_S = 0.025
IN_FLIGHT_PER_LINGER = 50
MAX_LINGER_S = 0.25
IN_FLIGHT_READ_EVERY_S = 1.0


class BackgroundRelay:
    def __init__(self, svc: Services, publisher):
        self.svc, self.publisher = svc, publisher
        self._ids: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = None
        self._lock = threading.Lock()
        self._pending = 0  # ids queued but not yet handled
        self._in_flight, self._in_flight_read_at = 0, float("-inf")  # relay.in_flight, as last read
        atexit.register(self.flush)  # a short-lived process (a CLI command) publishes before it exits

    def __call__(self, outbox_ids: list[str]) -> None:
        """After a commit: queue the ids; the thread publishes them (the sweep catches any left)."""
        with self._lock:
            self._pending += len(outbox_ids)
        for outbox_id in outbox_ids:
            self._ids.put(outbox_id)
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        # Started lazily, and again in a forked child (gunicorn workers), where threads do not survive.
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="scn-outbox-relay", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._ids.get()]
            # Linger a moment for the commits of other requests: one message then carries a
            # burst of events, and the worker handles them in one task.
            deadline = time.monotonic() + self._linger()
            while len(batch) < BATCH:
                try:
                    batch.append(self._ids.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            try:
                relay.publish(self.svc, self.publisher, batch)
            except Exception:  # noqa: BLE001 - the rows stay in the outbox; the sweep publishes them
                log.warning("outbox relay: a batch of %d was left to the sweep", len(batch), exc_info=True)
            finally:
                with self._lock:
                    self._pending -= len(batch)

    def _linger(self) -> float:
        now = time.monotonic()
        if now - self._in_flight_read_at >= IN_FLIGHT_READ_EVERY_S:  # a query a second, not one a batch
            try:
                self._in_flight = relay.in_flight(self.svc)
            except Exception:  # noqa: BLE001 - the database is away: publishing will fail too, and the sweep follows
                self._in_flight = 0
            self._in_flight_read_at = now
        return min(MAX_LINGER_S, LINGER_S * max(1.0, self._in_flight / IN_FLIGHT_PER_LINGER))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far was handled (for short-lived processes and tests)."""
        deadline = time.monotonic() + timeout
        while self._pending > 0 and time.monotonic() < deadline:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                return False
            time.sleep(0.01)
        return self._pending <= 0
