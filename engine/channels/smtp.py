"""Email over real SMTP, driven step by step so that we know which phase a failure hit.

Why step by step (EHLO, MAIL, RCPT, DATA) instead of ``sendmail``: the dispatcher must tell
"certainly not sent" (safe to retry) from "maybe sent" (flag for review). Only a failure after
the DATA command was issued and before the server's final answer is "maybe sent": the server
may already have queued the message when the connection broke. Everything earlier is a clean
"not sent", and every explicit reply code is unambiguous whatever the phase.

Mapping:
- an explicit 5xx reply (refused recipient, rejected content, auth failure) -> failed_permanent
- an explicit 4xx reply (greylisting, "try again later") -> failed_transient
- connection refused / dropped / timed out before DATA -> failed_transient
- connection dropped / timed out after DATA was issued -> unknown (never blindly resent)

The message: multipart/alternative (text, then html when given), UTF-8 throughout so Chinese
text survives, the headers it is given (e.g. List-Unsubscribe, List-Unsubscribe-Post from the
message builder) copied unchanged, and a Message-ID derived from the send id so that a resend
of the same send carries the same Message-ID and is recognisable as a duplicate.
"""
from __future__ import annotations

import base64
import binascii
import secrets
import smtplib
import socket
import ssl
import threading
import time
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr, parseaddr

from engine.channels.base import OutboundMessage, SendResult
from engine.core.clock import Clock, SystemClock

# Headers the adapter sets itself; a caller-supplied copy would produce duplicates that some
# receivers reject outright.
_RESERVED = frozenset({"from", "to", "subject", "date", "message-id", "mime-version",
                       "content-type", "content-transfer-encoding"})

# RFC 5322's hard limit is 998 characters per line. Folding at the policy default (78) would
# be legal, but a long unsubscribe URL has no place to fold, and we want caller headers to go
# out byte-for-byte as given.
_POLICY = SMTP_POLICY.clone(max_line_length=998)


def message_id_for(send_id: str, from_address: str) -> str:
    """``<send_id@sender-domain>``: stable per send, so a resend is recognisably the same."""
    _, addr = parseaddr(from_address)
    domain = addr.rpartition("@")[2] or "localhost"
    return f"<{send_id}@{domain}>"


def build_email(message: OutboundMessage, *, now_header: str) -> EmailMessage:
    if message.channel != "email":
        raise ValueError(f"SmtpChannel sends email, not {message.channel}")
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = message.from_
    msg["To"] = message.to
    msg["Subject"] = message.subject or ""
    msg["Date"] = now_header
    msg["Message-ID"] = message_id_for(message.send_id, message.from_)
    for name, value in message.headers.items():
        if name.lower() in _RESERVED:
            raise ValueError(f"header {name!r} is set by the SMTP adapter itself")
        msg[name] = value
    msg.set_content(message.text, charset="utf-8", cte=_cte(message.text))
    if message.html is not None:
        msg.add_alternative(message.html, subtype="html", charset="utf-8", cte=_cte(message.html))
    return msg


def email_bytes(message: OutboundMessage, *, now_header: str) -> bytes:
    """The wire form of ``message``: ``build_email(...).as_bytes()``'s equivalent, written
    directly for the shape every campaign email has (ASCII addresses, headers without line
    breaks, a text part and maybe an HTML part), a few times cheaper; anything else goes through
    the ``email`` package. Equivalent, not byte-identical: a random boundary of its own, and
    quoted-printable lines wrapped at 76 characters (RFC 2045) where the package wraps at 998;
    parsed back, the headers and parts are the same (``tests/integration/test_channels.py``)."""
    fast = _fast_email_bytes(message, now_header)
    if fast is not None:
        return fast
    return build_email(message, now_header=now_header).as_bytes(policy=_POLICY)


def _plain_header(value: str, name: str) -> bool:
    """Can go out as given: printable ASCII on one line, no encoded-word look-alike."""
    return (value.isascii() and value.isprintable() and "=?" not in value
            and len(name) + 2 + len(value) <= 998)


def _encoded_words(text: str) -> str:
    """RFC 2047 base64 encoded words (at most 75 characters each, never splitting a
    character), folded onto continuation lines."""
    words, chunk, size = [], [], 0
    for ch in text:
        n = len(ch.encode("utf-8"))
        if size + n > 45:  # 45 bytes -> 60 base64 characters + 12 for =?utf-8?b?...?=
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(ch)
        size += n
    words.append("".join(chunk))
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w.encode('utf-8')).decode('ascii')}?=" for w in words)


