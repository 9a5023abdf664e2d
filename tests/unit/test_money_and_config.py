from datetime import datetime, timedelta, timezone

import pytest

from engine.core.clock import FrozenClock
from engine.core.config import ConfigError, Settings
from engine.core.money import CurrencyError, Money, apply_rate_bp, parse_decimal_to_minor
from engine.core.security import api_key_matches, hash_api_key, new_api_key, split_api_key


def test_money_refuses_floats_and_mixed_currencies():
    with pytest.raises(TypeError):
        Money(12.5, "USD")
    with pytest.raises(CurrencyError):
        Money(1, "USD") + Money(1, "EUR")
    assert (Money(1050, "USD") - Money(50, "USD")).format() == "USD 10.00"
    assert Money(1200, "JPY").format() == "JPY 1200"
    assert Money(-5, "KWD").format() == "KWD -0.005"


@pytest.mark.parametrize("amount, rate, expected", [(10_000, 800, 800), (1, 5000, 1), (1, 4999, 0), (-1, 5000, -1), (12345, 800, 988)])
def test_rate_rounding_is_half_up_and_symmetric(amount, rate, expected):
    assert apply_rate_bp(amount, rate) == expected
    assert apply_rate_bp(-amount, rate) == -expected


def test_decimal_parsing_is_exact():
    assert parse_decimal_to_minor("12.50", "USD") == 1250
    assert parse_decimal_to_minor("1200", "JPY") == 1200
    with pytest.raises(ValueError):
        parse_decimal_to_minor("12.505", "USD")
    with pytest.raises(ValueError):
        parse_decimal_to_minor("12.5", "JPY")


def test_settings_from_env_and_errors_name_the_variable():
    s = Settings.from_env({"DATABASE_URL": "postgresql+psycopg://u@h/db", "API_MAX_RECORDS": "10"})
    assert s.database_url.startswith("postgresql") and s.api_max_records == 10
    assert Settings.from_env({}).database_url.endswith("var/engine.db")
    with pytest.raises(ConfigError, match="API_MAX_RECORDS"):
        Settings.from_env({"API_MAX_RECORDS": "ten"})
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env({"ENGINE_ENV": "production"})
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        Settings.from_env({"DATABASE_URL": "mysql://x"})
    with pytest.raises(ConfigError, match="platform cap"):
        Settings.from_env({"DEFAULT_COMMISSION_RATE_BP": "801"})
    with pytest.raises(ConfigError, match="SIGNING_SECRET"):
        Settings.from_env({"SIGNING_SECRET": "short"})


def test_frozen_clock_refuses_naive_and_moves_on_demand():
    with pytest.raises(ValueError):
        FrozenClock(datetime(2026, 1, 1))
    c = FrozenClock(datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert c.advance(timedelta(hours=1)) == datetime(2026, 1, 1, 1, tzinfo=timezone.utc)


def test_api_keys_are_stored_hashed_and_checked():
    key, lookup, stored = new_api_key()
    assert split_api_key(key) == lookup and key not in stored
    assert api_key_matches(key, stored) and stored == hash_api_key(key)
    assert not api_key_matches(key + "x", stored)
    assert split_api_key("garbage") is None
