"""Local servers that speak our channels' protocols, for tests and the demo.

All bind to 127.0.0.1 only, on a free port, and are context managers::

    with LocalSmtpServer() as smtp, LocalSmsGateway() as gw, LocalTwilio() as tw:
        SmtpChannel(smtp.host, smtp.port); HttpSmsGateway(gw.base_url, gw.api_key)
        TwilioChannel(tw.account_sid, tw.auth_token, "+1555...", base_url=tw.base_url)

Each can be told to misbehave for its next request(s), so that tests see real protocol
failures rather than mocks: SMTP refusals, 451, a connection dropped after DATA; HTTP error
statuses, 429 with Retry-After, and responses slower than the client's timeout.
"""
from __future__ import annotations

import base64
import json
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller

from engine.channels.http_gateway import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_webhook

LOCALHOST = "127.0.0.1"


# --- SMTP -----------------------------------------------------------------------------------

class ReceivedEmail:
    """One message as it arrived: the envelope, the raw bytes, and the parsed message, parsed
    on first use (``email.policy.default``). Parsing costs milliseconds a message; a server
    receiving thousands in a benchmark should not spend them on what nobody reads."""

    __slots__ = ("mail_from", "rcpt_tos", "raw", "_message")

    def __init__(self, mail_from: str, rcpt_tos: tuple[str, ...], raw: bytes):
        self.mail_from = mail_from
        self.rcpt_tos = rcpt_tos
        self.raw = raw
        self._message: EmailMessage | None = None

    @property
    def message(self) -> EmailMessage:
        if self._message is None:
            self._message = message_from_bytes(self.raw, policy=default_policy)  # type: ignore[assignment]
        return self._message  # type: ignore[return-value]


class _SmtpHandler:
    def __init__(self, owner: "LocalSmtpServer"):
        self.owner = owner

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.owner.refused:
            return "550 5.1.1 Recipient address rejected: user unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        owner = self.owner
        fault = owner._take_fault()
        received = ReceivedEmail(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.content)
        if fault == "drop":
            # The server has the whole message but the client never hears back: the case that
            # must come out as "unknown". We keep it aside, as a real MTA might have queued it.
            owner.dropped.append(received)
            server.transport.close()
            return "250 2.0.0 OK (never seen by the client)"
        if fault is not None:
            return fault
        owner.received.append(received)
        return f"250 2.0.0 OK queued as Q{len(owner.received)}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


class LocalSmtpServer:
    """An aiosmtpd server that keeps what arrives, parsed (``email.policy.default``)."""

    def __init__(self) -> None:
        self.host = LOCALHOST
        self.port = 0
        self.received: list[ReceivedEmail] = []
        self.dropped: list[ReceivedEmail] = []
        self.refused: set[str] = set()
        self._faults: deque[str] = deque()
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[EmailMessage]:
        return [r.message for r in self.received]

    def refuse_recipient(self, address: str) -> None:
        """Answer RCPT TO for this address with 550 (a permanent refusal)."""
        self.refused.add(address.lower())

    def fail_next_data(self, reply: str = "451 4.3.0 Temporary local problem, try again later",
                       times: int = 1) -> None:
        """Answer the final DATA reply of the next ``times`` messages with ``reply``."""
        with self._lock:
            self._faults.extend([reply] * times)

    def drop_next_after_data(self, times: int = 1) -> None:
        """Close the connection after the next message's content arrived, without replying."""
        with self._lock:
            self._faults.extend(["drop"] * times)

    def _take_fault(self) -> str | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def start(self) -> "LocalSmtpServer":
        # aiosmtpd's Controller checks readiness by connecting to its port, so it cannot use
        # port 0; take a free port and retry in the rare case another process grabs it first.
        for _ in range(5):
            self.port = _free_port()
            controller = Controller(_SmtpHandler(self), hostname=LOCALHOST, port=self.port)
            try:
                controller.start()
            except (OSError, RuntimeError):
                continue
            self._controller = controller
            return self
        raise RuntimeError("could not start the local SMTP server")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> "LocalSmtpServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- HTTP servers ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Fault:
    """What the next request gets instead of (or on top of) the normal answer."""

    status: int | None = None          # answer with this status, process nothing
    body: dict | None = None
    retry_after: str | None = None
    delay_seconds: float = 0.0         # process normally, then wait this long before answering


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # keep-alive answers are written in two pieces (headers, body)
    server: "_Server"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        owner = self.server.owner
        status, body, headers, delay = owner._handle(self.path, dict(self.headers.items()), raw)
        if delay:
            time.sleep(delay)
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up waiting (a timeout test): nothing to answer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a deliberately slow handler must not hold up stop()

    def __init__(self, owner: "_LocalHttpServer"):
        self.owner = owner
        super().__init__((LOCALHOST, 0), _Handler)

    def handle_error(self, request, client_address) -> None:  # client hang-ups are expected
        pass