def _address_header(value: str) -> str | None:
    name, addr = parseaddr(value)
    if not addr or not addr.isascii() or not addr.isprintable() or " " in addr or "\n" in value or "\r" in value:
        return None
    if not name:
        return addr
    if name.isascii():
        return formataddr((name, addr)) if name.isprintable() and "=?" not in name else None
    if not name.isprintable():
        return None
    return f"{_encoded_words(name)} <{addr}>"


def _body_part(text: str) -> tuple[str, bytes]:
    lines = text.encode("utf-8").splitlines()
    if text.isascii():
        data = binascii.b2a_qp(b"\n".join(lines) + b"\n", quotetabs=False, istext=True, header=False)
        return "quoted-printable", data.replace(b"\n", b"\r\n")
    data = base64.encodebytes(b"\r\n".join(lines) + b"\r\n")
    return "base64", data.replace(b"\n", b"\r\n")


def _fast_email_bytes(message: OutboundMessage, now_header: str) -> bytes | None:
    if message.channel != "email":
        raise ValueError(f"SmtpChannel sends email, not {message.channel}")
    sender, to = _address_header(message.from_), _address_header(message.to)
    if sender is None or to is None:
        return None
    subject = message.subject or ""
    if "\n" in subject or "\r" in subject:
        return None  # the email package refuses it with its own error
    if not _plain_header(subject, "Subject"):
        if not subject.isprintable():
            return None
        subject = _encoded_words(subject)
    head = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", f"Date: {now_header}",
            f"Message-ID: {message_id_for(message.send_id, message.from_)}"]
    for name, value in message.headers.items():
        if name.lower() in _RESERVED:
            raise ValueError(f"header {name!r} is set by the SMTP adapter itself")
        if not (name.isascii() and name.isprintable() and ":" not in name and " " not in name) \
                or not _plain_header(value, name):
            return None
        head.append(f"{name}: {value}")
    cte, text = _body_part(message.text)
    if message.html is None:
        head += ['Content-Type: text/plain; charset="utf-8"', f"Content-Transfer-Encoding: {cte}", "MIME-Version: 1.0"]
        return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + text
    html_cte, html = _body_part(message.html)
    # "=_" cannot occur in quoted-printable (an "=" is written =3D) nor in base64: a boundary
    # starting with it never collides with the parts it separates.
    boundary = f"=_{secrets.token_hex(16)}"
    head += ["MIME-Version: 1.0", f'Content-Type: multipart/alternative; boundary="{boundary}"']
    return b"".join([
        ("\r\n".join(head) + f"\r\n\r\n--{boundary}\r\n"
         f'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n').encode("ascii"),
        text,
        (f"\r\n--{boundary}\r\n"
         f'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: {html_cte}\r\n\r\n').encode("ascii"),
        html,
        f"\r\n--{boundary}--\r\n".encode("ascii"),
    ])


def _cte(body: str) -> str:
    # 8-bit bodies need the server's 8BITMIME; base64 (compact for Chinese) or quoted-printable
    # (readable for ASCII, and it wraps long lines) go through any server unchanged.
    return "quoted-printable" if body.isascii() else "base64"


def _by_code(code: int, text: str, *, in_data: bool) -> SendResult:
    if 500 <= code <= 599:
        return SendResult.permanent(f"smtp {code}: {text}")
    if 400 <= code <= 499:
        return SendResult.transient(f"smtp {code}: {text}")
    # A reply outside 4xx/5xx where we wanted success is a broken server; treat it like a
    # broken connection for the phase we are in.
    if in_data:
        return SendResult.unknown(f"smtp unexpected reply {code}: {text}")
    return SendResult.transient(f"smtp unexpected reply {code}: {text}")


def _reply_text(resp: bytes | str) -> str:
    return resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)


class _Connection:
    __slots__ = ("smtp", "sent", "last_used")

    def __init__(self, smtp: smtplib.SMTP):
        self.smtp = smtp
        self.sent = 0
        self.last_used = time.monotonic()


