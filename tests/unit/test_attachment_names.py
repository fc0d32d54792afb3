"""What a stored file is called and what counts as a PDF (services/attachments.py), without services."""

from __future__ import annotations

import pytest

from scn_workflow.services.attachments import NAME_LIMIT, is_pdf, stored_name


@pytest.mark.parametrize("sent, kept", [
    ("action-plan.pdf", "action-plan.pdf"),
    ("report.html", "report.pdf"),
    ("Plan.PDF", "Plan.pdf"),
    ("no extension", "no extension.pdf"),
    ("archive.tar.gz", "archive.tar.pdf"),
    ("../../etc/passwd", "passwd.pdf"),
    ("C:\\Users\\me\\plan.pdf", "plan.pdf"),
    ("line\nbreak\r\n.pdf", "linebreak.pdf"),
    ("tab\there\x00\x1b\x7f.pdf", "tabhere.pdf"),
    ("plan\u202efdp.exe", "planfdp.pdf"),  # a right-to-left override would show it as "planexe.pdf"
    ("para\u2029graph.pdf", "paragraph.pdf"),
    ("Rencana aksi Makassar – tahap 1.pdf", "Rencana aksi Makassar – tahap 1.pdf"),
    ("x" * 300 + ".pdf", "x" * NAME_LIMIT + ".pdf"),
    ("", "attachment.pdf"),
    (None, "attachment.pdf"),
    ("...", "attachment.pdf"),
    ("\n\n.pdf", "attachment.pdf"),
    (" .hidden", "attachment.pdf"),
])
def test_stored_names_end_in_pdf_without_folders_or_control_characters(sent, kept):
    assert stored_name(sent) == kept


@pytest.mark.parametrize("content, ok", [
    (b"%PDF-1.7\n...\n%%EOF\n", True),
    (b"%PDF-1.4\n...\n%%EOF\n\n\n   ", True),
    (b"<html>    %PDF-1.4\n...\n%%EOF\n", False),  # "%PDF-" at byte 10
    (b" %PDF-1.4\n...\n%%EOF\n", False),
    (b"%PDF-1.4\n... cut short", False),
    (b"", False),
])
def test_a_pdf_starts_with_its_header(content, ok):
    assert is_pdf(content) is ok
