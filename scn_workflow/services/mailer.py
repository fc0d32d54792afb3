"""Sending mail: with smtplib to SCN_SMTP_URL, else as .eml files in the instance folder.

Each process keeps one SMTP connection open between mails (a worker then connects once, not once a
mail), used by one thread at a time; a connection the server closed meanwhile is opened again.
"""

from __future__ import annotations

import atexit
import os
import re
import smtplib
import threading
from email.message import Message
from urllib.parse import urlsplit

from scn_workflow.config import Settings

_lock = threading.Lock()
_held: tuple | None = None  # (pid, SCN_SMTP_URL, smtplib.SMTP): this process's connection


# Line breaks and other control characters, which a header must not carry (a CR or LF would end it).
_NOT_IN_A_HEADER = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")


def one_line(text: str) -> str:
    """`text` fit for a mail header: each run of line breaks, control characters and spaces becomes one space."""
    return " ".join(_NOT_IN_A_HEADER.sub(" ", text).split())


def send(settings: Settings, message: Message) -> str:
    """Deliver one message; returns where it went. Raises when the server refuses it or is away."""
    if not settings.smtp_url:
        return _write_eml(settings, message)
    with _lock:
        return _send(settings, message)


def _send(settings: Settings, message: Message) -> str:
    smtp, reused = _connection(settings)
    try:
        smtp.send_message(message)
    except smtplib.SMTPServerDisconnected:
        close()
        if not reused:
            raise
        return _send(settings, message)  # the server closed an idle connection: once more, on a new one
    except OSError:  # smtplib's errors included
        close()
        raise
    parts = urlsplit(settings.smtp_url)
    return f"smtp {parts.hostname}:{parts.port}"


def connect(settings: Settings, timeout: float = 10.0) -> smtplib.SMTP:
    """A new SMTP connection to SCN_SMTP_URL, logged in when the URL has credentials."""
    parts = urlsplit(settings.smtp_url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError(f"SCN_SMTP_URL must be smtp://host:port, not {settings.smtp_url!r}")
    cls = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
    smtp = cls(parts.hostname or "localhost", parts.port or (465 if parts.scheme == "smtps" else 25),
               timeout=timeout)
    try:
        if parts.username:
            smtp.login(parts.username, parts.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def _connection(settings: Settings) -> tuple[smtplib.SMTP, bool]:
    """This process's connection (opened if need be), and whether it was open before."""
    global _held
    if _held is not None and _held[0] == os.getpid() and _held[1] == settings.smtp_url:
        return _held[2], True
    close()
    _held = (os.getpid(), settings.smtp_url, connect(settings))
    return _held[2], False


@atexit.register
def close() -> None:
    """Close this process's connection, if it has one (a forked child leaves its parent's alone)."""
    global _held
    held, _held = _held, None
    if held is not None and held[0] == os.getpid():
        try:
            held[2].quit()
        except (smtplib.SMTPException, OSError):
            held[2].close()


def _write_eml(settings: Settings, message: Message) -> str:
    """Write the message as <Message-ID>.eml: the same name every time, so writing it twice is harmless."""
    folder = os.path.join(settings.instance_path, "mail")
    os.makedirs(folder, exist_ok=True)
    name = message["Message-ID"].strip("<>").replace("@", "_").replace("/", "_") + ".eml"
    path = os.path.join(folder, name)
    with open(path + ".tmp", "wb") as handle:
        handle.write(message.as_bytes())
    os.replace(path + ".tmp", path)
    return path
