"""API bearer tokens: issued for a correct password, stored hashed, expiring, revocable.

Resolving a token is on every API request, so each process keeps what it resolved for
CACHE_TTL_S seconds (by the token's hash, never the token itself). Expiry is still checked on
every request against the token's own expiry time; a revocation drops the token from the
revoking process's cache at once, while other processes may accept it for up to CACHE_TTL_S
seconds more.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import weakref
from datetime import datetime, timedelta

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.domain.model import Actor, Role
from scn_workflow.services import Services, users

TOKEN_LIFETIME = timedelta(hours=12)
CACHE_TTL_S = 5.0
CACHE_MAX = 10_000  # tokens remembered per process; past that the oldest entries go first


class _Resolved:
    """Tokens a process resolved recently: hash -> (actor, token expiry, monotonic time to forget)."""

    def __init__(self, ttl_s: float, max_entries: int):
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self._entries: dict[str, tuple[Actor, datetime, float]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str, now: datetime) -> Actor | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        actor, expires_at, forget_at = entry
        if time.monotonic() >= forget_at or now >= expires_at:
            self._entries.pop(digest, None)
            return None
        return actor

    def put(self, digest: str, actor: Actor, expires_at: datetime) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                now = time.monotonic()
                for key in [k for k, (_, _, forget_at) in self._entries.items() if forget_at <= now] \
                        or list(self._entries)[: self.max_entries // 2]:
                    del self._entries[key]
            self._entries[digest] = (actor, expires_at, time.monotonic() + self.ttl_s)

    def drop(self, digest: str) -> None:
        self._entries.pop(digest, None)


_caches: "weakref.WeakKeyDictionary[Services, _Resolved]" = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def _cache(svc: Services) -> _Resolved:
    """One cache per Services (tests build many apps, each on its own database, in one process)."""
    cache = _caches.get(svc)
    if cache is None:
        with _caches_lock:
            cache = _caches.setdefault(svc, _Resolved(CACHE_TTL_S, CACHE_MAX))
    return cache


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue(svc: Services, username: str, password: str) -> tuple[str, object] | None:
    """A new token and its expiry for a correct username and password; None otherwise."""
    actor = users.authenticate(svc, username, password)
    if actor is None:
        return None
    token = secrets.token_urlsafe(32)
    now = svc.clock()
    with svc.uow() as uow:
        user_id = uow.session.scalar(sa.select(t.users.c.id).where(t.users.c.username == username))
        uow.session.execute(sa.insert(t.api_tokens).values(user_id=user_id, token_hash=_digest(token),
                                                           created_at=now, expires_at=now + TOKEN_LIFETIME))
        uow.commit()
    return token, now + TOKEN_LIFETIME


def resolve(svc: Services, token: str) -> Actor | None:
    """The actor a live token stands for, else None (see the module's note on caching)."""
    digest, now = _digest(token), svc.clock()
    cache = _cache(svc)
    actor = cache.get(digest, now)
    if actor is not None:
        return actor
    u, k = t.users.c, t.api_tokens.c
    with svc.uow(read_only=True) as uow:
        row = uow.session.execute(
            sa.select(u.username, u.role, u.member_state, k.expires_at).join(t.api_tokens, k.user_id == u.id).where(
                k.token_hash == digest, k.revoked_at.is_(None), k.expires_at > now,
                u.active.is_(True))).one_or_none()
    if row is None:
        return None  # not remembered: an unknown token costs a query each time
    actor = Actor(row.username, Role(row.role), row.member_state)
    cache.put(digest, actor, row.expires_at)
    return actor


def revoke(svc: Services, token: str) -> bool:
    digest = _digest(token)
    with svc.uow() as uow:
        done = uow.session.execute(sa.update(t.api_tokens).where(
            t.api_tokens.c.token_hash == digest, t.api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=svc.clock())).rowcount
        uow.commit()
    _cache(svc).drop(digest)
    return bool(done)
