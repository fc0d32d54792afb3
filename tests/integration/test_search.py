"""Lists and `q` (services/search.py) on SQLite and PostgreSQL: what each role sees, what `q`
matches, the order, and totals on every page, checked against the same rules written in Python."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.domain.model import Actor, Role
from scn_workflow.domain.reference import ascn
from scn_workflow.domain.rules import may_see
from scn_workflow.services import nominations
from tests.conftest import complete_draft

MEMBER_STATE_NAMES = {m["code"]: m["name"] for m in ascn()["member_states"]}


@pytest.fixture
def listed(svc, world):
    """Nine nominations of ID and TH: drafts and submitted ones, one accepted (the public register),
    cities and regions in mixed case, and three that changed at the same moment (the id decides)."""
    def make(actor, city, region=None, submit=False):
        n = nominations.create(svc, actor, complete_draft(city, region=region))
        return nominations.fire(svc, actor, n.id, "submit", n.version) if submit else n

    made = [make(world.submitter_id, "Banyuwangi", "East Java (placeholder)", submit=True),
            make(world.submitter_id, "DKI Jakarta", submit=True),
            make(world.submitter_id2, "Makassar", "SOUTH Sulawesi (placeholder)"),
            make(world.submitter_id2, "Placeholder Thai Street 50%_off\\", "Land's End"),
            make(world.submitter_id, "Sumedang", "West Java (placeholder)"),
            make(world.submitter_th, "Bangkok", submit=True),
            make(world.submitter_th, "Phuket", "Phuket Province (placeholder)", submit=True),
            make(world.submitter_th, "Chiang Mai", "Northern Thailand"),
            make(world.submitter_th, "Khon Kaen", submit=True)]
    tie = made[2].updated_at + timedelta(minutes=5)
    with svc.engine.begin() as c:
        c.execute(sa.update(t.nominations).where(t.nominations.c.id == made[-1].id).values(state="accepted"))
        c.execute(sa.update(t.nominations).where(t.nominations.c.id.in_([made[1].id, made[4].id, made[6].id]))
                  .values(updated_at=tie))
    return svc


def _everything(svc, world):
    return nominations.search(svc, world.admin, per_page=100).items


def _q_matches(n, q: str) -> bool:
    q = q.lower()
    return (q in n.city_name.lower() or q in (n.region or "").lower() or q == n.member_state.lower()
            or q in MEMBER_STATE_NAMES[n.member_state].lower())


def _expected(everything, actor, q=None, **filters):
    """The list as the rules say it should be: rules.may_see (no actor: the public register),
    each filter, `q`; newest change first, then the highest id."""
    def shown(n):
        return may_see(actor, n) if actor else n.state in ("accepted", "handed_over")
    rows = [n for n in everything if shown(n) and all(getattr(n, k) == v for k, v in filters.items())
            and (not q or _q_matches(n, q))]
    return [n.id for n in sorted(rows, key=lambda n: (n.updated_at, n.id), reverse=True)]


QUERIES = [{}, {"q": "java"}, {"q": "JAVA"}, {"q": "sulawesi"}, {"q": "jakarta"}, {"q": "indo"},
           {"q": "NESIA"}, {"q": "th"}, {"q": "Th"}, {"q": "thai"}, {"q": "land"}, {"q": "id"},
           {"q": "%"}, {"q": "_"}, {"q": "50%_"}, {"q": "\\"}, {"q": "'"}, {"q": "zzyzx"},
           {"state": "submitted"}, {"member_state": "TH"}, {"state": "drafted", "q": "java"},
           {"member_state": "ID", "q": "thai"}, {"cycle": "ASCN-2026", "q": "b"}]


@pytest.mark.parametrize("who", ["admin", "operator", "reviewer_sg", "submitter_id", "submitter_th", None])
def test_each_role_sees_what_the_rules_say_in_order(listed, world, who):
    actor = getattr(world, who) if who else None
    everything = _everything(listed, world)
    assert len(everything) == 9
    for query in QUERIES:
        found = nominations.search(listed, actor, per_page=100, **query)
        want = _expected(everything, actor, **query)
        assert [n.id for n in found.items] == want, (who, query)
        assert found.total == len(want), (who, query)


def test_q_matches_city_region_and_member_state_in_any_case(listed, world):
    def cities(q, actor=world.admin):
        return sorted(n.city_name for n in nominations.search(listed, actor, q=q, per_page=100).items)

    assert cities("JAKARTA") == cities("jakarta") == ["DKI Jakarta"]  # city
    assert cities("south sulawesi") == ["Makassar"]  # region, stored in another case
    assert cities("Thailand") == ["Bangkok", "Chiang Mai", "Khon Kaen", "Phuket"]  # member state's name
    assert cities("ID") == cities("id") == ["Banyuwangi", "DKI Jakarta", "Makassar",
                                            "Placeholder Thai Street 50%_off\\", "Sumedang"]  # its code
    # a member state's name and a city of another member state, each once
    assert cities("thai") == ["Bangkok", "Chiang Mai", "Khon Kaen", "Phuket", "Placeholder Thai Street 50%_off\\"]
    assert cities("%_") == ["Placeholder Thai Street 50%_off\\"]  # LIKE's wildcards are plain characters
    assert cities("\\") == ["Placeholder Thai Street 50%_off\\"]  # and so is the escape character
    assert cities("thai", world.submitter_id) == ["Placeholder Thai Street 50%_off\\"]  # a submitter: its own
    assert cities("indonesia", world.submitter_th) == []  # member state's only
    assert cities("java", world.reviewer_sg) == ["Banyuwangi"]  # a reviewer: never a draft
    assert cities("khon", None) == ["Khon Kaen"]  # the public register: accepted ones
    assert cities("bangkok", None) == []


@pytest.mark.parametrize("per_page", [1, 2, 3, 4, 8, 9, 10])
def test_pages_cover_the_list_once_with_the_same_total(listed, world, per_page):
    want = _expected(_everything(listed, world), world.admin)
    pages = [nominations.search(listed, world.admin, page=p, per_page=per_page) for p in range(1, 12)]
    assert [n.id for p in pages for n in p.items] == want  # ties on updated_at keep their place
    assert {p.total for p in pages} == {9}
    assert [len(p.items) for p in pages] == [min(per_page, max(0, 9 - i * per_page)) for i in range(11)]


def test_totals_of_filtered_pages(listed, world):
    """A full page, a page part full, an empty one past the end: each says how many match."""
    submitted = [nominations.search(listed, world.reviewer_ph, page=p, per_page=2) for p in (1, 2, 3, 4)]
    assert [(len(p.items), p.total) for p in submitted] == [(2, 5), (2, 5), (1, 5), (0, 5)]
    nothing = nominations.search(listed, world.reviewer_ph, q="zzyzx")
    assert (nothing.items, nothing.total) == ([], 0)
    past_the_end = nominations.search(listed, Actor("sub-x", Role.SUBMITTER, "VN"), page=3)
    assert (past_the_end.items, past_the_end.total) == ([], 0)
