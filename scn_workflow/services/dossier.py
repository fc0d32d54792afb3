"""The handover dossier: the PDF a lead agency reads (fpdf2), in the agency's language.

A cover page (city, member state, cycle, date of acceptance, reference), the nomination, the
assessment with its scores drawn as a bar chart, the automated checks, and the audit trail with
each event's hash and how to verify the chain. Text is drawn in DejaVu Sans, shipped in
scn_workflow/fonts (no system font is needed); a character the font cannot draw becomes "?".

The sentences are English msgids in `_()`, translated with the package's compiled catalogue
(babel's Translations, the catalogue Flask-Babel serves the pages from). It is read directly rather than
through Flask-Babel's request-bound locale, because the dossier is also built by the embedded
worker's thread, outside any app context.
"""

from __future__ import annotations

import functools
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal
from babel.support import NullTranslations
from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from scn_workflow import labels
from scn_workflow.db import tables as t
from scn_workflow.db.uow import UnitOfWork
from scn_workflow.domain.audit import GENESIS
from scn_workflow.domain.model import Cycle, MemberState, Nomination
from scn_workflow.services import Services

PACKAGE = Path(__file__).resolve().parent.parent
FONTS = PACKAGE / "fonts"
LANGUAGES = ("en", "id")
FONT = "DejaVu"
MONO = "Courier"  # a core font: hashes and event ids are ASCII
INK, MUTED, BAR, GRID = (33, 37, 41), (90, 98, 106), (31, 119, 180), (206, 212, 218)

_catalogue: ContextVar[NullTranslations] = ContextVar("dossier_catalogue", default=NullTranslations())


def _words() -> NullTranslations:
    """The dossier's catalogue, for the word tables of `labels`."""
    return _catalogue.get()


def _(message: str, **values) -> str:
    """`message` in the dossier's language, its {placeholders} filled in (the English if a translation lost one)."""
    translated = _catalogue.get().gettext(message)
    try:
        return translated.format(**values) if values else translated
    except (KeyError, IndexError, ValueError):
        return message.format(**values) if values else message


@functools.cache
def _drawable() -> frozenset[int]:
    """The code points DejaVu Sans has a glyph for (both faces cover the same)."""
    with TTFont(FONTS / "DejaVuSans.ttf", lazy=True) as font:
        return frozenset(font.getBestCmap())


def drawable(text) -> str:
    """`text` with every character the font cannot draw (and every control character) as "?"."""
    covered = _drawable()
    return "".join(c if c == "\n" or (ord(c) >= 0x20 and ord(c) in covered) else "?" for c in str(text or ""))


@dataclass
class Facts:
    """Everything the dossier shows, read in one read-only unit of work."""
    nomination: Nomination
    lead_agency: str | None
    cycle: str
    accepted_at: datetime | None
    checks: list = field(default_factory=list)
    events: list = field(default_factory=list)
    attachments: list = field(default_factory=list)


def read(uow: UnitOfWork, nomination_id: int) -> Facts:
    s = uow.session
    nomination = s.get(Nomination, nomination_id)
    if nomination is None:
        raise LookupError(f"No nomination {nomination_id}.")
    state = s.get(MemberState, nomination.member_state)
    cycle = s.get(Cycle, nomination.cycle)
    events = s.execute(sa.select(t.events).where(t.events.c.nomination_id == nomination_id)
                       .order_by(t.events.c.seq)).all()
    checks = s.execute(sa.select(t.checks).where(t.checks.c.nomination_id == nomination_id)
                       .order_by(t.checks.c.id)).all()
    latest_run = checks[-1].event_id if checks else None
    attachments = s.execute(sa.select(t.attachments).where(t.attachments.c.nomination_id == nomination_id)
                            .order_by(t.attachments.c.id)).all()
    accepted = [e.occurred_at for e in events if e.name == "nomination.accepted"]
    return Facts(nomination, state.lead_agency_name if state else None, cycle.name if cycle else nomination.cycle,
                 accepted[-1] if accepted else None, [c for c in checks if c.event_id == latest_run],
                 list(events), list(attachments))


