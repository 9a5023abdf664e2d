"""Billing's pure rules: commission maths, periods, invoice lines (no database)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.rules import (
    KIND_ORDER, EntryGroup, billing_period, cap_deduction, entry_amount, invoice_lines, order_commission,
    payment_status, period_of, periods_from,
)


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=8), st.integers(0, 800))
def test_entries_telescope_to_the_commission_of_the_current_gmv(gmvs, rate):
    """However many changes an order has, its entries add up to its commission rounded once."""
    total, before = 0, 0
    for after in gmvs:
        total += entry_amount(after, after - before, rate)
        before = after
    assert total == order_commission(gmvs[-1], rate)
    assert 0 <= total <= (gmvs[-1] * 800 + 5000) // 10000


groups = st.lists(st.builds(EntryGroup, line_type=st.sampled_from(["commission", "reversal", "adjustment"]),
                            kind=st.sampled_from(list(KIND_ORDER)), orders=st.integers(0, 50),
                            gmv=st.integers(-10**6, 10**6), amount=st.integers(-10**5, 10**5)),
                  max_size=9, unique_by=lambda g: (g.line_type, g.kind))


@given(groups, st.one_of(st.none(), st.integers(0, 10**5)))
def test_invoice_lines_carry_every_group_once_and_the_cap_only_when_it_binds(gs, cap):
    lines = invoice_lines(gs, cap)
    body = [line for line in lines if line.line_type != "period_cap"]
    assert sum(line.amount for line in body) == sum(g.amount for g in gs)
    assert sum(line.order_count for line in body if line.line_type != "adjustment") == \
        sum(g.orders for g in gs if g.line_type != "adjustment")
    kinds = [line.kind for line in body if line.line_type == "commission"]
    assert kinds == [k for k in KIND_ORDER if k in kinds]          # printed in a fixed order
    assert [line.line_type for line in body].count("reversal") <= 1
    commission = sum(line.amount for line in body if line.line_type == "commission")
    capped = [line for line in lines if line.line_type == "period_cap"]
    if cap is not None and commission > cap:
        assert lines[-1] is capped[0] and commission + capped[0].amount == cap
    else:
        assert capped == []
    assert cap_deduction(commission, cap) == sum(line.amount for line in capped)


def test_periods_are_merchant_local_months():
    p = billing_period("2026-11", "America/New_York")
    assert p.start == datetime(2026, 11, 1, 4, tzinfo=timezone.utc)        # EDT until Nov 1, 2 a.m.
    assert p.end == datetime(2026, 12, 1, 5, tzinfo=timezone.utc)          # EST
    assert period_of(datetime(2026, 12, 1, 4, 59, tzinfo=timezone.utc), "America/New_York") == "2026-11"
    assert billing_period("2026-12", "Asia/Tokyo").end == datetime(2026, 12, 31, 15, tzinfo=timezone.utc)
    assert periods_from("2026-11", "2027-02") == ["2026-11", "2026-12", "2027-01", "2027-02"]
    assert periods_from("2027-01", "2026-12") == []
    with pytest.raises(ValueError, match="YYYY-MM"):
        billing_period("2026-13", "UTC")


def test_payment_status_of_zero_and_negative_invoices():
    assert (payment_status(1), payment_status(0), payment_status(-1)) == ("unpaid", "paid", "credited")
