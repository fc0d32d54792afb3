"""The tamper-evident audit trail: each event of a nomination holds the hash of the one before."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone

GENESIS = "0" * 64


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; they are stored as UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def event_hash(prev_hash: str, *, nomination_id: int, seq: int, event_id: str, name: str, actor: str,
               occurred_at: datetime, from_state: str | None, to_state: str | None,
               comment: str | None, payload: dict) -> str:
    """SHA-256 over the previous hash and a canonical JSON form of the event."""
    body = json.dumps({
        "nomination_id": nomination_id, "seq": seq, "event_id": event_id, "name": name,
        "actor": actor, "occurred_at": _iso(occurred_at), "from_state": from_state,
        "to_state": to_state, "comment": comment, "payload": payload,
    }, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class BrokenLink:
    nomination_id: int
    seq: int
    event_id: str
    reason: str


def verify_chain(nomination_id: int, rows) -> BrokenLink | None:
    """Check one nomination's events (in seq order); return the first broken link, if any.

    Each row has the attributes of an event row: seq, event_id, name, actor, occurred_at,
    from_state, to_state, comment, payload, prev_hash, hash.
    """
    prev = GENESIS
    expected_seq = 1
    for row in rows:
        if row.seq != expected_seq:
            return BrokenLink(nomination_id, row.seq, row.event_id,
                              f"event {expected_seq} is missing (found {row.seq})")
        if row.prev_hash != prev:
            return BrokenLink(nomination_id, row.seq, row.event_id, "does not link to the event before it")
        recomputed = event_hash(prev, nomination_id=nomination_id, seq=row.seq, event_id=row.event_id,
                                name=row.name, actor=row.actor, occurred_at=row.occurred_at,
                                from_state=row.from_state, to_state=row.to_state,
                                comment=row.comment, payload=row.payload)
        if recomputed != row.hash:
            return BrokenLink(nomination_id, row.seq, row.event_id, "its content does not match its hash")
        prev = row.hash
        expected_seq += 1
    return None
