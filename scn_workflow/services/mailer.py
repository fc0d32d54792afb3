"""Sending mail: through SMTP when SCN_SMTP_URL is set, else as .eml files in the instance folder."""

from __future__ import annotations

import atexit
import contextlib
import email
import email.policy
import logging
import os
import re
import smtplib
import socket
import threading
import time
from email.message import EmailMessage
from urllib.parse import urlsplit

from scn_workflow.config import Settings

log = logging.getLogger(__name__)


def connect(settings: Settings, timeout: float = 10.0):
    """An SMTP connection to SCN_SMTP_URL, logged in if the URL has credentials: (smtp, where)."""
    parts = urlsplit(settings.smtp_url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError(f"SCN_SMTP_URL must be smtp://host:port, not {settings.smtp_url!r}")
    port = parts.port or (465 if parts.scheme == "smtps" else 25)
    cls = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
    smtp = cls(parts.hostname or "localhost", port, timeout=timeout)
    try:
        # The final "." is a few bytes sent well after the message: Nagle's algorithm would hold it
        # until the server acknowledges the message, which a delayed ACK postpones by up to 40 ms.
        smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        smtp.ehlo_or_helo_if_needed()
        if parts.username:
            smtp.login(parts.username, parts.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp, f"smtp {parts.hostname}:{port}"


def send(settings: Settings, message: EmailMessage, timeout: float = 10.0) -> str:
    """Deliver one message over its own connection (or write it as an .eml file when SCN_SMTP_URL
    is unset: the same file name every time, so writing it twice is harmless); returns where it
    went. Raises when the server refuses it."""
    if not settings.smtp_url:
        return _write_eml(settings, message)
    smtp, where = connect(settings, timeout)
    try:
        smtp.send_message(message)
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
    return where


def _write_eml(settings: Settings, message: EmailMessage) -> str:
    folder = os.path.join(settings.instance_path, "mail")
    os.makedirs(folder, exist_ok=True)
    name = message["Message-ID"].strip("<>").replace("@", "_").replace("/", "_") + ".eml"
    path = os.path.join(folder, name)
    with open(path + ".tmp", "wb") as handle:
        handle.write(message.as_bytes())
    os.replace(path + ".tmp", path)
    return path


# --- Several mails at once, over connections kept open per process ----------------------------

# Mails held open at once, each on its own connection, then recorded in one transaction. 16 kept the
# drain of bench/workers.py 1.35x faster than 8; each worker process holds up to this many connections.
STAGED_AT_ONCE = 16


class Mail:
    """One message for one recipient, already composed as bytes; `key` is the caller's."""

    __slots__ = ("key", "sender", "recipient", "data")

    def __init__(self, key, sender: str, recipient: str, data: bytes):
        self.key, self.sender, self.recipient, self.data = key, sender, recipient, data


class Connections:
    """Numbered SMTP connections to SCN_SMTP_URL, opened when first used; a broken one is dropped
    and reopened on its next use. Use `kept(settings)` to borrow the process's set, which stays
    open between tasks; a set of one's own is closed (QUIT) on exit."""

    def __init__(self, settings: Settings, timeout: float = 10.0):
        self.settings, self.timeout = settings, timeout
        self._held: dict[int, tuple] = {}  # index -> (smtp, where, opened now or reused)
        self.last_used = time.monotonic()

    def __enter__(self) -> "Connections":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for index in list(self._held):
            try:
                self._held[index][0].quit()
            except (smtplib.SMTPException, OSError):
                pass
            self.drop(index)

    def get(self, index: int):
        if index not in self._held:
            smtp, where = connect(self.settings, self.timeout)
            self._held[index] = (smtp, where, False)
        smtp, where, _ = self._held[index]
        return smtp, where

    def reused(self, index: int) -> bool:
        """Whether connection `index` was opened before this use (so it may have gone stale)."""
        return index in self._held and self._held[index][2]

    def drop(self, index: int) -> None:
        held = self._held.pop(index, None)
        if held is not None:
            try:
                held[0].close()
            except OSError:
                pass

    def _release(self) -> None:
        self._held = {index: (smtp, where, True) for index, (smtp, where, _) in self._held.items()}
        self.last_used = time.monotonic()


KEEP_IDLE_S = 30.0  # a kept set idle longer than this is closed and opened afresh (servers time out idle clients)
_kept: dict[tuple[int, str], Connections] = {}
_kept_busy: set[tuple[int, str]] = set()
_kept_lock = threading.Lock()


@contextlib.contextmanager
def kept(settings: Settings):
    """Borrow this process's SMTP connections to SCN_SMTP_URL, kept open between tasks: a worker
    then connects once, not once a task. A second thread at the same time gets a set of its own."""
    key = (os.getpid(), settings.smtp_url or "")
    with _kept_lock:
        mine = key not in _kept_busy and bool(settings.smtp_url)
        if mine:
            _kept_busy.add(key)
            connections = _kept.get(key)
            if connections is not None and time.monotonic() - connections.last_used > KEEP_IDLE_S:
                connections.close()
                connections = None
            if connections is None:
                connections = _kept[key] = Connections(settings)
    if not mine:
        with Connections(settings) as own:
            yield own
        return
    try:
        yield connections
    finally:
        connections._release()
        with _kept_lock:
            _kept_busy.discard(key)


@atexit.register
def _close_kept() -> None:
    for key, connections in list(_kept.items()):
        if key[0] == os.getpid():
            connections.close()
    _kept.clear()


_STEPS = (  # (verb, argument, replies that mean go on, the exception for any other reply)
    ("mail", lambda m: "FROM:" + smtplib.quoteaddr(m.sender), (250,),
     lambda m, code, reply: smtplib.SMTPSenderRefused(code, reply, m.sender)),
    ("rcpt", lambda m: "TO:" + smtplib.quoteaddr(m.recipient), (250, 251),
     lambda m, code, reply: smtplib.SMTPRecipientsRefused({m.recipient: (code, reply)})),
    ("data", lambda m: "", (354,), lambda m, code, reply: smtplib.SMTPDataError(code, reply)),
)


def _stage_all(connections: Connections, mails: list[Mail], results: dict) -> list[tuple[int, Mail, str]]:
    """MAIL, RCPT, DATA and each whole message but its final "." (see _stage), each mail on its own
    connection; a kept connection the server closed meanwhile is reopened once."""
    reused = {index for index in range(len(mails)) if connections.reused(index)}
    staged = _stage(connections, list(enumerate(mails)), results)
    stale = [(index, mail) for index, mail in enumerate(mails) if index in reused
             and isinstance(results.get(mail.key), (smtplib.SMTPServerDisconnected, OSError))]
    for _, mail in stale:
        del results[mail.key]
    return staged + (_stage(connections, stale, results) if stale else [])


def _stage(connections: Connections, mails: list[tuple[int, Mail]], results: dict) -> list[tuple[int, Mail, str]]:
    """MAIL, RCPT, DATA and each whole message but its final ".", each mail on its own connection.

    Each step is sent on every connection before any reply is read, so a group costs three round
    trips, not three per mail. A mail refused or whose connection failed gets its exception in
    `results`; the staged ones are returned as (connection index, mail, where).
    """
    live = []
    for index, mail in mails:
        try:
            smtp, where = connections.get(index)
            live.append((index, mail, smtp, where))
        except (smtplib.SMTPException, OSError) as exc:
            results[mail.key] = exc
    for verb, argument, accepted, refusal in _STEPS:
        asked = []
        for index, mail, smtp, where in live:
            try:
                smtp.putcmd(verb, argument(mail))
                asked.append((index, mail, smtp, where))
            except (smtplib.SMTPException, OSError) as exc:
                connections.drop(index)
                results[mail.key] = exc
        live = []
        for index, mail, smtp, where in asked:
            try:
                code, reply = smtp.getreply()
            except (smtplib.SMTPException, OSError) as exc:
                connections.drop(index)
                results[mail.key] = exc
                continue
            if code in accepted:
                live.append((index, mail, smtp, where))
                continue
            results[mail.key] = refusal(mail, code, reply)
            try:
                smtp.rset()  # refused before any data: the connection stays usable
            except (smtplib.SMTPException, OSError):
                connections.drop(index)
    staged = []
    for index, mail, smtp, where in live:
        body = re.sub(rb"(?m)^\.", b"..", mail.data)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        try:
            smtp.send(body)
            staged.append((index, mail, where))
        except (smtplib.SMTPException, OSError) as exc:
            connections.drop(index)
            results[mail.key] = exc
    return staged


def send_recorded(settings: Settings, connections: Connections, mails: list[Mail], record) -> dict:
    """Deliver up to STAGED_AT_ONCE mails, recording them in one transaction before any is accepted.

    Each mail is staged on a connection of its own (everything but the final "."), then
    `record({key: where})` runs the caller's transaction and returns the keys it recorded (those
    another worker recorded first are left out); only then does each recorded mail get its final ".".
    A staged mail that was not recorded is abandoned by closing its connection, which makes the
    server drop it. So a crash before the commit sends nothing, a crash after it loses at most
    the mails whose "." was not yet written (microseconds), and nothing is ever sent twice.
    `connections` stay open for the caller's next group.

    Returns {key: where it went | the exception that stopped it}. An exception from `record`
    abandons every staged mail and propagates.
    """
    assert len(mails) <= STAGED_AT_ONCE
    results: dict = {}
    if not settings.smtp_url:
        for mail in mails:  # .eml files keep the same name every time: writing twice is harmless
            message = email.message_from_bytes(mail.data, policy=email.policy.SMTP)
            results[mail.key] = _write_eml(settings, message)
        recorded = set(record(results))
        return {key: where for key, where in results.items() if key in recorded}
    staged = _stage_all(connections, mails, results)
    if not staged:
        return results
    try:
        recorded = set(record({mail.key: where for _, mail, where in staged}))
    except BaseException:
        for index, _, _ in staged:
            connections.drop(index)  # the server drops every unfinished DATA
        raise
    # Every final "." goes out before any reply is read, so the window in which a crash loses a
    # recorded mail stays a few system calls, not a round trip per mail.
    finishing = []
    for index, mail, where in staged:
        if mail.key not in recorded:
            connections.drop(index)  # someone else sent it: abandon this copy
            continue
        try:
            connections.get(index)[0].send(b".\r\n")
            finishing.append((index, mail, where))
        except (smtplib.SMTPException, OSError) as exc:
            _lost(connections, index, mail, where, exc, results)
    for index, mail, where in finishing:
        try:
            code, reply = connections.get(index)[0].getreply()
        except (smtplib.SMTPException, OSError) as exc:
            _lost(connections, index, mail, where, exc, results)
            continue
        results[mail.key] = where if code == 250 else smtplib.SMTPDataError(code, reply)
    return results


def _lost(connections: Connections, index: int, mail: Mail, where: str, exc: Exception, results: dict) -> None:
    # The server may or may not have taken it: it stays recorded as sent (never twice).
    connections.drop(index)
    log.warning("mail %s: the connection failed at the final '.' (%s); it may be lost", mail.key, exc)
    results[mail.key] = where
