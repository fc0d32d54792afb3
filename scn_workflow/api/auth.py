"""Bearer tokens on requests, preconditions (If-Match), and a small rate limiter."""

from __future__ import annotations

import threading
import time
from collections import deque

from flask import g, request
from werkzeug.exceptions import HTTPException, PreconditionFailed, PreconditionRequired, Unauthorized

from scn_workflow.domain.model import Actor
from scn_workflow.services import tokens
from scn_workflow.web import svc


def current_actor() -> Actor:
    """The caller, from `Authorization: Bearer <token>`; 401 without a live token."""
    if "actor" in g:
        return g.actor
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send Authorization: Bearer <token>; get a token from POST /api/v1/tokens.")
    actor = tokens.resolve(svc(), token.strip())
    if actor is None:
        raise Unauthorized("The token is unknown, expired or revoked; get a new one from POST /api/v1/tokens.")
    g.actor = actor
    return actor


def etag(version: int) -> str:
    return f'"{version}"'


def required_version() -> int | None:
    """The version named by If-Match (428 without it, 412 when it names no version of ours).

    `*` matches whatever version is current, so it returns None (no check)."""
    header = request.headers.get("If-Match")
    if header is None:
        raise PreconditionRequired("Send If-Match with the ETag (the version) your change is based on.")
    value = header.strip()
    if value == "*":
        return None
    value = value.removeprefix("W/").strip('"')
    if not value.isdigit() or len(value) > 9:
        raise PreconditionFailed(f"If-Match {header!r} names no version of this nomination.")
    return int(value)


class TooManyRequests(HTTPException):
    code = 429
    description = "Too many attempts; wait a minute and try again."


class RateLimiter:
    """At most `limit` attempts per key in a sliding window (per process)."""

    def __init__(self, limit: int, window_s: float):
        self.limit, self.window_s = limit, window_s
        self._hits: dict[str, deque] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window_s:
                hits.popleft()
            if len(hits) >= self.limit:
                raise TooManyRequests()
            hits.append(now)
            if len(self._hits) > 10_000:  # forget idle keys
                for stale in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window_s]:
                    del self._hits[stale]
