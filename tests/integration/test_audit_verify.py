"""`scn-workflow audit verify`: the operator's view of the tamper-evident audit trail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.domain.audit import event_hash
from scn_workflow.services import audit, checks, nominations
from tests.conftest import ASSESSMENT, complete_draft

SCN = Path(sys.executable).parent / "scn-workflow"


def _verify(url: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCN_")}
    env["SCN_DATABASE_URL"] = url
    return subprocess.run([str(SCN), "audit", "verify"], env=env, capture_output=True, text=True, timeout=60)


def _submission(svc, nomination_id):
    with svc.engine.connect() as c:
        return c.scalar(sa.select(t.events.c.event_id).where(
            t.events.c.nomination_id == nomination_id, t.events.c.name == "nomination.submitted")
            .order_by(t.events.c.seq.desc()).limit(1))


def _history(svc, world):
    """Four nominations with a few events each; returns them by what the test does to them."""
    sub = world.submitter_id
    edited = nominations.create(svc, sub, complete_draft("Banyuwangi"))
    nominations.update(svc, sub, edited.id, 1, {"region": "East Java (placeholder)"})
    checked = nominations.create(svc, sub, complete_draft("DKI Jakarta"))
    nominations.fire(svc, sub, checked.id, "submit", 1)
    checks.run_checks(svc, _submission(svc, checked.id))
    truncated = nominations.create(svc, sub, complete_draft("Makassar"))
    nominations.fire(svc, sub, truncated.id, "submit", 1)
    untouched = nominations.create(svc, world.submitter_th, complete_draft("Bangkok"))
    n = nominations.fire(svc, world.submitter_th, untouched.id, "submit", 1)
    checks.run_checks(svc, _submission(svc, n.id))
    n = nominations.get(svc, world.reviewer_sg, n.id)
    nominations.fire(svc, world.reviewer_sg, n.id, "review", n.version, assessment=ASSESSMENT)
    return edited, checked, truncated, untouched


def test_verify_passes_then_names_each_tampered_nomination(svc, world):
    edited, checked, truncated, untouched = _history(svc, world)

    clean = _verify(svc.settings.database_url)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "4 nomination chain(s) checked, 0 broken" in clean.stdout
    assert "BROKEN" not in clean.stdout

    e = t.events.c
    with svc.engine.begin() as c:
        # A comment rewritten after the fact.
        c.execute(sa.text("UPDATE events SET comment = 'nothing to see here' "
                          "WHERE nomination_id = :n AND seq = 2"), {"n": edited.id})
        # The outcome of the automated checks rewritten in the payload.
        c.execute(sa.update(t.events).where(e.nomination_id == checked.id, e.name == "checks.completed")
                  .values(payload={"outcome": "passed", "checks": []}))
        # The submission removed from the end of the trail.
        c.execute(sa.text("DELETE FROM events WHERE nomination_id = :n AND seq = 2"), {"n": truncated.id})

    broken = _verify(svc.settings.database_url)
    assert broken.returncode != 0
    out = broken.stdout
    assert "4 nomination chain(s) checked, 3 broken" in out
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("BROKEN")}
    assert set(lines) == {edited.reference, checked.reference, truncated.reference}
    assert untouched.reference not in out
    assert "event 2" in lines[edited.reference] and "does not match its hash" in lines[edited.reference]
    assert "event 3" in lines[checked.reference] and "does not match its hash" in lines[checked.reference]
    assert "1 event(s)" in lines[truncated.reference]
    assert "the nomination records 2" in lines[truncated.reference]
    assert "Traceback" not in broken.stderr


def test_an_event_appended_behind_the_nominations_back_is_detected(svc, world):
    """A well-linked event inserted after the last one: only the nomination's head can tell."""
    n = nominations.create(svc, world.submitter_id, complete_draft())
    assert audit.verify(svc) == (1, [])
    with svc.engine.begin() as c:
        last = c.execute(sa.select(t.events).where(t.events.c.nomination_id == n.id)).one()
        forged = {"nomination_id": n.id, "seq": 2, "event_id": "00000000-0000-4000-8000-000000000000",
                  "name": "nomination.withdrawn", "actor": "sub-id", "occurred_at": svc.clock(),
                  "from_state": "drafted", "to_state": "withdrawn", "comment": None, "payload": {}}
        c.execute(sa.insert(t.events).values(prev_hash=last.hash, hash=event_hash(last.hash, **forged), **forged))

    checked, broken = audit.verify(svc)
    assert checked == 1
    assert [(reference, link.seq, link.event_id) for reference, link in broken] == [
        (n.reference, 2, forged["event_id"])]
