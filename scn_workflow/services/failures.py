"""Work that exhausted its retries: recorded for an operator to retry or discard."""

from __future__ import annotations

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.domain.errors import N_, Conflict, Forbidden, NotFound, Text, Violation
from scn_workflow.domain.model import Actor, Role
from scn_workflow.services import Services, outbox


def record(svc: Services, *, task: str, event_id: str | None, arguments: list, error: str, attempts: int) -> int:
    with svc.uow() as uow:
        new_id = uow.session.execute(sa.insert(t.failures).values(
            task=task, event_id=event_id, arguments=list(arguments), error=error[:4000], attempts=attempts,
            failed_at=svc.clock(), status="open").returning(t.failures.c.id)).scalar_one()
        uow.commit()
        return new_id


def list_failures(svc: Services, status: str | None = "open") -> list[dict]:
    with svc.uow(read_only=True) as uow:
        stmt = sa.select(t.failures).order_by(t.failures.c.id)
        if status:
            stmt = stmt.where(t.failures.c.status == status)
        return [dict(row) for row in uow.session.execute(stmt).mappings()]


ALREADY = {"retried": N_("Failure {id} is already retried."), "discarded": N_("Failure {id} is already discarded.")}


def _resolve(svc: Services, failure_id: int, actor: Actor, status: str) -> dict:
    if actor.role not in (Role.OPERATOR, Role.ADMIN, Role.SYSTEM):
        raise Forbidden(N_("Only an operator or an admin may retry or discard failures."),
                        [Violation("operator", N_("Only an operator or an admin may do this."))])
    with svc.uow() as uow:
        row = uow.session.execute(sa.select(t.failures).where(t.failures.c.id == failure_id)).mappings().one_or_none()
        if row is None:
            raise NotFound(Text(N_("No failure {id}."), id=str(failure_id)))
        if row["status"] != "open":
            raise Conflict(Text(ALREADY.get(row["status"], N_("Failure {id} is already resolved.")),
                                id=str(failure_id)))
        resolved = {"status": status, "resolved_by": actor.username, "resolved_at": svc.clock()}
        uow.session.execute(sa.update(t.failures).where(t.failures.c.id == failure_id).values(**resolved))
        uow.commit()
        return {**row, **resolved}  # the row as it now stands


def retry(svc: Services, failure_id: int, actor: Actor) -> dict:
    """Publish the failed work again (its retries start afresh) and mark the failure retried."""
    row = _resolve(svc, failure_id, actor, "retried")
    queue, event_id = row["arguments"]
    outbox.reopen(svc, queue, event_id)
    svc.publish(queue, event_id)
    return row


def discard(svc: Services, failure_id: int, actor: Actor) -> dict:
    return _resolve(svc, failure_id, actor, "discarded")
