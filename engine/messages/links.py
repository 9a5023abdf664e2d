"""Tracked links and unsubscribe links.

Every http(s) link of a message becomes ``https://<tracking_host>/c/<token>``; the token (signed,
purpose "click") carries the send's public id, the link's position in its body and the target,
so a click can be attributed to its send and redirected without a database lookup, and a forged
or edited token is refused instead of becoming an open redirect.

Left untouched: ``mailto:`` / ``tel:`` / other schemes, links already on the tracking host (the
unsubscribe link, or a body rewritten twice), and any URL the caller lists in ``keep``.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from urllib.parse import quote, urlsplit, urlunsplit

from engine.core.signing import BadSignature, sign, verify

CLICK = "click"
UNSUBSCRIBE = "unsubscribe"

# Plain text: a URL is the RFC 3986 character set after http(s)://. Being ASCII-only, it stops at
# Chinese text or full-width punctuation written right after a link ("点击https://x.cn/a查看"),
# which is common in Chinese SMS. Non-ASCII URLs are percent-encoded before rendering
# (``to_uri``) so they stay whole.
_TEXT_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+", re.IGNORECASE)
# Sentence punctuation right after a link belongs to the sentence, not to the URL.
_TRAILING = ".,;:!?'"
_PAIRS = {")": "(", "]": "["}


# A token as ``signing`` makes it: <payload>.<issued>.<22-character MAC>. Phones' link detectors
# often run a link on into the text after it ("…/c/TOKEN查看", "…/c/TOKEN."); the MAC's fixed
# length lets the endpoints drop such a tail instead of refusing a genuine click.
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[0-9a-z]+\.[A-Za-z0-9_-]{22}")


def _token(token: str) -> str:
    m = _TOKEN.match(token) if isinstance(token, str) else None
    if not m:
        raise BadSignature("malformed token")
    return m.group(0)


@dataclass(frozen=True, slots=True)
class Click:
    send_id: str | int
    position: int
    url: str


def to_uri(url: str) -> str:
    """An IRI (a URL with non-ASCII characters, e.g. a Chinese product path) as a plain URI:
    the host in IDNA, the rest percent-encoded as UTF-8. ASCII URLs come back unchanged."""
    if url.isascii():
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = parts.netloc
    if host and not host.isascii():
        netloc = netloc.replace(host, host.encode("idna").decode("ascii"))
    safe = "/:@!$&'()*+,;=-._~%?#[]"
    return urlunsplit((parts.scheme, netloc, quote(parts.path, safe=safe), quote(parts.query, safe=safe),
                       quote(parts.fragment, safe=safe)))


def _is_web(url: str) -> bool:
    return url[:8].lower().startswith(("http://", "https://"))


class LinkRewriter:
    """Rewrites the links of one send's bodies; positions run on across bodies (HTML, then text),
    so every link of the send has its own position."""

    def __init__(self, *, send_id: str | int, tracking_host: str, secret: bytes, keep: set[str] | frozenset[str] = frozenset(),
                 now: datetime | None = None):
        self.send_id = send_id
        self.tracking_host = tracking_host.lower()
        self.secret = secret
        self.keep = frozenset(keep)
        self.now = now
        self.position = 0
        self.targets: list[str] = []

    def _skip(self, url: str) -> bool:
        if not _is_web(url) or url in self.keep:
            return True
        try:
            return (urlsplit(url).hostname or "") == self.tracking_host
        except ValueError:  # malformed (e.g. a bad IPv6 literal): leave it as the author wrote it
            return True

    def track(self, url: str) -> str:
        """The tracking URL for ``url`` (or ``url`` itself when it is not to be tracked)."""
        if self._skip(url):
            return url
        target = to_uri(url)
        token = sign({"s": self.send_id, "i": self.position, "u": target}, self.secret, purpose=CLICK, now=self.now)
        self.position += 1
        self.targets.append(target)
        return f"https://{self.tracking_host}/c/{token}"

    def text(self, body: str) -> str:
        """Plain text or SMS: every http(s) URL rewritten."""
        return _TEXT_URL.sub(lambda m: self._text_match(m.group(0)), body)

    def _text_match(self, url: str) -> str:
        tail = ""
        while url:
            last = url[-1]
            if last in _TRAILING or (last in _PAIRS and url.count(last) > url.count(_PAIRS[last])):
                url, tail = url[:-1], last + tail
            else:
                break
        try:
            real = bool(urlsplit(url).hostname)
        except ValueError:  # e.g. a broken IPv6 literal: not a link we can track
            real = False
        return self.track(url) + tail if real else url + tail

    def html(self, body: str) -> str:
        """HTML: the href of every <a> and <area> rewritten. Only those start tags are rebuilt;
        every other byte of the document (comments, scripts, styles, spacing) is kept as is."""
        parser = _HrefParser(self)
        parser.feed(body)
        parser.close()
        line_starts = [0]
        for i, ch in enumerate(body):
            if ch == "\n":
                line_starts.append(i + 1)
        out, last = [], 0
        for (line, col), raw, rebuilt in parser.edits:
            start = line_starts[line - 1] + col
            out.append(body[last:start])
            out.append(rebuilt)
            last = start + len(raw)
        out.append(body[last:])
        return "".join(out)


class _HrefParser(HTMLParser):
    def __init__(self, rewriter: LinkRewriter):
        super().__init__(convert_charrefs=True)
        self.rewriter = rewriter
        self.edits: list[tuple[tuple[int, int], str, str]] = []

    def handle_starttag(self, tag, attrs):
        self._tag(tag, attrs, "")

    def handle_startendtag(self, tag, attrs):
        self._tag(tag, attrs, " /")

    def _tag(self, tag, attrs, close):
        if tag not in ("a", "area"):
            return
        # The parser hands over attribute values with character references already decoded
        # ("?a=1&amp;b=2" -> "?a=1&b=2"): the real target. They are re-escaped when rebuilt.
        new = [(k, self.rewriter.track(v.strip()) if k == "href" and v else v) for k, v in attrs]
        if new == attrs:
            return
        raw = self.get_starttag_text()
        parts = "".join(f" {k}" if v is None else f' {k}="{html.escape(v, quote=True)}"' for k, v in new)
        self.edits.append((self.getpos(), raw, f"<{tag}{parts}{close}>"))


def read_click(token: str, secret: bytes) -> Click:
    """The send, position and target of a click token; ``BadSignature`` if it is not ours."""
    data = verify(_token(token), secret, purpose=CLICK)
    send_id, position, url = data.get("s"), data.get("i"), data.get("u")
    if not isinstance(send_id, (str, int)) or not isinstance(position, int) or not isinstance(url, str) or not _is_web(url):
        # Signed by us, so this is a bug rather than an attack; still, never redirect blindly.
        raise BadSignature("click token has an unexpected payload")
    return Click(send_id, position, url)


def resolve_click(token: str, secret: bytes) -> tuple[str | int, str]:
    """(send id, target URL) of a click token, for the redirect endpoint."""
    click = read_click(token, secret)
    return click.send_id, click.url


def unsubscribe_url(host: str, send_id: str | int, customer_key: str | int, secret: bytes, *,
                    now: datetime | None = None) -> str:
    """The one-click unsubscribe link of a send. It never expires: an opt-out must keep working
    however old the message is."""
    token = sign({"s": send_id, "c": customer_key}, secret, purpose=UNSUBSCRIBE, now=now)
    return f"https://{host.lower()}/u/{token}"


def read_unsubscribe(token: str, secret: bytes) -> tuple[str | int, str | int]:
    """(send id, customer key) of an unsubscribe token; ``BadSignature`` if it is not ours."""
    data = verify(_token(token), secret, purpose=UNSUBSCRIBE)
    if "s" not in data or "c" not in data:
        raise BadSignature("unsubscribe token has an unexpected payload")
    return data["s"], data["c"]


def list_unsubscribe_headers(url: str, mailto: str | None = None) -> dict[str, str]:
    """RFC 2369 + RFC 8058 headers. The HTTPS URL must come first-class: mail providers POST
    ``List-Unsubscribe=One-Click`` to it. (The sender must also DKIM-sign both headers.)"""
    if not url.startswith("https://"):
        raise ValueError("one-click unsubscribe needs an https URL (RFC 8058)")
    value = f"<{url}>" + (f", <mailto:{mailto}>" if mailto else "")
    return {"List-Unsubscribe": value, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
