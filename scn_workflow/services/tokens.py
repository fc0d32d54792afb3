"""API bearer tokens: issued for a correct password, stored hashed, expiring, revocable.

Every request resolves its token with one indexed query that joins the user, and nothing is
cached: a revocation, a deactivation or a role change holds for the very next request in every
process (a per-process cache would let other processes accept a revoked token until it expired;
the query costs well under a millisecond on PostgreSQL).
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.domain.model import Actor
from scn_workflow.services import Services, users

TOKEN_LIFETIME = timedelta(hours=12)


def issue(svc: Services, username: str, password: str) -> tuple[str, object] | None:
    """A new token and its expiry for a correct username and password; None otherwise. A temporary
    password gets no token (PasswordChangeRequired): it is replaced on the web first."""
    actor = users.authenticate(svc, username, password)
    if actor is None:
        return None
    users.refuse_temporary_password(svc, username)
    token = secrets.token_urlsafe(32)
    now = svc.clock()
    with svc.uow() as uow:
        user_id = uow.session.scalar(sa.select(t.users.c.id).where(t.users.c.username == username))
        uow.session.execute(sa.insert(t.api_tokens).values(user_id=user_id, token_hash=users.secret_digest(token),
                                                           created_at=now, expires_at=now + TOKEN_LIFETIME))
        uow.commit()
    return token, now + TOKEN_LIFETIME


def resolve(svc: Services, token: str) -> Actor | None:
    """The active user a live (unexpired, unrevoked) token stands for, else None."""
    k = t.api_tokens.c
    return users.holder(svc, k.token_hash, token, k.revoked_at.is_(None), k.expires_at > svc.clock())


def revoke(svc: Services, token: str) -> bool:
    """Revoke one token (DELETE /api/v1/tokens/current); False when it was not live."""
    with svc.uow() as uow:
        done = uow.session.execute(sa.update(t.api_tokens).where(
            t.api_tokens.c.token_hash == users.secret_digest(token), t.api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=svc.clock())).rowcount
        uow.commit()
    return bool(done)
