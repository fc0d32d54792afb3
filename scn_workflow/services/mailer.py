"""Sending mail: through SMTP when SCN_SMTP_URL is set, else as .eml files in the instance folder."""

from __future__ import annotations

import os
import smtplib
from email.message import EmailMessage
from urllib.parse import urlsplit

from scn_workflow.config import Settings


def send(settings: Settings, message: EmailMessage, timeout: float = 10.0) -> str:
    """Deliver one message; returns where it went. Raises when the server refuses it."""
    if settings.smtp_url:
        parts = urlsplit(settings.smtp_url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"SCN_SMTP_URL must be smtp://host:port, not {settings.smtp_url!r}")
        port = parts.port or (465 if parts.scheme == "smtps" else 25)
        cls = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
        with cls(parts.hostname or "localhost", port, timeout=timeout) as smtp:
            if parts.username:
                smtp.login(parts.username, parts.password or "")
            smtp.send_message(message)
        return f"smtp {parts.hostname}:{port}"
    folder = os.path.join(settings.instance_path, "mail")
    os.makedirs(folder, exist_ok=True)
    name = message["Message-ID"].strip("<>").replace("@", "_").replace("/", "_") + ".eml"
    path = os.path.join(folder, name)
    with open(path + ".tmp", "wb") as handle:
        handle.write(message.as_bytes())
    os.replace(path + ".tmp", path)
    return path
