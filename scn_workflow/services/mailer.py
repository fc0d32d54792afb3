"""Sending mail: through SMTP when SCN_SMTP_URL is set, else as .eml files in the instance folder."""

from __future__ import annotations

import email.policy
import os
import re
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

    def _connection(self):
        parts = urlsplit(self.settings.smtp_url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"SCN_SMTP_URL must be smtp://host:port, not {self.settings.smtp_url!r}")
        port = parts.port or (465 if parts.scheme == "smtps" else 25)
        if self._smtp is None:
            cls = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
            self._smtp = cls(parts.hostname or "localhost", port, timeout=self.timeout)
            if parts.username:
                self._smtp.login(parts.username, parts.password or "")
        return self._smtp, f"smtp {parts.hostname}:{port}"

    def send(self, message: EmailMessage, on_ready=None) -> str:
        """Deliver one message; returns where it went. Raises when the server refuses it.

        `on_ready(where)`, when given, is called once the server holds the whole message but
        before the final "." that makes it accept it: the caller records the mail as sent
        there. A crash before that point leaves nothing delivered (the server drops an
        unfinished DATA), so a retry sends it once; only a crash in the few microseconds
        between the record and the final "." could lose it. Without this, the window for a
        duplicate would be a whole SMTP round trip and a commit.
        """
        if not self.settings.smtp_url:
            where = _write_eml(self.settings, message)  # same file name every time: idempotent
            if on_ready:
                on_ready(where)
            return where
        smtp, where = self._connection()
        if on_ready is None:
            smtp.send_message(message)
            return where
        try:
            self._staged(smtp, message, lambda: on_ready(where))
        except BaseException:
            smtp.close()  # an unfinished DATA is dropped by the server
            self._smtp = None
            raise
        return where

    @staticmethod
    def _staged(smtp, message: EmailMessage, on_ready) -> None:
        sender, recipients = message["From"], [message["To"]]
        smtp.ehlo_or_helo_if_needed()
        code, reply = smtp.mail(sender)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        for recipient in recipients:
            code, reply = smtp.rcpt(recipient)
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
        code, reply = smtp.docmd("data")
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        body = re.sub(rb"(?m)^\.", b"..", message.as_bytes(policy=email.policy.SMTP))
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        smtp.send(body)
        on_ready()
        smtp.send(b".\r\n")
        code, reply = smtp.getreply()
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)


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
