"""Idempotency keys: a retried create with the same key returns the first answer and creates nothing.

The key is reserved before the work is done, so two concurrent retries cannot both create.
"""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from scn_workflow.db import tables as t
from scn_workflow.domain.errors import N_, Conflict
from scn_workflow.services import Services

IN_PROGRESS = 0


def request_hash(body) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _key(username: str, key: str):
    k = t.idempotency_keys.c
    return sa.and_(k.username == username, k.key == key)


def reserve(svc: Services, username: str, key: str, digest: str):
    """Reserve the key; returns None when the caller should do the work, else the stored
    (status, body, location). The same key with another body, or still in progress: Conflict."""
    with svc.uow() as uow:
        try:
            uow.session.execute(sa.insert(t.idempotency_keys).values(
                username=username, key=key, request_hash=digest, status=IN_PROGRESS, body="", created_at=svc.clock()))
            uow.commit()
            return None
        except IntegrityError:
            pass
    with svc.uow(read_only=True) as uow:
        row = uow.session.execute(sa.select(t.idempotency_keys).where(_key(username, key))).one()
    if row.request_hash != digest:
        raise Conflict(N_("This Idempotency-Key was already used for a different request."))
    if row.status == IN_PROGRESS:
        raise Conflict(N_("A request with this Idempotency-Key is still in progress; retry shortly."))
    return row.status, row.body, row.location


def complete(svc: Services, username: str, key: str, status: int, body: str, location: str | None) -> None:
    with svc.uow() as uow:
        uow.session.execute(sa.update(t.idempotency_keys).where(_key(username, key)).values(
            status=status, body=body, location=location))
        uow.commit()


def release(svc: Services, username: str, key: str) -> None:
    """The work was refused: forget the key, so a corrected retry may use it."""
    with svc.uow() as uow:
        uow.session.execute(sa.delete(t.idempotency_keys).where(_key(username, key)))
        uow.commit()
