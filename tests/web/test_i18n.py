"""Chinese and English: chosen from Accept-Language, switched by a cookie, every UI string
translated, money and dates formatted per locale from integer minor units."""
from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from babel.support import Translations

from engine.core.config import PROJECT_ROOT
from engine.web.i18n import ensure_compiled, format_bp, format_money, format_time
from tests.factories import make_merchant
from tests.web.web_helpers import csrf_token, login, make_user

PO = PROJECT_ROOT / "translations" / "zh" / "LC_MESSAGES" / "messages.po"


# ---- choosing the language

@pytest.mark.parametrize("header, expect", [
    ("zh-CN,zh;q=0.9,en;q=0.8", "登录"), ("zh-TW", "登录"), ("zh", "登录"),
    ("en-US,en;q=0.9", "Log in"), ("fr-FR", "Log in"), (None, "Log in"),
])
def test_language_follows_the_browser(client, header, expect):
    page = client.get("/login", headers={"Accept-Language": header} if header else {}).get_data(as_text=True)
    assert expect in page
    assert ('<html lang="zh-Hans">' in page) == (expect == "登录")


def test_the_switch_sets_a_cookie_that_beats_the_browser(client):
    token = csrf_token(client)
    r = client.post("/lang", data={"lang": "zh", "next": "/login", "csrf_token": token},
                    headers={"Accept-Language": "en"})
    assert r.status_code == 302 and r.location == "/login"
    cookie = next(h for h in r.headers.getlist("Set-Cookie") if h.startswith("lang="))
    assert cookie.startswith("lang=zh;") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "登录" in client.get("/login", headers={"Accept-Language": "en"}).get_data(as_text=True)
    client.post("/lang", data={"lang": "en", "csrf_token": token}, headers={"Accept-Language": "zh-CN"})
    assert "Log in" in client.get("/login", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)


def test_an_unknown_language_is_ignored(client):
    token = csrf_token(client)
    r = client.post("/lang", data={"lang": "xx", "csrf_token": token})
    assert not any(h.startswith("lang=") for h in r.headers.getlist("Set-Cookie"))


def test_pages_after_login_are_translated_with_labels_and_money(client, sessions, clock):
    mid, _, _ = make_merchant(sessions, clock, currency="CNY", tz="Asia/Shanghai")
    make_user(sessions, clock, "op@example.test", "operator")
    login(client, "op@example.test")
    client.set_cookie("lang", "zh")
    page = client.get("/operator/merchants").get_data(as_text=True)
    assert "商户" in page and "最近 7 天发送数" in page and "退出登录" in page and "English" in page
    assert "Merchants" not in page


def test_error_pages_are_translated(client, sessions, clock):
    make_user(sessions, clock, "fin@example.test", "finance")
    login(client, "fin@example.test")
    client.set_cookie("lang", "zh")
    r = client.get("/operator/merchants")
    assert r.status_code == 403 and "无权访问" in r.get_data(as_text=True)


# ---- formatting

@pytest.mark.parametrize("amount, currency, en, zh", [
    (1250, "USD", "$12.50", "US$12.50"),
    (1250, "CNY", "CN¥12.50", "¥12.50"),
    (1200, "JPY", "¥1,200", "JP¥1,200"),          # no minor unit
    (-1234567, "KWD", "-KWD1,234.567", "-KWD1,234.567"),  # three
    (0, "USD", "$0.00", "US$0.00"),
])
def test_money_from_minor_units_per_locale(amount, currency, en, zh):
    assert format_money(amount, currency, "en") == en
    assert format_money(amount, currency, "zh") == zh


def test_money_refuses_floats():
    with pytest.raises(TypeError):
        format_money(12.5, "USD", "en")


def test_rates_and_times_per_locale():
    assert format_bp(800, "en") == "8.00%" and format_bp(1250, "zh") == "12.50%"
    at = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)
    assert format_time(at, "Asia/Shanghai", locale="zh") == "2026年11月2日 20:00:00"
    assert format_time(at, "America/New_York", locale="en") == "Nov 2, 2026, 7:00:00\u202fAM"


# ---- the catalog

def _extracted_ids() -> set[str]:
    with open(PROJECT_ROOT / "babel.cfg") as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
    return {msg if isinstance(msg, str) else msg[0]
            for _file, _line, msg, _comments, _context in extract_from_dir(str(PROJECT_ROOT), method_map, options_map, keywords=keywords)}


def test_every_ui_string_has_a_chinese_translation():
    with open(PO, "rb") as f:
        catalog = read_po(f)
    translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
    missing = sorted(_extracted_ids() - translated)
    assert not missing, ("untranslated UI strings (run `make i18n`, then translate them in "
                         f"{PO.relative_to(PROJECT_ROOT)}):\n" + "\n".join(missing))


def test_catalogs_compile_from_a_fresh_clone(tmp_path):
    # A fresh clone has only the .po (the .mo is not committed): compiling at start makes it.
    shutil.copytree(PROJECT_ROOT / "translations", tmp_path / "translations", ignore=shutil.ignore_patterns("*.mo"))
    out = ensure_compiled(tmp_path / "translations")
    mo = Path(out) / "zh" / "LC_MESSAGES" / "messages.mo"
    assert mo.is_file()
    assert Translations.load(str(out), ["zh"]).gettext("Log in") == "登录"
