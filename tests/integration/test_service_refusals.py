"""What the service layer refuses, and that a refusal changes nothing, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.domain.errors import InvalidInput, NotFound, RuleViolation, StaleVersion
from scn_workflow.services import checks, nominations
from tests.conftest import ASSESSMENT, complete_draft


def _submission(svc, nomination_id):
    with svc.engine.connect() as c:
        return c.scalar(sa.select(t.events.c.event_id).where(
            t.events.c.nomination_id == nomination_id, t.events.c.name == "nomination.submitted")
            .order_by(t.events.c.seq.desc()).limit(1))


def _trail(svc, nomination_id):
    with svc.engine.connect() as c:
        return c.execute(sa.select(t.events.c.seq, t.events.c.name).where(
            t.events.c.nomination_id == nomination_id).order_by(t.events.c.seq)).all()


def _rules(exc_info) -> list[str]:
    return [v.rule for v in exc_info.value.violations]


def _submit_and_check(svc, actor, nomination):
    n = nominations.fire(svc, actor, nomination.id, "submit", nomination.version)
    outcome = checks.run_checks(svc, _submission(svc, n.id))
    return nominations.get(svc, actor, n.id), outcome


# --- versions and editing -------------------------------------------------------------------

def test_a_stale_version_is_refused_and_changes_nothing(svc, world):
    n = nominations.create(svc, world.submitter_id, complete_draft())
    n = nominations.update(svc, world.submitter_id, n.id, 1, {"region": "East Java (placeholder)"})
    assert n.version == 2
    before = _trail(svc, n.id)

    with pytest.raises(StaleVersion) as refused:
        nominations.update(svc, world.submitter_id2, n.id, 1, {"vision": "An edit based on version 1."})
    assert "version 2" in refused.value.detail
    with pytest.raises(StaleVersion):
        nominations.fire(svc, world.submitter_id, n.id, "submit", 1)

    after = nominations.get(svc, world.submitter_id, n.id)
    assert (after.state, after.version, after.vision) == ("drafted", 2, "A test vision.")
    assert _trail(svc, n.id) == before


def test_only_a_draft_can_be_edited(svc, world):
    n = nominations.create(svc, world.submitter_id, complete_draft())
    n = nominations.fire(svc, world.submitter_id, n.id, "submit", n.version)
    with pytest.raises(RuleViolation) as refused:
        nominations.update(svc, world.submitter_id, n.id, n.version, {"vision": "Too late."})
    assert _rules(refused) == ["editable_only_when_drafted"]
    assert nominations.get(svc, world.submitter_id, n.id).vision == "A test vision."


def test_unknown_focus_areas_are_invalid_input(svc, world):
    with pytest.raises(InvalidInput) as refused:
        nominations.create(svc, world.submitter_id, complete_draft(focus_areas=["civic_social", "space_travel"]))
    assert "space_travel" in refused.value.fields["focus_areas"][0]
    n = nominations.create(svc, world.submitter_id, complete_draft())
    bad_project = {"title": "Moon base", "focus_area": "space_travel", "description": "", "priority": False}
    with pytest.raises(InvalidInput) as refused:
        nominations.update(svc, world.submitter_id, n.id, n.version, {"projects": [bad_project]})
    assert "projects" in refused.value.fields
    with svc.engine.connect() as c:
        assert c.scalar(sa.select(sa.func.count()).select_from(t.nominations)) == 1
    assert nominations.get(svc, world.submitter_id, n.id).version == 1


# --- who sees what -------------------------------------------------------------------------

def test_a_submitter_of_another_member_state_sees_nothing(svc, world):
    n = nominations.create(svc, world.submitter_id, complete_draft())
    outsider = world.submitter_th
    for attempt in (lambda: nominations.get(svc, outsider, n.id),
                    lambda: nominations.events(svc, outsider, n.id),
                    lambda: nominations.checks(svc, outsider, n.id),
                    lambda: nominations.update(svc, outsider, n.id, 1, {"vision": "Not mine."}),
                    lambda: nominations.fire(svc, outsider, n.id, "withdraw", 1)):
        with pytest.raises(NotFound):
            attempt()
    assert nominations.search(svc, outsider).total == 0
    assert nominations.search(svc, world.submitter_id2).total == 1  # same member state, another user
    assert nominations.get(svc, world.submitter_id, n.id).state == "drafted"


def test_a_reviewer_does_not_see_drafts_never_submitted(svc, world):
    draft = nominations.create(svc, world.submitter_id, complete_draft("Banyuwangi"))
    sent = nominations.create(svc, world.submitter_id, complete_draft("Makassar"))
    nominations.fire(svc, world.submitter_id, sent.id, "submit", 1)

    with pytest.raises(NotFound):
        nominations.get(svc, world.reviewer_sg, draft.id)
    with pytest.raises(NotFound):
        nominations.fire(svc, world.reviewer_sg, draft.id, "return_for_revision", 1, comment="Peek.")
    assert [n.city_name for n in nominations.search(svc, world.reviewer_sg).items] == ["Makassar"]
    assert nominations.get(svc, world.reviewer_sg, sent.id).state == "submitted"
    assert nominations.search(svc, world.admin).total == 2


# --- limits -----------------------------------------------------------------------------------

def test_limit_per_member_state_and_its_override(svc, world):
    cities = ["Banyuwangi", "DKI Jakarta", "Makassar", "City D (placeholder)", "City E (placeholder)"]
    drafts = [nominations.create(svc, world.submitter_id, complete_draft(city)) for city in cities]
    for n in drafts[:3]:
        nominations.fire(svc, world.submitter_id, n.id, "submit", n.version)
    with pytest.raises(RuleViolation) as refused:
        nominations.fire(svc, world.submitter_id, drafts[3].id, "submit", drafts[3].version)
    assert _rules(refused) == ["within_state_limit"]
    assert "already has 3 active nomination(s) in cycle ASCN-2026, its limit is 3" in refused.value.detail
    # Another member state is not affected by Indonesia's count.
    other = nominations.create(svc, world.submitter_th, complete_draft("Bangkok"))
    assert nominations.fire(svc, world.submitter_th, other.id, "submit", 1).state == "submitted"

    with svc.engine.begin() as c:
        c.execute(sa.insert(t.limit_overrides).values(
            cycle_code="ASCN-2026", member_state="ID", limit=4, reason="Test override (placeholder).",
            set_by="root", set_at=svc.clock()))
    fourth = nominations.fire(svc, world.submitter_id, drafts[3].id, "submit", drafts[3].version)
    assert fourth.state == "submitted"
    # The override raised the limit to 4, not removed it.
    with pytest.raises(RuleViolation) as refused:
        nominations.fire(svc, world.submitter_id, drafts[4].id, "submit", drafts[4].version)
    assert "its limit is 4" in refused.value.detail
    # A withdrawn nomination no longer counts.
    nominations.fire(svc, world.submitter_id, drafts[0].id, "withdraw", drafts[0].version + 1)
    assert nominations.fire(svc, world.submitter_id, drafts[4].id, "submit", drafts[4].version).state == "submitted"


# --- automated checks --------------------------------------------------------------------------

def test_the_same_city_twice_in_a_cycle_fails_the_checks_and_blocks_review(svc, world):
    first = nominations.create(svc, world.submitter_id, complete_draft("Makassar"))
    first, outcome = _submit_and_check(svc, world.submitter_id, first)
    assert outcome == "passed"
    again = nominations.create(svc, world.submitter_id2, complete_draft("makassar"))
    again, outcome = _submit_and_check(svc, world.submitter_id2, again)
    assert outcome == "failed"

    results = {c["name"]: c for c in nominations.checks(svc, world.reviewer_sg, again.id)}
    assert results["duplicate_city"]["outcome"] == "failed"
    assert results["duplicate_city"]["blocking"] is True
    assert first.reference in results["duplicate_city"]["message"]
    assert results["completeness"]["outcome"] == "passed"

    with pytest.raises(RuleViolation) as refused:
        nominations.fire(svc, world.reviewer_sg, again.id, "review", again.version, assessment=ASSESSMENT)
    assert _rules(refused) == ["no_blocking_check_failed"]
    assert nominations.get(svc, world.reviewer_sg, again.id).state == "submitted"


def test_checks_run_once_per_submission(svc, world):
    n = nominations.create(svc, world.submitter_id, complete_draft())
    n = nominations.fire(svc, world.submitter_id, n.id, "submit", n.version)
    event_id = _submission(svc, n.id)
    assert checks.run_checks(svc, event_id) == "passed"
    after_first = (nominations.get(svc, world.admin, n.id).version, _trail(svc, n.id))
    with svc.engine.connect() as c:
        rows = c.scalar(sa.select(sa.func.count()).select_from(t.checks))

    assert checks.run_checks(svc, event_id) == "already done"
    assert (nominations.get(svc, world.admin, n.id).version, _trail(svc, n.id)) == after_first
    with svc.engine.connect() as c:
        assert c.scalar(sa.select(sa.func.count()).select_from(t.checks)) == rows
    assert [name for _, name in after_first[1]].count("checks.completed") == 1
    assert checks.run_checks(svc, "no-such-event") == "not a submission"


def test_return_for_revision_resets_the_checks(svc, world):
    n = nominations.create(svc, world.submitter_id, complete_draft())
    n, outcome = _submit_and_check(svc, world.submitter_id, n)
    assert (outcome, n.checks_outcome) == ("passed", "passed")
    old_submission = _submission(svc, n.id)
    n = nominations.get(svc, world.reviewer_sg, n.id)
    with pytest.raises(RuleViolation) as refused:
        nominations.fire(svc, world.reviewer_sg, n.id, "return_for_revision", n.version)
    assert _rules(refused) == ["comment_required"]
    n = nominations.fire(svc, world.reviewer_sg, n.id, "return_for_revision", n.version,
                         comment="Name the region, please.")
    assert (n.state, n.checks_outcome) == ("drafted", None)

    n = nominations.update(svc, world.submitter_id, n.id, n.version, {"region": "South Sulawesi (placeholder)"})
    n = nominations.fire(svc, world.submitter_id, n.id, "submit", n.version)
    assert n.checks_outcome == "pending"
    n = nominations.get(svc, world.reviewer_sg, n.id)
    with pytest.raises(RuleViolation) as refused:
        nominations.fire(svc, world.reviewer_sg, n.id, "review", n.version, assessment=ASSESSMENT)
    assert _rules(refused) == ["checks_finished"]

    assert checks.run_checks(svc, old_submission) == "already done"  # the old run counts for nothing now
    assert nominations.get(svc, world.reviewer_sg, n.id).checks_outcome == "pending"
    assert checks.run_checks(svc, _submission(svc, n.id)) == "passed"
    n = nominations.get(svc, world.reviewer_sg, n.id)
    n = nominations.fire(svc, world.reviewer_sg, n.id, "review", n.version, assessment=ASSESSMENT)
    assert n.state == "reviewed"


def test_checks_of_a_superseded_submission_are_skipped(svc, world):
    n = nominations.create(svc, world.submitter_id, complete_draft())
    n = nominations.fire(svc, world.submitter_id, n.id, "submit", n.version)
    stale = _submission(svc, n.id)
    n = nominations.fire(svc, world.reviewer_sg, n.id, "return_for_revision", n.version, comment="Too early.")
    n = nominations.fire(svc, world.submitter_id, n.id, "submit", n.version)

    assert checks.run_checks(svc, stale) == "skipped"
    n = nominations.get(svc, world.reviewer_sg, n.id)
    assert n.checks_outcome == "pending"
    assert "checks.completed" not in [name for _, name in _trail(svc, n.id)]


# --- search -------------------------------------------------------------------------------------

def test_search_filters_and_pages(svc, world):
    def make(actor, city, region=None, submit=False):
        n = nominations.create(svc, actor, complete_draft(city, region=region))
        if submit:
            n = nominations.fire(svc, actor, n.id, "submit", n.version)
        return n

    make(world.submitter_id, "Banyuwangi", "East Java (placeholder)", submit=True)
    make(world.submitter_id, "DKI Jakarta", submit=True)
    make(world.submitter_id, "Makassar", "South Sulawesi (placeholder)")
    make(world.submitter_th, "Bangkok", submit=True)
    make(world.submitter_th, "Phuket", "Phuket Province (placeholder)", submit=True)
    with svc.engine.begin() as c:
        c.execute(sa.insert(t.cycles).values(code="ASCN-2027", name="placeholder cycle",
                                             opens_at=svc.clock(), closes_at=svc.clock(), limit_per_state=3))
    nominations.create(svc, world.submitter_th, complete_draft("Chonburi", cycle="ASCN-2027"))

    def cities(actor=world.admin, **filters):
        return sorted(n.city_name for n in nominations.search(svc, actor, per_page=100, **filters).items)

    assert cities(state="drafted") == ["Chonburi", "Makassar"]
    assert cities(member_state="ID") == ["Banyuwangi", "DKI Jakarta", "Makassar"]
    assert cities(cycle="ASCN-2027") == ["Chonburi"]
    assert cities(member_state="TH", state="submitted") == ["Bangkok", "Phuket"]
    assert cities(q="jakarta") == ["DKI Jakarta"]  # city, any case
    assert cities(q="sulawesi") == ["Makassar"]  # region
    assert cities(q="Thai") == ["Bangkok", "Chonburi", "Phuket"]  # member state's name
    assert cities(q="id") == ["Banyuwangi", "DKI Jakarta", "Makassar"]  # member state's code
    assert cities(q="%") == cities(q="_") == []  # LIKE wildcards are literal characters
    assert cities(world.reviewer_sg, member_state="ID") == ["Banyuwangi", "DKI Jakarta"]
    assert cities(world.submitter_th) == ["Bangkok", "Chonburi", "Phuket"]  # only its own member state's
    assert cities(world.submitter_th, q="jakarta") == []
    assert cities(None) == []  # the public register: nothing accepted yet

    pages = [nominations.search(svc, world.admin, page=p, per_page=4) for p in (1, 2, 3)]
    assert [p.total for p in pages] == [6, 6, 6]
    assert [len(p.items) for p in pages] == [4, 2, 0]
    seen = [n.id for p in pages for n in p.items]
    assert len(set(seen)) == 6
    assert pages[0].items[0].city_name == "Chonburi"  # newest first
