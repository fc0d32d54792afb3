"""The hash-chained audit trail: a good chain verifies, any tampering is found where it happened."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from scn_workflow.domain.audit import GENESIS, event_hash, verify_chain

NOMINATION_ID = 7
START = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Row:
    seq: int
    event_id: str
    name: str
    actor: str
    occurred_at: datetime
    from_state: str | None
    to_state: str | None
    comment: str | None
    payload: dict
    prev_hash: str
    hash: str


def content_hash(prev_hash: str, row: Row, nomination_id: int = NOMINATION_ID) -> str:
    return event_hash(prev_hash, nomination_id=nomination_id, seq=row.seq, event_id=row.event_id, name=row.name,
                      actor=row.actor, occurred_at=row.occurred_at, from_state=row.from_state,
                      to_state=row.to_state, comment=row.comment, payload=row.payload)


def chain(events) -> list[Row]:
    """Rows as the service writes them: each linked to and hashed over the one before."""
    rows, prev = [], GENESIS
    for seq, (name, actor, from_state, to_state, comment, payload) in enumerate(events, start=1):
        row = Row(seq, f"evt-{seq}", name, actor, START + timedelta(minutes=seq), from_state, to_state,
                  comment, payload, prev, "")
        row = dataclasses.replace(row, hash=content_hash(prev, row))
        rows.append(row)
        prev = row.hash
    return rows


EVENTS = [
    ("nomination.created", "sub-id", None, "drafted", None, {"city_name": "Banyuwangi"}),
    ("nomination.submitted", "sub-id", "drafted", "submitted", None, {}),
    ("checks.completed", "system", "submitted", "submitted", None, {"outcome": "passed"}),
    ("nomination.reviewed", "rev-sg", "submitted", "reviewed", "Placeholder comment.",
     {"assessment": {"scores": {"civic_social": 4}, "recommendation": "accept"}}),
    ("nomination.accepted", "rev-ph", "reviewed", "accepted", None, {}),
]


def test_a_good_chain_verifies():
    rows = chain(EVENTS)
    assert rows[0].prev_hash == GENESIS
    assert all(len(r.hash) == 64 for r in rows)
    assert len({r.hash for r in rows}) == len(rows)
    assert verify_chain(NOMINATION_ID, rows) is None


def test_an_empty_trail_has_no_broken_link():
    assert verify_chain(NOMINATION_ID, []) is None


def test_the_hash_depends_on_the_nomination():
    """Events moved to another nomination do not verify there."""
    rows = chain(EVENTS)
    broken = verify_chain(NOMINATION_ID + 1, rows)
    assert broken is not None and broken.seq == 1 and broken.nomination_id == NOMINATION_ID + 1


@pytest.mark.parametrize("seq", [1, 3, 5])
@pytest.mark.parametrize("field, value", [
    ("comment", "Edited afterwards."),
    ("payload", {"outcome": "failed"}),
    ("actor", "root"),
    ("to_state", "rejected"),
    ("from_state", "drafted"),
    ("name", "nomination.rejected"),
    ("occurred_at", START + timedelta(days=1)),
    ("event_id", "evt-forged"),
])
def test_changing_a_field_is_detected_at_that_event(seq, field, value):
    rows = chain(EVENTS)
    rows[seq - 1] = dataclasses.replace(rows[seq - 1], **{field: value})
    broken = verify_chain(NOMINATION_ID, rows)
    assert broken is not None
    assert (broken.nomination_id, broken.seq) == (NOMINATION_ID, seq)
    assert broken.event_id == rows[seq - 1].event_id
    assert "content" in broken.reason


def test_a_change_deep_inside_the_payload_is_detected():
    rows = chain(EVENTS)
    payload = {"assessment": {"scores": {"civic_social": 5}, "recommendation": "accept"}}
    rows[3] = dataclasses.replace(rows[3], payload=payload)
    assert verify_chain(NOMINATION_ID, rows).seq == 4


def test_a_deleted_middle_event_is_detected():
    rows = chain(EVENTS)
    del rows[2]
    broken = verify_chain(NOMINATION_ID, rows)
    assert broken is not None and broken.seq == 4
    assert "3" in broken.reason and "missing" in broken.reason


def test_a_deleted_first_event_is_detected():
    broken = verify_chain(NOMINATION_ID, chain(EVENTS)[1:])
    assert broken is not None and broken.seq == 2 and "missing" in broken.reason


def test_a_relinked_prev_hash_is_detected():
    rows = chain(EVENTS)
    rows[3] = dataclasses.replace(rows[3], prev_hash=rows[1].hash)
    broken = verify_chain(NOMINATION_ID, rows)
    assert broken is not None and broken.seq == 4
    assert "link" in broken.reason


def test_a_deletion_covered_by_renumbering_and_relinking_is_detected():
    """Remove event 3, renumber 4 and 5 and point 4 at event 2: the hashes no longer match."""
    rows = chain(EVENTS)
    del rows[2]
    rows[2] = dataclasses.replace(rows[2], seq=3, prev_hash=rows[1].hash)
    rows[3] = dataclasses.replace(rows[3], seq=4)
    broken = verify_chain(NOMINATION_ID, rows)
    assert broken is not None and broken.seq == 3
    assert "content" in broken.reason


def test_a_genesis_that_is_not_genesis_is_detected():
    rows = chain(EVENTS)
    rows[0] = dataclasses.replace(rows[0], prev_hash="f" * 64)
    assert verify_chain(NOMINATION_ID, rows).seq == 1


def _hash_at(moment: datetime) -> str:
    return event_hash(GENESIS, nomination_id=1, seq=1, event_id="evt-1", name="nomination.created",
                      actor="sub-id", occurred_at=moment, from_state=None, to_state="drafted",
                      comment=None, payload={})


@pytest.fixture
def local_time_not_utc(monkeypatch):
    """A machine whose local time is not UTC: naive times must still be read as UTC."""
    monkeypatch.setenv("TZ", "Asia/Jakarta")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_time_not_utc")
def test_naive_and_aware_utc_times_hash_the_same():
    """SQLite hands back naive UTC datetimes; PostgreSQL aware ones: the chain verifies on both."""
    aware = datetime(2026, 6, 1, 9, 0, 0, 123456, tzinfo=timezone.utc)
    assert _hash_at(aware.replace(tzinfo=None)) == _hash_at(aware)
    jakarta = timezone(timedelta(hours=7))
    assert _hash_at(aware.astimezone(jakarta)) == _hash_at(aware)
    assert _hash_at(aware + timedelta(microseconds=1)) != _hash_at(aware)


@pytest.mark.usefixtures("local_time_not_utc")
def test_a_chain_written_aware_verifies_when_read_back_naive():
    rows = [dataclasses.replace(r, occurred_at=r.occurred_at.replace(tzinfo=None)) for r in chain(EVENTS)]
    assert verify_chain(NOMINATION_ID, rows) is None


def test_payload_key_order_does_not_change_the_hash():
    def with_payload(payload):
        return event_hash(GENESIS, nomination_id=1, seq=1, event_id="e", name="n", actor="a", occurred_at=START,
                          from_state=None, to_state="drafted", comment=None, payload=payload)
    assert with_payload({"a": 1, "b": [1, 2]}) == with_payload({"b": [1, 2], "a": 1})
    assert with_payload({"a": 1}) != with_payload({"a": "1"})
