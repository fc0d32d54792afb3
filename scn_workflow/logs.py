"""JSON-lines logs with a correlation id that follows a request into its events and their tasks."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from contextvars import ContextVar
from datetime import datetime, timezone

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def new_id() -> str:
    return uuid.uuid4().hex


def clean(value: str | None) -> str | None:
    """A caller-supplied id (X-Request-ID), kept only if short and plain."""
    if value and len(value) <= 64 and all(c.isalnum() or c in "-_." for c in value):
        return value
    return None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
                 "correlation_id": correlation_id.get()}
        for key in ("event_id", "events", "task", "queue", "nomination_id", "method", "path", "status", "duration_ms"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class JsonLinesHandler(logging.StreamHandler):
    """A StreamHandler that formats a record before it takes the handler's lock, so that with many
    request threads only the write of a line is serialised, not its JSON encoding."""

    def handle(self, record: logging.LogRecord) -> bool:
        if not self.filter(record):
            return False
        try:
            line = self.format(record) + self.terminator
        except Exception:  # noqa: BLE001 - as logging itself does: report, never raise
            self.handleError(record)
            return True
        with self.lock:
            try:
                self.stream.write(line)
                self.stream.flush()
            except Exception:  # noqa: BLE001
                self.handleError(record)
        return True


def configure(level: str = "INFO") -> None:
    """Send the root logger's records to stderr as JSON lines (once per process)."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = JsonLinesHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The state machine library narrates every transition at INFO ("Finished processing state ...
    # exit callbacks.", "... enter callbacks.", "Executed callback ..."): three lines per
    # transition that say nothing the event row does not, each formatted and written under the
    # handler's lock. Its warnings still come through.
    logging.getLogger("transitions").setLevel(max(logging.WARNING, root.level))