def build(source: Services | UnitOfWork, nomination_id: int, language: str = "en") -> bytes:
    """The dossier of one nomination as PDF bytes, in `language` ('en' or 'id'; others read as English)."""
    if isinstance(source, UnitOfWork):
        facts = read(source, nomination_id)
        now = datetime.now(timezone.utc)
    else:
        with source.uow(read_only=True) as uow:
            facts = read(uow, nomination_id)
        now = source.clock()
    return render(facts, language, now)


def render(facts: Facts, language: str, now: datetime) -> bytes:
    language = language if language in LANGUAGES else "en"
    token = _catalogue.set(labels.catalogue(language))
    try:
        pdf = _Pdf(facts, language, now)
        pdf.cover()
        pdf.nomination_section()
        pdf.assessment_section()
        pdf.checks_section()
        pdf.audit_section()
        return bytes(pdf.output())
    finally:
        _catalogue.reset(token)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


class _Pdf(FPDF):
    """One dossier. header() and footer() are FPDF's documented hooks for what every page repeats."""

    def __init__(self, facts: Facts, language: str, now: datetime):
        super().__init__(format="A4")
        self.facts, self.language, self.now = facts, language, now
        self.set_margins(18, 18, 18)
        self.set_auto_page_break(True, margin=18)
        self.add_font(FONT, "", str(FONTS / "DejaVuSans.ttf"))
        self.add_font(FONT, "B", str(FONTS / "DejaVuSans-Bold.ttf"))
        self.set_title(drawable(_("Handover dossier: {city}", city=facts.nomination.city_name)))
        self.set_author("ASEAN Smart Cities Network (scn-workflow)")
        self.set_creation_date(_utc(now))

    # --- what every page repeats ---------------------------------------------------------------

    def header(self):
        if self.page_no() == 1:
            return
        self.set_font(FONT, "", 8)
        self.set_text_color(*MUTED)
        n = self.facts.nomination
        self.cell(0, 5, drawable(_("Handover dossier · {reference} · {city}", reference=n.reference,
                                   city=n.city_name)), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(3)
        self.set_text_color(*INK)

    def footer(self):
        self.set_y(-12)
        self.set_font(FONT, "", 8)
        self.set_text_color(*MUTED)
        self.cell(0, 5, _("Page {page} of {pages}", page=self.page_no(), pages="{nb}"), align="C")
        self.set_text_color(*INK)

    # --- building blocks -----------------------------------------------------------------------

    def when(self, moment: datetime | None, time: bool = False) -> str:
        if moment is None:
            return "—"
        moment = _utc(moment)
        if time:
            return format_datetime(moment, "yyyy-MM-dd HH:mm:ss 'UTC'", tzinfo=timezone.utc, locale=self.language)
        return format_date(moment, "long", locale=self.language)

    def heading(self, text: str):
        self.ln(4)
        self.set_font(FONT, "B", 15)
        self.multi_cell(0, 8, drawable(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(*GRID)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(3)

    def subheading(self, text: str):
        self.ln(2)
        self.set_font(FONT, "B", 11)
        self.multi_cell(0, 6, drawable(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def paragraph(self, text: str, size: float = 10, bold: bool = False, color=INK):
        self.set_font(FONT, "B" if bold else "", size)
        self.set_text_color(*color)
        self.multi_cell(0, size * 0.5, drawable(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(*INK)

    def pair(self, label: str, value, width: float = 55):
        """A label and its value on one row; the value wraps."""
        self.set_font(FONT, "B", 10)
        top = self.get_y()
        self.multi_cell(width, 5.5, drawable(label), align="L", new_x=XPos.RIGHT, new_y=YPos.TOP)
        self.set_font(FONT, "", 10)
        self.multi_cell(0, 5.5, drawable(value if value not in (None, "") else "—"), align="L",
                        new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_y(max(self.get_y(), top + 5.5) + 1)

    def mono(self, text: str, size: float = 8):
        self.set_font(MONO, "", size)
        self.multi_cell(0, size * 0.45, text.encode("ascii", "replace").decode("ascii"), align="L",
                        new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    # --- the sections --------------------------------------------------------------------------

    def cover(self):
        f, n = self.facts, self.facts.nomination
        self.add_page()
        self.set_fill_color(*BAR)
        self.rect(0, 0, self.w, 12, style="F")
        self.set_y(40)
        self.paragraph(_("ASEAN Smart Cities Network"), 12, color=MUTED)
        self.paragraph(_("Handover dossier"), 26, bold=True)
        self.ln(6)
        self.paragraph(n.city_name, 22, bold=True)
        self.paragraph(labels.member_state_name(n.member_state, _words()), 14)
        self.ln(10)
        self.pair(_("Reference"), n.reference)
        self.pair(_("Member state"), labels.member_state_name(n.member_state, _words()))
        self.pair(_("Cycle"), f"{f.cycle} ({n.cycle})")
        self.pair(_("Date of acceptance"), self.when(f.accepted_at))
        self.pair(_("Lead agency"), f.lead_agency)
        self.pair(_("Dossier made on"), self.when(self.now, time=True))
        self.ln(10)
        self.paragraph(_("The ASEAN Smart Cities Network accepted this city. This dossier holds its nomination, "
                         "the assessment with its scores, the automated checks and the audit trail of every "
                         "step, with the hashes that let anyone verify that the trail was not changed. The "
                         "machine-readable package (JSON) and the city's action plan come with it."), 10)

    def nomination_section(self):
        f, n = self.facts, self.facts.nomination
        self.add_page()
        self.heading(_("The nomination"))
        self.pair(_("City"), n.city_name)
        self.pair(_("Province or region"), n.region)
        self.pair(_("Population"), format_decimal(n.population, locale=self.language) if n.population else None)
        self.pair(_("Chief Smart City Officer"), " ".join(filter(None, [n.csco_name, f"<{n.csco_email}>"
                                                                        if n.csco_email else None])))
        self.pair(_("Focus areas"), ", ".join(labels.focus_area_label(a, _words()) for a in n.focus_areas))
        self.subheading(_("Vision"))
        self.paragraph(n.vision or "—")
        self.subheading(_("Projects"))
        if not n.projects:
            self.paragraph("—")
        for project in n.projects:
            line = _("{title} ({focus_area})", title=project.title,
                     focus_area=labels.focus_area_label(project.focus_area, _words()))
            if project.priority:
                line += " · " + _("priority project")
            self.paragraph("• " + line, bold=True)
            if project.description:
                self.paragraph(project.description, 9, color=MUTED)
            self.ln(1)
        self.subheading(_("Attachments"))
        if not f.attachments:
            self.paragraph(_("None."))
        for a in f.attachments:
            kind = labels.kind_label(a.kind, _words())
            self.paragraph(f"• {a.filename} ({kind}, {a.size // 1024 or 1} KiB)")
            self.mono(f"  SHA-256 {a.content_hash}")

    def assessment_section(self):
        n = self.facts.nomination
        self.heading(_("The assessment"))
        assessment = n.assessment or {}
        if not assessment:
            self.paragraph(_("No assessment was recorded."))
            return
        self.pair(_("Reviewed by"), n.reviewed_by)
        self.pair(_("Recommendation"), labels.recommendation_label(assessment.get("recommendation"), _words()))
        self.pair(_("Summary"), assessment.get("summary"))
        self.subheading(_("Scores (1 to 5)"))
        self.score_chart(assessment.get("scores") or {})

    def score_chart(self, scores: dict):
        """One horizontal bar per focus area on a 0 to 5 scale, drawn with rectangles and lines."""
        label_w, bar_w, row_h, top_pad = 62, 88, 9, 6
        height = top_pad + row_h * len(scores) + 4
        if self.get_y() + height > self.page_break_trigger:
            self.add_page()
        x0, y0 = self.l_margin + label_w, self.get_y() + top_pad
        unit = bar_w / 5
        self.set_font(FONT, "", 7)
        self.set_text_color(*MUTED)
        self.set_draw_color(*GRID)
        for tick in range(6):  # the scale: a gridline and its number at each whole score
            x = x0 + tick * unit
            self.line(x, y0 - 1, x, y0 + row_h * len(scores))
            self.set_xy(x - 3, y0 - top_pad + 1)
            self.cell(6, 4, str(tick), align="C")
        self.set_text_color(*INK)
        for i, (area, score) in enumerate(scores.items()):
            y = y0 + i * row_h
            self.set_xy(self.l_margin, y + 1.5)
            self.set_font(FONT, "", 9)
            self.cell(label_w - 3, 5, drawable(labels.focus_area_label(area, _words())), align="R")
            value = max(0.0, min(5.0, float(score))) if isinstance(score, (int, float)) else 0.0
            self.set_fill_color(*BAR)
            if value:
                self.rect(x0, y + 1.5, value * unit, row_h - 3, style="F")
            self.set_xy(x0 + bar_w + 2, y + 1.5)
            self.set_font(FONT, "B", 9)
            self.cell(20, 5, f"{score} / 5")
        self.set_y(y0 + row_h * len(scores) + 4)

    def checks_section(self):
        self.heading(_("The automated checks"))
        if not self.facts.checks:
            self.paragraph(_("No checks were recorded."))
            return
        for check in self.facts.checks:
            blocking = _("blocking") if check.blocking else _("not blocking")
            self.paragraph(f"• {labels.check_label(check.name, _words())}: "
                           f"{labels.outcome_label(check.outcome, _words())} ({blocking})", bold=True)
            if check.message:
                self.paragraph(labels.say(check.message, translations=_words()), 9, color=MUTED)
            self.ln(1)
        self.paragraph(_("Checked on {date}.", date=self.when(self.facts.checks[-1].ran_at, time=True)), 9,
                       color=MUTED)

    def audit_section(self):
        f = self.facts
        self.add_page()
        self.heading(_("The audit trail"))
        self.paragraph(_("Every step of the nomination, oldest first. Each event holds the hash of the one "
                         "before it, so a changed, removed or inserted event breaks the chain."), 9, color=MUTED)
        self.ln(2)
        for e in f.events:
            if self.get_y() > self.page_break_trigger - 30:
                self.add_page()
            moved = (f" ({labels.state_label(e.from_state, _words()) or '—'} → "
                     f"{labels.state_label(e.to_state, _words())})" if e.from_state != e.to_state else "")
            self.paragraph(f"{e.seq}. {labels.event_label(e, _words())}{moved}", 10, bold=True)
            self.paragraph(_("{when}, by {actor}", when=self.when(e.occurred_at, time=True), actor=e.actor), 9,
                           color=MUTED)
            if e.comment:
                self.paragraph(f"“{e.comment}”", 9)
            self.mono(f"event id  {e.event_id}\nprevious  {e.prev_hash}\nhash      {e.hash}")
            self.ln(2.5)
        self.verification_section()

    def verification_section(self):
        self.heading(_("How to verify the audit trail"))
        self.paragraph(_("With the service: an operator runs `scn-workflow audit verify`, which checks the chain of "
                         "every nomination and names the first broken link, if any."), 10)
        self.ln(2)
        self.paragraph(_("By hand, with the JSON package (its audit_trail lists each event's fields): for each "
                         "event in order of seq, compute SHA-256 over the previous event's hash followed by the "
                         "event as canonical JSON, and compare it with the event's hash. The first event's "
                         "previous hash is 64 zeros."), 10)
        self.ln(1)
        self.paragraph(_("The canonical JSON has exactly these keys: nomination_id, seq, event_id, name, actor, "
                         "occurred_at, from_state, to_state, comment, payload; keys sorted, no spaces (separators "
                         "\",\" and \":\"), characters not escaped, encoded as UTF-8; occurred_at in UTC as ISO "
                         "8601 with microseconds and +00:00. In Python:"), 10)
        self.ln(1)
        self.mono('import hashlib, json\n'
                  f'prev = "{GENESIS[:8]}..."  # "0" * 64\n'
                  'for e in package["audit_trail"]:\n'
                  '    fields = {k: e[k] for k in ("seq", "event_id", "name", "actor", "from_state",\n'
                  '                                "to_state", "comment", "payload")}\n'
                  '    fields["nomination_id"] = package["nomination"]["id"]\n'
                  '    fields["occurred_at"] = <e["occurred_at"] in UTC, e.g. 2026-06-01T09:00:00.000001+00:00>\n'
                  '    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)\n'
                  '    assert e["prev_hash"] == prev\n'
                  '    assert hashlib.sha256((prev + body).encode("utf-8")).hexdigest() == e["hash"]\n'
                  '    prev = e["hash"]', 7.5)
        last = self.facts.events[-1].hash if self.facts.events else GENESIS
        self.ln(2)
        self.paragraph(_("The last hash of this trail when the dossier was made:"), 10)
        self.mono(last, 9)
