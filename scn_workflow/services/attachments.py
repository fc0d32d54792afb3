"""Attachments: PDF only (checked by content), stored outside the web root under their SHA-256.

An upload is refused before its body is read when the uploader may not change the nomination
(`may_attach`), so a refused upload never reaches the disk. A file is written before the row
that names it is committed; what a crash leaves between the two, no row names, and the sweep
(`sweep_orphans`) removes it once it is older than ORPHAN_GRACE.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import unicodedata

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.domain.errors import N_, InvalidInput, NotFound, Text
from scn_workflow.domain.model import Actor
from scn_workflow.services import Services
from scn_workflow.services.nominations import (ATTACHMENT_COLUMNS, attachment_entry, load_draft_for_change,
                                              load_visible, valid_id)

log = logging.getLogger(__name__)

KINDS = ("action_plan", "supporting_document")
MAX_BYTES = 8 * 1024 * 1024
# The most an upload's request body may hold: the file, the kind, the boundaries and part headers.
# Werkzeug stops reading (413) past it, so nothing larger is ever spooled.
UPLOAD_LIMIT = MAX_BYTES + 64 * 1024
# A stored file no row names is left alone this long: it may be an upload between writing its
# file and committing its row (seconds), or a file an upload of the same content just reused.
ORPHAN_GRACE_S = 3600
SWEEP_EVERY_S = 600.0  # how often beat (or the embedded worker) sweeps: a folder listing and a query
NAME_LIMIT = 100  # characters of a stored file name before ".pdf"

FORBIDDEN = N_("Only a submitter of member state {member_state} may attach files.")
REFUSAL = N_("Files can be attached only while drafted; this nomination is {state}.")


def _folder(svc: Services) -> str:
    return os.path.join(svc.settings.instance_path, "attachments")


def is_pdf(content: bytes) -> bool:
    """A PDF starts with "%PDF-" and ends with "%%EOF" (within its last kilobyte, which may hold
    trailing whitespace). ISO 32000 lets readers find the header further in; we do not, so a file
    of another type with a PDF header inside it is refused."""
    return content.startswith(b"%PDF-") and b"%%EOF" in content[-1024:]


def stored_name(filename: str | None) -> str:
    """The name a file is stored and served under: no folders, no control or invisible formatting
    characters (a line break, a right-to-left override), at most NAME_LIMIT characters, ending in .pdf."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C" and unicodedata.category(ch) not in (
        "Zl", "Zp"))
    stem, dot, extension = kept.rpartition(".")
    if not dot:
        stem = extension
    stem = stem.strip(" .")[:NAME_LIMIT].strip(" .")
    return (stem or "attachment") + ".pdf"


def may_attach(svc: Services, actor: Actor, nomination_id: int, expected_version: int | None = None) -> None:
    """Refuse as `add` would (404 not visible, 403 not the actor's, 422 not drafted, 412 stale) before
    the upload's body is read; `add` checks again in its own transaction."""
    with svc.uow(read_only=True) as uow:
        load_draft_for_change(uow, actor, nomination_id, expected_version, FORBIDDEN, REFUSAL)


def _store(svc: Services, digest: str, content: bytes) -> None:
    os.makedirs(_folder(svc), exist_ok=True)
    path = os.path.join(_folder(svc), digest)
    if os.path.exists(path):
        try:
            os.utime(path)  # young again: the sweep leaves a file that an upload is about to name
            return
        except FileNotFoundError:
            pass  # swept meanwhile: write it again
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "wb") as handle:
        handle.write(content)
    os.replace(temporary, path)


def add(svc: Services, actor: Actor, nomination_id: int, kind: str, filename: str, content: bytes,
        expected_version: int | None = None) -> dict:
    """Attach a PDF to a drafted nomination of the actor's member state."""
    errors = {}
    if kind not in KINDS:
        errors["kind"] = [Text(N_("Must be one of: {kinds}."), kinds=", ".join(KINDS))]
    if len(content) > MAX_BYTES:
        errors["file"] = [Text(N_("The file is {size} KiB; the limit is {limit} MiB."),
                               size=len(content) // 1024, limit=MAX_BYTES // (1024 * 1024))]
    elif not is_pdf(content):
        errors["file"] = [N_("Only PDF files are accepted (the content is not a PDF).")]
    if errors:
        raise InvalidInput(N_("The attachment is not valid."), errors)
    digest = hashlib.sha256(content).hexdigest()
    name = stored_name(filename)
    with svc.uow() as uow:
        nomination = load_draft_for_change(uow, actor, nomination_id, expected_version, FORBIDDEN, REFUSAL)
        # Written only once the nomination accepts it; a crash before the commit leaves an orphan
        # for the sweep, never a row without its file.
        _store(svc, digest, content)
        now = svc.clock()
        new_id = uow.session.execute(sa.insert(t.attachments).values(
            nomination_id=nomination.id, kind=kind, filename=name, content_hash=digest, size=len(content),
            uploaded_by=actor.username, uploaded_at=now).returning(t.attachments.c.id)).scalar_one()
        nomination.add_attachment(kind, name, digest, len(content), actor.username, now)
        uow.commit()
    return {"id": new_id, "kind": kind, "filename": name, "sha256": digest, "size": len(content)}


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
        raise NotFound(Text(N_("No attachment {attachment} on nomination {id}."), attachment=str(attachment_id),
                            id=str(nomination_id)))
    path = os.path.join(_folder(svc), row.content_hash)
    if not os.path.exists(path):
        raise NotFound(Text(N_("The file of attachment {attachment} is missing from storage; tell an operator."),
                            attachment=str(attachment_id)))
    # Rows stored before names were cleaned are served under a clean name too.
    return path, {"filename": stored_name(row.filename), "size": row.size}


def sweep_orphans(svc: Services, grace_s: float = ORPHAN_GRACE_S) -> int:
    """Remove the stored files that no attachment names and that are older than `grace_s` seconds
    (what a crash between writing a file and committing its row left); returns how many."""
    folder = _folder(svc)
    cutoff = time.time() - grace_s  # file times are the wall clock's, whatever clock the services use
    try:
        with os.scandir(folder) as entries:
            old = [e.name for e in entries if e.is_file(follow_symlinks=False) and e.stat().st_mtime < cutoff]
    except FileNotFoundError:
        return 0
    named = set()
    with svc.uow(read_only=True) as uow:
        for start in range(0, len(old), 500):  # a bounded IN list per statement
            named.update(uow.session.scalars(sa.select(t.attachments.c.content_hash).distinct().where(
                t.attachments.c.content_hash.in_(old[start:start + 500]))))
    removed = 0
    for name in old:
        if name in named:
            continue
        path = os.path.join(folder, name)
        try:
            if os.stat(path).st_mtime >= cutoff:
                continue  # an upload of the same content touched it since: it is about to be named
            os.remove(path)
            removed += 1
        except FileNotFoundError:
            continue
    if removed:
        log.info("attachments: removed %d stored file(s) that no attachment names", removed)
    return removed
