"""Chinese and English: locale choice, catalog compilation, and locale-aware formatting of money
(from integer minor units), numbers, rates and times.

The language is the ``lang`` cookie set by the switch in the header if there is one, else the
best match of the browser's Accept-Language, else English.
"""
from __future__ import annotations

import os
import tempfile
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import dates as babel_dates, numbers as babel_numbers
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, request
from flask_babel import Babel, get_locale

from engine.core.config import PROJECT_ROOT
from engine.core.money import exponent

SUPPORTED = ("en", "zh")
LANG_COOKIE = "lang"
TRANSLATIONS_DIR = PROJECT_ROOT / "translations"


def select_locale() -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in SUPPORTED:
        return chosen
    return request.accept_languages.best_match(SUPPORTED, default="en")


def ensure_compiled(directory: Path = TRANSLATIONS_DIR) -> Path:
    """Compile each ``messages.po`` to ``messages.mo`` when the .mo is missing or older, so a fresh
    clone needs no manual step. Written atomically (several test workers may start at once); if
    the tree is read-only the catalogs are compiled into a temporary directory instead."""
    try:
        for po in directory.glob("*/LC_MESSAGES/messages.po"):
            _compile(po, po.with_suffix(".mo"))
        return directory
    except OSError:
        target = Path(tempfile.mkdtemp(prefix="engine-translations-"))
        for po in directory.glob("*/LC_MESSAGES/messages.po"):
            mo = target / po.relative_to(directory).with_suffix(".mo")
            mo.parent.mkdir(parents=True, exist_ok=True)
            _compile(po, mo)
        return target


def _compile(po: Path, mo: Path) -> None:
    if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
        return
    with po.open("rb") as f:
        catalog = read_po(f, locale=po.parent.parent.name)
    fd, tmp = tempfile.mkstemp(dir=mo.parent, suffix=".mo.tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            write_mo(out, catalog, use_fuzzy=False)
        os.replace(tmp, mo)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def locale_name() -> str:
    return str(get_locale() or "en")


def format_money(amount_minor: int | None, currency: str, locale: str | None = None) -> str:
    """An integer of minor units as money in the reader's locale: 1250 USD → $12.50 / US$12.50."""
    if amount_minor is None:
        return "—"
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError("money is formatted from int minor units")
    value = Decimal(amount_minor).scaleb(-exponent(currency))
    return babel_numbers.format_currency(value, currency, locale=locale or locale_name())


def format_number(value: int | float | None, locale: str | None = None) -> str:
    if value is None:
        return "—"
    return babel_numbers.format_decimal(value, locale=locale or locale_name())


def format_bp(bp: int | None, locale: str | None = None) -> str:
    """Basis points as a percentage: 800 → 8.00%."""
    if bp is None:
        return "—"
    return babel_numbers.format_percent(Decimal(bp).scaleb(-4), "#,##0.00%", locale=locale or locale_name())


def format_ratio(value: float | None, digits: int = 3, locale: str | None = None) -> str:
    if value is None:
        return "—"
    return babel_numbers.format_decimal(value, "#,##0." + "0" * digits, locale=locale or locale_name())


def format_time(value: datetime | None, tz: str = "UTC", fmt: str = "medium", locale: str | None = None) -> str:
    """A UTC instant shown in ``tz`` (the merchant's timezone where there is one)."""
    if value is None:
        return "—"
    return babel_dates.format_datetime(value, fmt, tzinfo=ZoneInfo(tz), locale=locale or locale_name())


def format_day(value: datetime | None, tz: str = "UTC", locale: str | None = None) -> str:
    if value is None:
        return "—"
    return babel_dates.format_date(value.astimezone(ZoneInfo(tz)).date(), "medium", locale=locale or locale_name())


def init_i18n(app: Flask) -> None:
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(ensure_compiled())
    app.config["BABEL_DEFAULT_LOCALE"] = "en"
    Babel(app, locale_selector=select_locale)
    app.jinja_env.filters.update(money=format_money, number=format_number, bp=format_bp, ratio=format_ratio,
                                 time=format_time, day=format_day)
    app.jinja_env.globals.update(locale_name=locale_name, SUPPORTED_LANGUAGES=SUPPORTED)
