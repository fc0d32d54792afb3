"""At most `limit` attempts per key in a sliding window: sign-in (web/session.py) and token
requests (api/tokens.py), keyed by address and username."""

from __future__ import annotations

import threading
import time
from collections import deque

from flask import current_app
from werkzeug.exceptions import TooManyRequests

IDLE_KEYS_KEPT = 10_000  # past this many keys, the idle ones are forgotten


class RateLimiter:
    """Counts attempts per key in this process."""

    def __init__(self, limit: int, window_s: float):
        self.limit, self.window_s = limit, window_s
        self._hits: dict[str, deque] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> None:
        """Count one attempt; TooManyRequests (429) when the key has used up its window."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window_s:
                hits.popleft()
            if len(hits) >= self.limit:
                raise TooManyRequests("Too many attempts; wait a minute and try again.")
            hits.append(now)
            if len(self._hits) > IDLE_KEYS_KEPT:
                for stale in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window_s]:
                    del self._hits[stale]


def limiter(name: str, limit: int = 10, window_s: float = 60) -> RateLimiter:
    """The current app's limiter called `name`: one per app, so two apps in one process (tests,
    a reloader) keep their own counts."""
    key = f"scn_rate_limit_{name}"
    return current_app.extensions.get(key) or current_app.extensions.setdefault(key, RateLimiter(limit, window_s))