class _LocalHttpServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self.request_count = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://{LOCALHOST}:{self._server.server_address[1]}"

    def queue(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def delay_next(self, seconds: float) -> None:
        """Process the next request, then answer only after ``seconds`` (for client timeouts)."""
        self.queue(Fault(delay_seconds=seconds))

    def _next_fault(self) -> Fault | None:
        return self._faults.popleft() if self._faults else None

    def _handle(self, path: str, headers: dict[str, str], raw: bytes):
        raise NotImplementedError

    def start(self):
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ci(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


class LocalSmsGateway(_LocalHttpServer):
    """The generic gateway API of ``engine.channels.http_gateway``, idempotent by key."""

    def __init__(self, api_key: str = "gw_test_key", webhook_secret: str = "whsec_test") -> None:
        super().__init__()
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.messages: list[dict[str, Any]] = []
        self._by_key: dict[str, tuple[int, dict]] = {}

    def fail_next(self, status: int, code: str = "error", message: str = "simulated failure") -> None:
        self.queue(Fault(status=status, body={"error": {"code": code, "message": message}}))

    def rate_limit_next(self, retry_after: float | str = 1) -> None:
        self.queue(Fault(status=429, retry_after=str(retry_after),
                         body={"error": {"code": "rate_limited", "message": "slow down"}}))

    def _handle(self, path, headers, raw):
        with self._lock:
            self.request_count += 1
            if path.rstrip("/") != "/v1/messages":
                return 404, {"error": {"code": "not_found", "message": path}}, {}, 0
            if _ci(headers, "Authorization") != f"Bearer {self.api_key}":
                return 401, {"error": {"code": "unauthorized", "message": "bad api key"}}, {}, 0
            fault = self._next_fault()
            if fault is not None and fault.status is not None:
                extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return fault.status, fault.body or {}, extra, 0
            delay = fault.delay_seconds if fault is not None else 0
            key = _ci(headers, "Idempotency-Key")
            if key and key in self._by_key:
                # A repeated key gets the first answer and sends nothing new.
                status, body = self._by_key[key]
                return status, body, {"Idempotent-Replayed": "true"}, delay
            try:
                req = json.loads(raw.decode("utf-8"))
                to, text = req["to"], req["text"]
            except (ValueError, KeyError, TypeError):
                return 422, {"error": {"code": "invalid_request", "message": "to and text required"}}, {}, 0
            msg = {"id": f"gw_{secrets.token_hex(8)}", "to": to, "from": req.get("from"),
                   "text": text, "media_urls": list(req.get("media_urls") or []),
                   "idempotency_key": key, "status": "queued"}
            self.messages.append(msg)
            body = {"id": msg["id"], "status": "queued"}
            if key:
                self._by_key[key] = (201, body)
            return 201, body, {}, delay

    def signed_webhook(self, body: dict, *, at: datetime | None = None) -> tuple[bytes, dict[str, str]]:
        """A webhook body and headers as this gateway would post them (for tests and demo)."""
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        ts = int((at or datetime.now(timezone.utc)).timestamp())
        return raw, {SIGNATURE_HEADER: sign_webhook(self.webhook_secret, raw, ts),
                     TIMESTAMP_HEADER: str(ts), "Content-Type": "application/json"}


class LocalTwilio(_LocalHttpServer):
    """The subset of Twilio's REST API we use: creating a Message."""

    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "test_auth_token") -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: list[dict[str, Any]] = []

    def fail_next(self, status: int, code: int, message: str = "simulated failure",
                  retry_after: str | None = None) -> None:
        """Answer with Twilio's error JSON, e.g. (400, 21211) or (429, 20429) or (500, 20500)."""
        self.queue(Fault(status=status, retry_after=retry_after, body={
            "code": code, "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}))

    def _handle(self, path, headers, raw):
        with self._lock:
            self.request_count += 1
            expected_path = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
            if path != expected_path:
                return 404, {"code": 20404, "message": "The requested resource was not found",
                             "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404}, {}, 0
            expected_auth = "Basic " + base64.b64encode(
                f"{self.account_sid}:{self.auth_token}".encode()).decode()
            if _ci(headers, "Authorization") != expected_auth:
                return 401, {"code": 20003, "message": "Authenticate",
                             "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}, {}, 0
            fault = self._next_fault()
            if fault is not None and fault.status is not None:
                extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return fault.status, fault.body or {}, extra, 0
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
            to, from_, body = (form.get(k, [None])[0] for k in ("To", "From", "Body"))
            media = form.get("MediaUrl", [])
            if not to or not from_ or (body is None and not media):
                return 400, {"code": 21604, "message": "A 'To', 'From' and 'Body' or 'MediaUrl' "
                             "are required", "more_info": "https://www.twilio.com/docs/errors/21604",
                             "status": 400}, {}, 0
            sid = "SM" + secrets.token_hex(16)
            now = format_datetime(datetime.now(timezone.utc))
            resource = {
                "account_sid": self.account_sid, "api_version": "2010-04-01", "body": body or "",
                "date_created": now, "date_sent": None, "date_updated": now,
                "direction": "outbound-api", "error_code": None, "error_message": None,
                "from": from_, "messaging_service_sid": None, "num_media": str(len(media)),
                "num_segments": "1", "price": None, "price_unit": "USD", "sid": sid,
                "status": "queued", "to": to,
                "subresource_uris": {"media": f"/2010-04-01/Accounts/{self.account_sid}"
                                              f"/Messages/{sid}/Media.json"},
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            }
            self.messages.append({**resource, "media_urls": media,
                                  "status_callback": form.get("StatusCallback", [None])[0]})
            return 201, resource, {}, fault.delay_seconds if fault is not None else 0


# --- a local server in its own process ------------------------------------------------------

class OutOfProcessServer:
    """``LocalSmtpServer`` or ``LocalSmsGateway`` run in a child process, as a real server would
    be: in-process, its threads take this process's GIL from the dispatcher it serves (an SMTP
    exchange is four round trips, each waiting for the other thread's turn). For benchmarks::

        with OutOfProcessServer("smtp") as smtp:   # or "sms"
            SmtpChannel(smtp.host, smtp.port)       # HttpSmsGateway(gw.base_url, gw.api_key)
        smtp.counts  # {"received": ..., "distinct": ...} reported by the child when it stopped

    The child prints one JSON line with its address, serves until its stdin closes, then prints
    what it received (messages, and distinct Message-IDs or idempotency keys)."""

    def __init__(self, kind: str) -> None:
        if kind not in ("smtp", "sms"):
            raise ValueError(f"kind is smtp or sms, not {kind!r}")
        self.kind = kind
        self.host = LOCALHOST
        self.port = 0
        self.base_url = ""
        self.api_key = ""
        self.counts: dict[str, int] = {}
        self._proc: Any = None

    def start(self) -> "OutOfProcessServer":
        import subprocess
        import sys
        from pathlib import Path

        root = Path(__file__).resolve().parents[2]
        self._proc = subprocess.Popen([sys.executable, "-m", "engine.channels.testing", self.kind], cwd=root,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait()
            raise RuntimeError(f"the local {self.kind} server process did not start")
        info = json.loads(line)
        self.port, self.base_url, self.api_key = info["port"], info.get("base_url", ""), info.get("api_key", "")
        return self

    def stop(self) -> dict[str, int]:
        if self._proc is not None:
            out, _ = self._proc.communicate(timeout=60)  # closes stdin: the child reports and exits
            self.counts = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
            self._proc = None
        return self.counts

    def __enter__(self) -> "OutOfProcessServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve_in_this_process(kind: str) -> None:
    import re
    import sys

    server = LocalSmtpServer() if kind == "smtp" else LocalSmsGateway()
    with server:
        if kind == "smtp":
            info = {"port": server.port}
        else:
            info = {"port": server._server.server_address[1], "base_url": server.base_url, "api_key": server.api_key}
        print(json.dumps(info), flush=True)
        sys.stdin.read()  # until the parent closes our stdin
    if kind == "smtp":
        ids = [re.search(rb"(?im)^message-id:\s*(\S+)", r.raw) for r in server.received]
        counts = {"received": len(server.received), "distinct": len({m.group(1) for m in ids if m})}
    else:
        counts = {"received": len(server.messages), "distinct": len({m["idempotency_key"] for m in server.messages}),
                  "requests": server.request_count}
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    import sys

    _serve_in_this_process(sys.argv[1])