class SmtpChannel:
    """Sends email over one kept-open connection per thread, reused for up to
    ``max_per_connection`` messages and ``idle_seconds`` between them (opening a connection per
    message cost more than the message itself). A reused connection the server closed in the
    meantime fails before DATA, which is a clean "not sent": that send is tried once more on a
    fresh connection. Anything that breaks after DATA was issued drops the connection and is
    "unknown", as before."""

    safe_to_retry_unknown = False

    def __init__(self, host: str, port: int, *, username: str | None = None,
                 password: str | None = None, starttls: bool = False, timeout: float = 10,
                 local_hostname: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 clock: Clock | None = None, max_per_connection: int = 100, idle_seconds: float = 20):
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.ssl_context = ssl_context
        self.clock = clock or SystemClock()
        self.max_per_connection = max_per_connection
        self.idle_seconds = idle_seconds
        self._local = threading.local()

    # --- the kept connection ------------------------------------------------------------
    def _open(self) -> _Connection:
        smtp = smtplib.SMTP(timeout=self.timeout, local_hostname=self.local_hostname)
        try:
            smtp.connect(self.host, self.port)
            # each command is one write answered before the next: no small writes to coalesce
            smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            smtp.ehlo_or_helo_if_needed()
            if self.starttls:
                smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password or "")
        except BaseException:
            self._close(smtp, polite=False)
            raise
        return _Connection(smtp)

    def _connection(self) -> _Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and (conn.sent >= self.max_per_connection
                                 or time.monotonic() - conn.last_used > self.idle_seconds):
            self.close()
            conn = None
        if conn is None:
            conn = self._local.conn = self._open()
        return conn

    def _drop(self, *, polite: bool) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            self._close(conn.smtp, polite=polite)

    def close(self) -> None:
        """Say goodbye on this thread's connection (if any)."""
        self._drop(polite=True)

    @staticmethod
    def _reset(smtp: smtplib.SMTP) -> None:
        # After a refused MAIL or RCPT the transaction must be reset before the next one.
        try:
            smtp.rset()
        except (smtplib.SMTPException, OSError):
            pass

    # --- one message -----------------------------------------------------------------------
    def send(self, message: OutboundMessage) -> SendResult:
        try:
            payload = email_bytes(message, now_header=format_datetime(self.clock.now(), usegmt=True))
            sender = parseaddr(message.from_)[1]
            recipient = parseaddr(message.to)[1]
            sender.encode("ascii")
            recipient.encode("ascii")
        except (ValueError, UnicodeEncodeError) as exc:
            # A message we cannot even build will fail the same way every time.
            return SendResult.permanent(f"cannot build email: {exc}")
        if not recipient:
            return SendResult.permanent(f"no recipient address in {message.to!r}")
        result = self._attempt(message, sender, recipient, payload, may_retry=True)
        return result

    def _attempt(self, message: OutboundMessage, sender: str, recipient: str, payload: bytes, *,
                 may_retry: bool) -> SendResult:
        in_data = False
        reused = False
        try:
            conn = self._connection()
            reused = conn.sent > 0
            smtp = conn.smtp
            code, resp = smtp.mail(sender)
            if code != 250:
                self._reset(smtp)
                return _by_code(code, _reply_text(resp), in_data=False)
            code, resp = smtp.rcpt(recipient)
            if code not in (250, 251):
                self._reset(smtp)
                return _by_code(code, _reply_text(resp), in_data=False)
            # From here until the final reply the server may have the message: any break is
            # "unknown". smtplib.data raises SMTPDataError if DATA itself is refused (no 354).
            in_data = True
            code, resp = smtp.data(payload)
            conn.sent += 1
            conn.last_used = time.monotonic()
            if code != 250:
                return _by_code(code, _reply_text(resp), in_data=True)
            return SendResult.accepted(message_id_for(message.send_id, message.from_))
        except smtplib.SMTPResponseException as exc:
            # An explicit reply (including refused DATA, refused greeting, failed AUTH) tells us
            # the server did not take the message, whatever the phase. 421 closes the session.
            if exc.smtp_code == 421:
                self._drop(polite=False)
            else:
                conn = getattr(self._local, "conn", None)
                if conn is not None:
                    self._reset(conn.smtp)
            return _by_code(exc.smtp_code, _reply_text(exc.smtp_error), in_data=False)
        except smtplib.SMTPNotSupportedError as exc:
            # e.g. STARTTLS required by our settings but not offered: a configuration problem.
            self._drop(polite=False)
            return SendResult.permanent(f"smtp: {exc}")
        except (smtplib.SMTPException, OSError) as exc:
            # SMTPServerDisconnected, socket timeouts, refused or reset connections.
            self._drop(polite=False)
            if reused and not in_data and may_retry:
                # The server closed a kept connection while it sat idle: nothing was sent.
                return self._attempt(message, sender, recipient, payload, may_retry=False)
            what = f"smtp {type(exc).__name__}: {exc}"
            return SendResult.unknown(what) if in_data else SendResult.transient(what)

    @staticmethod
    def _close(smtp: smtplib.SMTP, *, polite: bool) -> None:
        # QUIT is a courtesy; a failing QUIT must never change the outcome we already know.
        try:
            if polite and smtp.sock is not None:
                smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            smtp.close()
