"""Web sessions kept on the server: the signed cookie holds a random id, the database its hash.

A session is valid while its row exists, is not ended, is younger than the cookie's lifetime and
its user is active: signing out, deactivation, a password change and a role change end it for
every process at once (services/users.py ends them in the same transaction as the change).
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.domain.model import Actor
from scn_workflow.services import Services, users

LIFETIME = timedelta(hours=8)  # the same as the cookie's (web/__init__.py PERMANENT_SESSION_LIFETIME)
SWEEP_EVERY_S = 3600.0  # how often beat (or the embedded worker) removes the rows that no longer count


def start(svc: Services, username: str) -> str:
    """A new session for `username`: the id to keep in the cookie (only its hash is stored)."""
    session_id = secrets.token_urlsafe(32)
    with svc.uow() as uow:
        user_id = uow.session.scalar(sa.select(t.users.c.id).where(t.users.c.username == username))
        uow.session.execute(sa.insert(t.web_sessions).values(
            id_hash=users.secret_digest(session_id), user_id=user_id, created_at=svc.clock()))
        uow.commit()
    return session_id


def resolve(svc: Services, session_id: str) -> Actor | None:
    """The active user of a live session, else None."""
    s = t.web_sessions.c
    return users.holder(svc, s.id_hash, session_id, s.ended_at.is_(None), s.created_at > svc.clock() - LIFETIME)


def sweep(svc: Services) -> int:
    """Remove the sessions that no longer count (ended, or older than LIFETIME); returns how many."""
    s = t.web_sessions.c
    with svc.uow() as uow:
        removed = uow.session.execute(sa.delete(t.web_sessions).where(
            sa.or_(s.ended_at.is_not(None), s.created_at <= svc.clock() - LIFETIME))).rowcount
        uow.commit()
    return removed


def end(svc: Services, session_id: str) -> None:
    """Sign-out: the session's cookie is refused from now on, wherever it is replayed."""
    s = t.web_sessions.c
    with svc.uow() as uow:
        uow.session.execute(sa.update(t.web_sessions).where(
            s.id_hash == users.secret_digest(session_id), s.ended_at.is_(None)).values(ended_at=svc.clock()))
        uow.commit()
