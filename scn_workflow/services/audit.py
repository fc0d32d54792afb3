"""Verification of the audit trail's hash chains."""

from __future__ import annotations

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.domain.audit import GENESIS, BrokenLink, verify_chain
from scn_workflow.services import Services


def verify(svc: Services, batch: int = 500) -> tuple[int, list[tuple[str, BrokenLink]]]:
    """Check every nomination's chain; return how many were checked and the first broken link of each."""
    broken = []
    checked = 0
    with svc.uow(read_only=True) as uow:
        s = uow.session
        last_id = 0
        while True:
            heads = s.execute(sa.select(t.nominations.c.id, t.nominations.c.reference,
                                        t.nominations.c.last_event_hash, t.nominations.c.event_count)
                              .where(t.nominations.c.id > last_id).order_by(t.nominations.c.id)
                              .limit(batch)).all()
            if not heads:
                break
            ids = [h.id for h in heads]
            counted = {h.id: h.event_count for h in heads}
            rows = s.execute(sa.select(t.events).where(t.events.c.nomination_id.in_(ids))
                             .order_by(t.events.c.nomination_id, t.events.c.seq)).all()
            by_nomination: dict[int, list] = {i: [] for i in ids}
            beyond: dict[int, object] = {}  # the first event past the end each head records
            for row in rows:
                # Events committed after the heads were read are not this check's business.
                if row.seq <= counted[row.nomination_id]:
                    by_nomination[row.nomination_id].append(row)
                else:
                    beyond.setdefault(row.nomination_id, row)
            if beyond:
                # ... but a commit moves the head with its events: if the head, read again, still
                # ends before them, they were appended behind its back.
                counted.update({r.id: r.event_count for r in s.execute(
                    sa.select(t.nominations.c.id, t.nominations.c.event_count)
                    .where(t.nominations.c.id.in_(list(beyond))))})
            for head in heads:
                chain = by_nomination[head.id]
                link = verify_chain(head.id, chain)
                if link is None and (len(chain) != head.event_count
                                     or (chain[-1].hash if chain else GENESIS) != (head.last_event_hash or GENESIS)):
                    last = chain[-1] if chain else None
                    link = BrokenLink(head.id, last.seq if last else 0, last.event_id if last else "",
                                      f"the chain does not match the nomination: {len(chain)} event(s) found, "
                                      f"the nomination records {head.event_count} ending in "
                                      f"{(head.last_event_hash or GENESIS)[:12]}…")
                extra = beyond.get(head.id)
                if link is None and extra is not None and extra.seq > counted[head.id]:
                    link = BrokenLink(head.id, extra.seq, extra.event_id,
                                      f"an event the nomination does not record (it records {counted[head.id]})")
                if link is not None:
                    broken.append((head.reference, link))
                checked += 1
            last_id = ids[-1]
    return checked, broken
