"""Sending mail: through SMTP when SCN_SMTP_URL is set, else as .eml files in the instance folder."""

from __future__ import annotations

import os
import smtplib
from email.message import EmailMessage
from urllib.parse import urlsplit

from scn_workflow.config import Settings


class Outbox:
    """Sends several messages over one SMTP connection, opened at the first message (or writes
    .eml files when SCN_SMTP_URL is unset). Use as a context manager."""

    def __init__(self, settings: Settings, timeout: float = 10.0):
        self.settings, self.timeout = settings, timeout
        self._smtp = None

    def __enter__(self) -> "Outbox":
        return self

    def __exit__(self, *exc) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None

    def send(self, message: EmailMessage) -> str:
        """Deliver one message; returns where it went. Raises when the server refuses it."""
        if not self.settings.smtp_url:
            return _write_eml(self.settings, message)
        parts = urlsplit(self.settings.smtp_url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"SCN_SMTP_URL must be smtp://host:port, not {self.settings.smtp_url!r}")
        port = parts.port or (465 if parts.scheme == "smtps" else 25)
        if self._smtp is None:
            cls = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
            self._smtp = cls(parts.hostname or "localhost", port, timeout=self.timeout)
            if parts.username:
                self._smtp.login(parts.username, parts.password or "")
        self._smtp.send_message(message)
        return f"smtp {parts.hostname}:{port}"


def send(settings: Settings, message: EmailMessage, timeout: float = 10.0) -> str:
    """Deliver one message over its own connection; returns where it went."""
    with Outbox(settings, timeout) as outbox:
        return outbox.send(message)


def _write_eml(settings: Settings, message: EmailMessage) -> str:
    folder = os.path.join(settings.instance_path, "mail")
    os.makedirs(folder, exist_ok=True)
    name = message["Message-ID"].strip("<>").replace("@", "_").replace("/", "_") + ".eml"
    path = os.path.join(folder, name)
    with open(path + ".tmp", "wb") as handle:
        handle.write(message.as_bytes())
    os.replace(path + ".tmp", path)
    return path
