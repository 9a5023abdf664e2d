"""What a customer's SMS reply asks for (pure)."""
from __future__ import annotations

import pytest

from engine.webhooks.rules import (
    OPT_IN,
    OPT_OUT,
    normalise_phone,
    normalise_reply,
    reply_intent,
)


@pytest.mark.parametrize("text", [
    "STOP", "stop", "Stop", "  STOP  ", "STOP.", "STOP!", "stop!!!", "\"STOP\"", "(stop)", "STOP\n",
    "UNSUBSCRIBE", "unsubscribe.", "TD", "td", "Td", "退订", " 退订 ", "退订。", "【退订】", "“退订”", "退订！",
    "STOPALL", "END", "CANCEL", "QUIT", "OptOut", "REVOKE",
    "ＳＴＯＰ",           # full-width letters (NFKC)
    "ｔｄ",
    "STOP 🙏", "✋stop",  # symbols and emoji around it
    "\u200bSTOP\u200b",   # zero-width spaces
])
def test_opt_out_keywords(text):
    assert reply_intent(text) == OPT_OUT


@pytest.mark.parametrize("text", ["START", "start", "Start.", " UNSTOP ", "ＳＴＡＲＴ", "start!"])
def test_opt_in_keywords(text):
    assert reply_intent(text) == OPT_IN


@pytest.mark.parametrize("text", [
    None, "", "   ", "?", "Thanks!", "stop sending me these", "please stop", "STOP STOP", "S T O P",
    "stopped", "nonstop", "TDX", "退订了吗", "退", "yes", "OK", "restart", "starting", "unsubscribe me",
])
def test_everything_else_changes_nothing(text):
    assert reply_intent(text) is None


def test_normalise_reply_keeps_inner_text():
    assert normalise_reply("  Hello, World!  ") == "hello, world"
    assert normalise_reply("ＴＤ。") == "td"


@pytest.mark.parametrize("raw, expected", [
    ("+14155550123", "+14155550123"),
    ("+1 (415) 555-0123", "+14155550123"),
    ("+1.415.555.0123", "+14155550123"),
    ("0086 138 0013 8000", "+8613800138000"),
    ("106900001234", "106900001234"),
    ("＋８６１３８００１３８０００", "+8613800138000"),
    ("", ""),
    (None, ""),
])
def test_phone_numbers_compare_without_formatting(raw, expected):
    assert normalise_phone(raw) == expected
