"""Is this request a person clicking, or a machine looking at the link? (pure)

A tracked link is fetched by many machines before (or instead of) a person: chat apps and social
networks build link previews (Slack, WhatsApp, iMessage, Telegram, ...), mail security gateways
and Office apps open every link of a message to scan it, search engines crawl, and scripts test.
None of these is a shopper's interest, and a click is commission evidence, so they must not
count. They still get the redirect: a preview that shows the merchant's page is what the sender
wants, and refusing would only make scanners flag the message.

The rule, in order:
1. no user agent, or an empty one: not a person (every browser and in-app browser sends one);
2. a known preview / crawler / scanner / HTTP-library name (``KNOWN``), matched case-insensitively
   as a substring;
3. a generic marker: a word ending in "bot" followed by ``/ - ; )`` or the end ("Googlebot/2.1",
   "AdsBot-Google", "Slackbot-LinkExpanding"), "bot" as a word of its own, or "crawler", "spider",
   "preview", "headless", "slurp".

Deliberately NOT matched, because they are real people in in-app browsers: Facebook's and
Instagram's (``FBAN``, ``Instagram``), WeChat (``MicroMessenger``), LINE, Snapchat, Tumblr, the
Pinterest, LinkedIn and Twitter apps (their crawlers are ``Pinterestbot`` / ``Pinterest/0.x``,
``LinkedInBot``, ``Twitterbot``); and phones whose model name contains "bot" inside a word (``CUBOT``).

Scanners that pose as a desktop browser (Microsoft Defender Safe Links, some gateways) cannot be
told apart by user agent; the rule accepts that some of their fetches count (documented in
docs/tracking-and-webhooks.md).
"""
from __future__ import annotations

import re

# Lowercase substrings. Grouped by why the machine fetches the link.
KNOWN: tuple[str, ...] = (
    # link previews in chat and social apps
    "slackbot", "slack-imgproxy", "facebookexternalhit", "facebot", "twitterbot", "whatsapp",
    "telegrambot", "linkedinbot", "discordbot", "skypeuripreview", "pinterestbot", "pinterest/0.",
    "redditbot", "embedly", "iframely", "vkshare", "mastodon", "bitlybot", "outbrain",
    "quora link preview", "yahoo link preview",
    "google-pagerenderer", "googleimageproxy", "google-read-aloud",
    # search engines and SEO crawlers
    "googlebot", "google-inspectiontool", "adsbot", "bingbot", "bingpreview", "applebot",
    "duckduckbot", "yandexbot", "baiduspider", "sogou", "360spider", "yisouspider", "bytespider",
    "petalbot", "ahrefsbot", "semrushbot", "mj12bot", "dotbot", "seznambot", "qwantify",
    # mail security scanners and Office apps checking links before the person sees them
    "ms-office", "microsoft office", "msoffice", "barracuda", "mimecast", "proofpoint",
    # scripts and HTTP libraries (no person behind them)
    "python-requests", "python-urllib", "python-httpx", "aiohttp", "curl/", "wget/",
    "go-http-client", "java/", "okhttp", "libwww-perl", "axios/", "node-fetch", "undici",
    "apache-httpclient", "postmanruntime", "phantomjs", "scrapy",
)

_GENERIC = re.compile(
    r"[a-z]bot(?:[/\-;)]|$)"       # Googlebot/2.1, AdsBot-Google, Slackbot-LinkExpanding
    r"|\bbot\b"                     # "bot" as a word of its own
    r"|crawler|spider|preview|headless|slurp",
    re.IGNORECASE,
)

# Browsers announce speculative loads (prefetch / prerender) in one of these headers; a page
# loaded that way may never be seen by the person.
_PREFETCH = re.compile(r"prefetch|prerender|preview", re.IGNORECASE)


def is_bot(user_agent: str | None) -> bool:
    """True when the user agent is not a person's browser (see the module docstring)."""
    if user_agent is None:
        return True
    ua = user_agent.strip()
    if not ua:
        return True
    lowered = ua.lower()
    if any(name in lowered for name in KNOWN):
        return True
    return _GENERIC.search(ua) is not None


def is_prefetch(purpose: str | None) -> bool:
    """True for a speculative load: the value of ``Sec-Purpose``, ``Purpose`` or ``X-Moz``."""
    return bool(purpose) and _PREFETCH.search(purpose) is not None


def is_human_click(method: str, user_agent: str | None, purpose: str | None = None) -> bool:
    """Whether a request to a tracked link counts as a click: a GET (HEAD only checks that the
    link works), not announced as a prefetch, from a user agent that is not a machine."""
    return method.upper() == "GET" and not is_prefetch(purpose) and not is_bot(user_agent)
