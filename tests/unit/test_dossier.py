"""The dossier drawn from facts made by hand (no database): any city name renders, what the font
cannot draw becomes "?", and every score is drawn."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from types import SimpleNamespace

from pypdf import PdfReader

from scn_workflow.domain.model import Nomination, Project
from scn_workflow.services import dossier

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)


def facts(city: str, scores: dict) -> dossier.Facts:
    n = Nomination(member_state="VN", cycle="ASCN-2026", city_name=city, reference="ASCN-2026-VN-001",
                   created_by="sub-vn", now=NOW, vision="Vision\nwith a line break and a \x00 control character.",
                   focus_areas=list(scores), projects=[Project("Smart lights", next(iter(scores)), "", True)])
    n.assessment = {"scores": scores, "recommendation": "accept", "summary": "Good."}
    n.reviewed_by = "rev-sg"
    event = SimpleNamespace(seq=1, event_id="e1", name="nomination.accepted", actor="rev-ph", occurred_at=NOW,
                            from_state="reviewed", to_state="accepted", comment=None, prev_hash="0" * 64,
                            hash="ab" * 32)
    return dossier.Facts(n, "Ministry of Construction", "2026 call", NOW, [], [event], [])


def text_of(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def test_any_city_name_renders_and_what_the_font_cannot_draw_becomes_a_question_mark():
    city = "Đà Nẵng กรุงเทพ 🚀"
    text = text_of(dossier.render(facts(city, {"civic_social": 5, "quality_environment": 2}), "en", NOW))
    assert "Đà Nẵng" in text  # Vietnamese is in the font
    assert "กรุงเทพ" not in text and "?????" in text  # Thai and the emoji are not: each became "?"
    assert "Viet Nam" in text and "5 / 5" in text and "2 / 5" in text
    assert "ab" * 32 in text.replace("\n", "")


def test_drawable_keeps_line_breaks_and_replaces_control_characters():
    assert dossier.drawable("a\nb\x00c\tè") == "a\nb?c?è"
    assert dossier.drawable(None) == ""


def test_an_unknown_language_reads_as_english():
    text = text_of(dossier.render(facts("Hanoi", {"civic_social": 3}), "xx", NOW))
    assert "Handover dossier" in text and "June 1, 2026" in text


def test_the_indonesian_dossier_says_checks_events_and_states_in_words_not_codes():
    f = facts("Hanoi", {"civic_social": 4})
    f.checks = [SimpleNamespace(name="state_limit", outcome="passed", blocking=True, ran_at=NOW,
                                message="2 active nomination(s) with this one; the limit is 3.")]
    text = " ".join(text_of(dossier.render(f, "id", NOW)).split())
    assert "Batas negara anggota: lulus" in text  # the check and its outcome
    assert "2 nominasi aktif termasuk nominasi ini; batasnya 3." in text  # its message
    assert "1. Diterima (Ditinjau → Diterima)" in text  # the event and the states it moved between
    assert "Kewargaan dan Sosial" in text and "Rekomendasi Terima" in text.replace(":", "")
    for code in ("state_limit", "nomination.accepted", "reviewed", "civic_social", "passed"):
        assert code not in text
