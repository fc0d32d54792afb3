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
# How long the relay waits for more commits before it publishes. LINGER_S gathers the commits of
# requests running at the same moment into one message. Then, while earlier messages still wait in
# the broker for a worker (Redis: the publisher's `waiting`), the relay goes on gathering, checking
# every HOLD_POLL_S, up to MAX_LINGER_S in all: a message published now would only queue behind
# them, and one larger message later costs the workers less per event than several small ones. So
# the batches grow with the load by themselves and a backlog drains, while an idle service still
# publishes after LINGER_S. Without a `waiting` (RabbitMQ), the wait is OUTBOX_LINGER_S and grows with
# the events published lately and not yet complete instead (relay.in_flight: OUTBOX_LINGER_S more for
# every IN_FLIGHT_PER_LINGER, read at most every IN_FLIGHT_READ_EVERY_S), as measured in round 2.
# docs/performance.md has the measurements.
LINGER_S = 0.01
HOLD_POLL_S = 0.01
# The queues whose waiting messages make the relay hold: those every submission and every
# notified event go to. A handover or webhooks worker that is down (its queue only grows) must not
# hold back everything else by MAX_LINGER_S.
HOLD_QUEUES = ("checks", "notifications")
OUTBOX_LINGER_S = 0.025
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
            started = time.monotonic()
            deadline = started + self._linger()
            while len(batch) < BATCH:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if time.monotonic() - started + HOLD_POLL_S <= MAX_LINGER_S and self._messages_wait():
                        deadline = time.monotonic() + HOLD_POLL_S
                        continue
                    break
                try:
                    batch.append(self._ids.get(timeout=remaining))
                except queue.Empty:
                    pass
            try:
                relay.publish(self.svc, self.publisher, batch)
            except Exception:  # noqa: BLE001 - the rows stay in the outbox; the sweep publishes them
                log.warning("outbox relay: a batch of %d was left to the sweep", len(batch), exc_info=True)
            finally:
                with self._lock:
                    self._pending -= len(batch)

    def _messages_wait(self) -> bool:
        """Whether messages published earlier still wait in the broker for a worker."""
        waiting = getattr(self.publisher, "waiting", None)
        if waiting is None:
            return False
        try:
            return waiting(HOLD_QUEUES) > 0
        except Exception:  # noqa: BLE001 - the broker is away: publish now, and the failure is recorded
            return False

    def _linger(self) -> float:
        if getattr(self.publisher, "waiting", None) is not None:
            return LINGER_S  # the broker says when to wait longer (_messages_wait)
        now = time.monotonic()
        if now - self._in_flight_read_at >= IN_FLIGHT_READ_EVERY_S:  # a query a second, not one a batch
            try:
                self._in_flight = relay.in_flight(self.svc)
            except Exception:  # noqa: BLE001 - the database is away: publishing will fail too, and the sweep follows
                self._in_flight = 0
            self._in_flight_read_at = now
        return min(MAX_LINGER_S, OUTBOX_LINGER_S * max(1.0, self._in_flight / IN_FLIGHT_PER_LINGER))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far was handled (for short-lived processes and tests)."""
        deadline = time.monotonic() + timeout
        while self._pending > 0 and time.monotonic() < deadline:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                return False
            time.sleep(0.01)
        return self._pending <= 0
