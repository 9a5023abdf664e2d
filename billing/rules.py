"""Commission maths and invoice rules, pure (no database, no Stripe).

The ledger posts these in SQL for speed (``billing.ledger``); a test holds the SQL equal to
these functions.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from engine.core.money import apply_rate_bp

ENTRY_OF_CHANGE = {"attribute": "accrual", "refund": "reduction", "withdraw": "withdrawal"}


def order_commission(gmv: int, rate_bp: int) -> int:
    """An order's commission: its attributed GMV times the rate, rounded half-up once."""
    if gmv < 0:
        raise ValueError("attributed GMV is never negative")
    return apply_rate_bp(gmv, rate_bp)


def entry_amount(gmv_after: int, gmv_delta: int, rate_bp: int) -> int:
    """The ledger amount of one change of an order's attributed GMV: the change in the order's
    commission. Summing an order's entries gives exactly the commission of its current GMV,
    rounded once, whatever the number of refunds."""
    return order_commission(gmv_after, rate_bp) - order_commission(gmv_after - gmv_delta, rate_bp)


def rate_for(kind: str, *, repurchase_bp: int, recovery_bp: int, first_purchase_bp: int) -> int:
    return {"repurchase": repurchase_bp, "recovery": recovery_bp, "first_purchase": first_purchase_bp}[kind]


def billable_at(entry_type: str, paid_at: datetime, lock_days: int, effective_at: datetime) -> datetime:
    """When an entry may be invoiced. An accrual after the lock (return window) from payment.
    A reduction or withdrawal at the same moment as the accrual if it happened before the lock
    ended (it then nets with the accrual on one invoice), else when it happened (the refund's
    time; a withdrawal's is when attribution saw it): it then reverses commission already
    billable or invoiced, on the invoice of the month it happened in, or the next one made."""
    lock_end = paid_at + timedelta(days=lock_days)
    if entry_type == "accrual":
        return lock_end
    return max(lock_end, effective_at)


@dataclass(frozen=True)
class Period:
    key: str                 # "2026-10"
    start: datetime          # UTC
    end: datetime            # UTC, exclusive


def billing_period(key: str, tz: str) -> Period:
    """A calendar month in the merchant's timezone, as UTC bounds."""
    try:
        year, month = (int(p) for p in key.split("-"))
        if not 1 <= month <= 12 or len(key) != 7:
            raise ValueError
    except ValueError:
        raise ValueError(f"a billing period is written YYYY-MM, got {key!r}") from None
    zone = ZoneInfo(tz)
    start = datetime(year, month, 1, tzinfo=zone)
    ny, nm = (year + 1, 1) if month == 12 else (year, month + 1)
    end = datetime(ny, nm, 1, tzinfo=zone)
    return Period(key, start.astimezone(timezone.utc), end.astimezone(timezone.utc))


def period_of(moment: datetime, tz: str) -> str:
    local = moment.astimezone(ZoneInfo(tz))
    return f"{local.year:04d}-{local.month:02d}"


def previous_period(key: str) -> str:
    year, month = (int(p) for p in key.split("-"))
    return f"{year - 1:04d}-12" if month == 1 else f"{year:04d}-{month - 1:02d}"


def days_in(key: str) -> int:
    year, month = (int(p) for p in key.split("-"))
    return calendar.monthrange(year, month)[1]


def cap_deduction(commission_total: int, period_cap: int | None) -> int:
    """The negative line that brings a period's commission down to its cap (0 if it does not
    bind). Only commission lines count towards the cap: reversals of earlier invoices and
    finance's adjustments are outside it."""
    if period_cap is None or commission_total <= period_cap:
        return 0
    return period_cap - commission_total


def invoice_number(series: str, n: int) -> str:
    return f"{series}-{n:06d}"


# -- Invoice lines ---------------------------------------------------------------------------
KIND_ORDER = ("repurchase", "recovery", "first_purchase")
KIND_TEXT = {"repurchase": "Commission on repurchases", "recovery": "Commission on recovered orders",
             "first_purchase": "Commission on first purchases"}
REVERSAL_TEXT = "Reversal of commission invoiced earlier (refunds, corrections)"
ADJUSTMENT_TEXT = "Adjustments by finance"


@dataclass(frozen=True)
class EntryGroup:
    """A merchant's open entries of one line type ("commission", "reversal", "adjustment") and
    kind, summed: what the closing query returns per group."""
    line_type: str
    kind: str | None
    orders: int          # distinct orders
    gmv: int
    amount: int


@dataclass(frozen=True)
class Line:
    line_type: str
    kind: str | None
    description: str
    order_count: int
    gmv: int
    amount: int


def invoice_lines(groups: list[EntryGroup], period_cap: int | None) -> list[Line]:
    """The lines of one invoice, in their printed order: commission per kind (repurchase,
    recovery, first purchase), one reversal line, one adjustment line, then the period cap line
    if the cap binds. Every group lands on exactly one line except a commission group of an
    unknown kind, which lands on none (the closing check then refuses the invoice). Reversal
    order counts add up per kind: an order reversed under two kinds cannot happen (an order has
    one kind)."""
    lines: list[Line] = []
    by = {(g.line_type, g.kind): g for g in groups}
    for kind in KIND_ORDER:
        g = by.get(("commission", kind))
        if g:
            lines.append(Line("commission", kind, KIND_TEXT[kind], g.orders, g.gmv, g.amount))
    rev = [g for g in groups if g.line_type == "reversal"]
    if rev:
        lines.append(Line("reversal", None, REVERSAL_TEXT, sum(g.orders for g in rev), sum(g.gmv for g in rev),
                          sum(g.amount for g in rev)))
    adj = [g for g in groups if g.line_type == "adjustment"]
    if adj:
        lines.append(Line("adjustment", None, ADJUSTMENT_TEXT, 0, 0, sum(g.amount for g in adj)))
    cap = cap_deduction(sum(line.amount for line in lines if line.line_type == "commission"), period_cap)
    if cap:
        lines.append(Line("period_cap", None, f"Commission cap for the period ({period_cap} minor units)", 0, 0, cap))
    return lines


def periods_from(first: str, last: str) -> list[str]:
    """Period keys from ``first`` to ``last`` inclusive (empty if first is after last)."""
    keys = []
    y, m = (int(p) for p in first.split("-"))
    while (key := f"{y:04d}-{m:02d}") <= last:
        keys.append(key)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return keys


def payment_status(total: int) -> str:
    """Nothing to collect on a zero invoice; a negative one is a credit to the merchant."""
    return "unpaid" if total > 0 else ("paid" if total == 0 else "credited")
