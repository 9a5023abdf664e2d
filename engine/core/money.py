"""Money is an integer number of minor units plus an ISO 4217 currency code.

No floats, anywhere near money. The exponent table lists the currencies the engine accepts; a
currency missing from it is refused rather than guessed.
"""
from __future__ import annotations

from dataclasses import dataclass

# ISO 4217 minor-unit exponents for the currencies we accept.
CURRENCY_EXPONENTS: dict[str, int] = {
    "USD": 2, "EUR": 2, "GBP": 2, "CNY": 2, "HKD": 2, "TWD": 2, "SGD": 2, "AUD": 2, "CAD": 2,
    "CHF": 2, "SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2, "MXN": 2, "BRL": 2, "INR": 2, "NZD": 2,
    "THB": 2, "MYR": 2, "PHP": 2, "IDR": 2, "ZAR": 2,
    "JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0,
    "KWD": 3, "BHD": 3, "JOD": 3, "OMR": 3, "TND": 3,
}


class CurrencyError(ValueError):
    pass


def check_currency(code: object) -> str:
    if not isinstance(code, str) or code not in CURRENCY_EXPONENTS:
        raise CurrencyError(f"unknown or unsupported currency {code!r} (use an ISO 4217 code such as USD, CNY, JPY)")
    return code


def exponent(currency: str) -> int:
    return CURRENCY_EXPONENTS[check_currency(currency)]


@dataclass(frozen=True, slots=True)
class Money:
    amount: int  # minor units
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError(f"Money amount must be an int of minor units, got {type(self.amount).__name__}")
        check_currency(self.currency)

    def __add__(self, other: "Money") -> "Money":
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: "Money") -> "Money":
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> "Money":
        return Money(-self.amount, self.currency)

    def _same(self, other: "Money") -> None:
        if not isinstance(other, Money) or other.currency != self.currency:
            raise CurrencyError(f"cannot combine {self.currency} with {getattr(other, 'currency', other)!r}")

    def format(self) -> str:
        """Human text such as ``USD 12.50`` or ``JPY 1200``; for display only."""
        exp = exponent(self.currency)
        sign = "-" if self.amount < 0 else ""
        whole, frac = divmod(abs(self.amount), 10**exp) if exp else (abs(self.amount), 0)
        return f"{self.currency} {sign}{whole}" + (f".{frac:0{exp}d}" if exp else "")

    def __str__(self) -> str:
        return self.format()


def apply_rate_bp(amount_minor: int, rate_bp: int) -> int:
    """``amount × rate`` in basis points, rounded half-up to the minor unit, once.

    Half-up on the magnitude, so a reversal of a commission is the exact negative of it.
    """
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError("amount must be int minor units")
    if isinstance(rate_bp, bool) or not isinstance(rate_bp, int):
        raise TypeError("rate must be int basis points")
    sign = -1 if amount_minor < 0 else 1
    q, r = divmod(abs(amount_minor) * rate_bp, 10_000)
    if r * 2 >= 10_000:
        q += 1
    return sign * q


def parse_decimal_to_minor(text: str, currency: str) -> int:
    """Exact conversion of a decimal string ("12.50") to minor units; refuses extra precision."""
    exp = exponent(currency)
    s = text.strip()
    neg = s.startswith("-")
    if neg or s.startswith("+"):
        s = s[1:]
    whole, _, frac = s.partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(f"not a decimal amount: {text!r}")
    if len(frac.rstrip("0")) > exp:
        raise ValueError(f"{text!r} has more decimals than {currency} allows ({exp})")
    value = int(whole) * 10**exp + (int(frac.ljust(exp, "0")[:exp]) if exp else 0)
    return -value if neg else value
