"""Lists of nominations as CSV files that a spreadsheet opens safely, for pages and the API alike.

The rows are those of the list the reader sees (search.visible_matching: who sees which, and
the filters), every one of them, not a page: read `SCN_EXPORT_BATCH` rows at a time by id, each
batch in its own short read-only transaction, so a download of 100,000 rows keeps one batch in
memory and holds no transaction open while a slow client reads it. The file is UTF-8 with a
byte order mark (a spreadsheet then reads Indonesian names as UTF-8, not as its local code
page), and a cell that a spreadsheet would read as a formula is neutralised (OWASP, "CSV
injection"). Headers and states are words in the reader's language; the public register has
no personal data.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime

import sqlalchemy as sa
from flask_babel import gettext as _

from scn_workflow import labels
from scn_workflow.db import tables as t
from scn_workflow.domain.model import Actor
from scn_workflow.domain.rules import Sight, sight
from scn_workflow.domain.workflow import STATES
from scn_workflow.services import Services
from scn_workflow.services.search import visible_matching

BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a cell as a formula (or, tab and carriage return, hide one)."""


def neutralised(value) -> str:
    """The cell as text, with a single quote before anything a spreadsheet would evaluate."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def headers(public: bool) -> list[str]:
    """The header row, in the current language (the form's words for its fields); the public
    register's leaves out the Chief Smart City Officer (personal data)."""
    people = [] if public else [labels.field_label("csco_name"), labels.field_label("csco_email")]
    return [_("Reference"), *map(labels.field_label, ("city_name", "region", "member_state", "cycle")), _("State"),
            *people, _("Submitted on"), _("Last updated on")]


def _cells(row, public: bool, states: dict[str, str], member_states: dict[str, str]) -> list[str]:
    people = [] if public else [row.csco_name, row.csco_email]
    return [neutralised(v) for v in (row.reference, row.city_name, row.region,
                                     member_states.get(row.member_state, row.member_state), row.cycle,
                                     states.get(row.state, row.state), *people, _day(row.submitted_at),
                                     _day(row.updated_at))]


def _day(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d") if moment else ""


def nominations_csv(svc: Services, actor: Actor | None, *, state: str | None = None,
                    states: tuple[str, ...] | None = None, member_state: str | None = None, cycle: str | None = None,
                    q: str | None = None, checks_done: bool = False) -> Iterator[bytes]:
    """The CSV file, in pieces, of every nomination the actor's list shows with these filters (no
    actor: the public register); `states` keeps any of several states. Oldest reference first.

    Headers and state words are translated now, in the caller's language; the rows are read as
    the pieces are taken."""
    public = sight(actor) is Sight.PUBLIC_REGISTER
    with svc.uow(read_only=True) as uow:
        where = visible_matching(uow, actor, state=state, member_state=member_state, cycle=cycle, q=q,
                                 checks_done=checks_done)
        names = {code: labels.member_state_name(code) if code in labels.MEMBER_STATES else name
                 for code, name in uow.session.execute(sa.select(t.member_states.c.code, t.member_states.c.name))}
    if states:
        where.append(t.nominations.c.state.in_(states))
    words = {code: labels.state_label(code) for code in STATES}
    return _pieces(svc, where, headers(public), public, words, names)


def _pieces(svc: Services, where: list, header: list[str], public: bool, states: dict[str, str],
            member_states: dict[str, str]) -> Iterator[bytes]:
    n = t.nominations.c
    columns = [n.id, n.reference, n.city_name, n.region, n.member_state, n.cycle, n.state, n.submitted_at,
               n.updated_at]
    if not public:
        columns += [n.csco_name, n.csco_email]
    query = sa.select(*columns)
    yield (BOM + _lines([header])).encode("utf-8")
    batch, after = svc.settings.export_batch, 0
    while True:
        # Keyed by id, not by offset: a batch starts where the last one ended, whatever changed since.
        with svc.uow(read_only=True) as uow:
            rows = uow.session.execute(query.where(*where, n.id > after).order_by(n.id).limit(batch)).all()
        if rows:
            yield _lines(_cells(row, public, states, member_states) for row in rows).encode("utf-8")
            after = rows[-1].id
        if len(rows) < batch:
            return


def _lines(rows) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def filename(svc: Services, name: str) -> str:
    """The download's file name: what it lists and today's date (`review-desk-2026-06-01.csv`)."""
    return f"{name}-{svc.clock():%Y-%m-%d}.csv"
