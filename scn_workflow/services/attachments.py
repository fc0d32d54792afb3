"""Attachments: PDF only (checked by content), stored outside the web root under their SHA-256."""

from __future__ import annotations

import hashlib
import os

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.domain.errors import InvalidInput, NotFound
from scn_workflow.domain.model import Actor
from scn_workflow.services import Services
from scn_workflow.services.nominations import (ATTACHMENT_COLUMNS, attachment_entry, load_draft_for_change,
                                              load_visible, valid_id)

KINDS = ("action_plan", "supporting_document")
MAX_BYTES = 8 * 1024 * 1024


def _folder(svc: Services) -> str:
    return os.path.join(svc.settings.instance_path, "attachments")


def is_pdf(content: bytes) -> bool:
    """A PDF starts with "%PDF-" within its first 1024 bytes (ISO 32000) and ends with %%EOF."""
    return b"%PDF-" in content[:1024] and b"%%EOF" in content[-1024:]


def add(svc: Services, actor: Actor, nomination_id: int, kind: str, filename: str, content: bytes,
        expected_version: int | None = None) -> dict:
    """Attach a PDF to a drafted nomination of the actor's member state."""
    errors = {}
    if kind not in KINDS:
        errors["kind"] = [f"Must be one of: {', '.join(KINDS)}."]
    if len(content) > MAX_BYTES:
        errors["file"] = [f"The file is {len(content) // 1024} KiB; the limit is {MAX_BYTES // (1024 * 1024)} MiB."]
    elif not is_pdf(content):
        errors["file"] = ["Only PDF files are accepted (the content is not a PDF)."]
    if errors:
        raise InvalidInput("The attachment is not valid.", errors)
    digest = hashlib.sha256(content).hexdigest()
    safe_name = os.path.basename(filename or "attachment.pdf")[:200] or "attachment.pdf"
    os.makedirs(_folder(svc), exist_ok=True)
    path = os.path.join(_folder(svc), digest)
    if not os.path.exists(path):
        with open(path + ".tmp", "wb") as handle:
            handle.write(content)
        os.replace(path + ".tmp", path)
    with svc.uow() as uow:
        nomination = load_draft_for_change(uow, actor, nomination_id, expected_version, "attach files",
                                           "Files can be attached only while drafted; this nomination is {state}.")
        now = svc.clock()
        new_id = uow.session.execute(sa.insert(t.attachments).values(
            nomination_id=nomination.id, kind=kind, filename=safe_name, content_hash=digest, size=len(content),
            uploaded_by=actor.username, uploaded_at=now).returning(t.attachments.c.id)).scalar_one()
        nomination.add_attachment(kind, safe_name, digest, len(content), actor.username, now)
        uow.commit()
    return {"id": new_id, "kind": kind, "filename": safe_name, "sha256": digest, "size": len(content)}


def listing(svc: Services, nomination_ids: list[int]) -> dict[int, list[dict]]:
    """Attachments of the given nominations, by nomination id."""
    out: dict[int, list[dict]] = {i: [] for i in nomination_ids}
    if not nomination_ids:
        return out
    with svc.uow(read_only=True) as uow:
        rows = uow.session.execute(sa.select(t.attachments.c.nomination_id, *ATTACHMENT_COLUMNS)
                                   .where(t.attachments.c.nomination_id.in_(nomination_ids))
                                   .order_by(t.attachments.c.id))
        for row in rows:
            out[row[0]].append(attachment_entry(row[1:]))
    return out


def open_file(svc: Services, actor: Actor, nomination_id: int, attachment_id: int) -> tuple[str, dict]:
    """The stored file's path and its record, for someone who may see the nomination."""
    with svc.uow(read_only=True) as uow:
        load_visible(uow, actor, nomination_id)
        row = uow.session.execute(sa.select(t.attachments).where(
            t.attachments.c.id == attachment_id, t.attachments.c.nomination_id == nomination_id)).one_or_none() \
            if valid_id(attachment_id) else None
    if row is None:
        raise NotFound(f"No attachment {attachment_id} on nomination {nomination_id}.")
    path = os.path.join(_folder(svc), row.content_hash)
    if not os.path.exists(path):
        raise NotFound(f"The file of attachment {attachment_id} is missing from storage; tell an operator.")
    return path, {"filename": row.filename, "size": row.size}


