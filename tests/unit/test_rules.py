"""Pure validation rules: no database."""
from datetime import datetime, timezone

import pytest

from engine.ingest.rules import (
    check_record, compare_version, consent_action_for_keyword, planned_at_problem, resolve_consent,
    resolve_declared_consent,
)
from engine.ingest.schema import CONSENT_EVENT, CUSTOMER, ORDER, PROMOTION, PROMOTION_KINDS, REFUND
from tests.factories import order, promotion

UTC = timezone.utc


def fields(problems):
    return {f for f, _ in problems}


def test_good_order_is_cleaned_to_python_values():
    clean, problems = check_record(ORDER, order(paid_at="2026-10-01T18:30:00+08:00"), "USD")
    assert problems == []
    assert clean["placed_at"] == datetime(2026, 10, 1, 10, 0, tzinfo=UTC)
    assert clean["paid_at"] == datetime(2026, 10, 1, 10, 30, tzinfo=UTC)
    assert clean["discount_amount"] == 0
    # Without updated_at, the version is the latest status change.
    assert clean["updated_at"] == clean["paid_at"]


@pytest.mark.parametrize("value, reason", [
    (12.5, "must be an integer number of minor units, got 12.5"),
    (12.0, "must be an integer number of minor units, got 12.0"),
    ("1250", "must be an integer number of minor units, got '1250'"),
    (True, "must be an integer number of minor units, got True"),
    (-1, "must not be negative, got -1"),
])
def test_amounts_must_be_non_negative_integers(value, reason):
    rec = order()
    rec["lines"][0]["amount"] = value
    _, problems = check_record(ORDER, rec, "USD")
    assert ("lines[0].amount", reason) in problems


def test_timestamp_without_timezone_is_refused_with_advice():
    _, problems = check_record(ORDER, order(placed_at="2026-10-01T10:00:00"), "USD")
    assert problems == [("placed_at", "timestamp '2026-10-01T10:00:00' has no timezone; add an offset such as Z or +08:00")]


def test_currency_other_than_the_merchants_is_refused():
    _, problems = check_record(ORDER, order(currency="EUR"), "USD")
    assert ("currency", "currency EUR is not the merchant's currency USD") in problems


def test_merchandise_must_equal_lines_minus_discount():
    rec = order(lines=(("p1", 1, 1000), ("p2", 2, 500)))
    rec["merchandise_amount"] = 1999
    _, problems = check_record(ORDER, rec, "USD")
    assert problems == [("merchandise_amount", "is 1999 but the lines add up to 2000 minus discount 0 = 2000")]
    ok, problems = check_record(ORDER, order(lines=(("p1", 1, 1000),), discount_amount=100), "USD")
    assert problems == [] and ok["merchandise_amount"] == 900


def test_every_problem_of_a_record_is_reported_not_just_the_first():
    rec = order(currency="XXX", placed_at="yesterday")
    rec["lines"][0]["quantity"] = 0
    rec["colour"] = "red"
    _, problems = check_record(ORDER, rec, "USD")
    assert fields(problems) == {"currency", "placed_at", "lines[0].quantity", "colour"}


def test_unknown_field_and_missing_required_field():
    _, problems = check_record(REFUND, {"id": "r1", "order": "o1"}, "USD")
    assert fields(problems) == {"order", "order_id", "amount", "currency", "refunded_at"}


def test_paid_before_placed_is_refused():
    _, problems = check_record(ORDER, order(paid_at="2026-10-01T09:00:00Z"), "USD")
    assert fields(problems) == {"paid_at"}


def test_zero_decimal_currency_amounts_are_whole_yen():
    clean, problems = check_record(ORDER, order(currency="JPY", lines=(("p1", 3, 1200),)), "JPY")
    assert problems == [] and clean["merchandise_amount"] == 3600


@pytest.mark.parametrize("phone, ok", [("+14155550123", True), ("+8613800138000", True), ("4155550123", False), ("+0123", False)])
def test_phone_must_be_e164(phone, ok):
    _, problems = check_record(CUSTOMER, {"id": "c1", "phone": phone}, "USD")
    assert (problems == []) is ok


def test_timezone_must_be_iana():
    _, problems = check_record(CUSTOMER, {"id": "c1", "timezone": "Mars/Olympus"}, "USD")
    assert fields(problems) == {"timezone"}


@pytest.mark.parametrize("word, action", [("STOP", "opt_out"), (" stop ", "opt_out"), ("UNSUBSCRIBE", "opt_out"),
                                          ("TD", "opt_out"), ("退订", "opt_out"), ("START", "opt_in"), ("hello", None)])
def test_consent_keywords(word, action):
    assert consent_action_for_keyword(word) == action


def test_consent_event_action_is_derived_from_keyword_and_contradictions_refused():
    base = {"id": "e1", "customer_id": "c1", "channel": "sms", "occurred_at": "2026-10-01T00:00:00Z"}
    clean, problems = check_record(CONSENT_EVENT, base | {"keyword": "退订"}, "USD")
    assert problems == [] and clean["action"] == "opt_out"
    _, problems = check_record(CONSENT_EVENT, base | {"keyword": "STOP", "action": "opt_in"}, "USD")
    assert fields(problems) == {"action"}
    _, problems = check_record(CONSENT_EVENT, base, "USD")
    assert problems == [("action", "is required unless keyword is given")]


T1 = datetime(2026, 1, 1, tzinfo=UTC)
T2 = datetime(2026, 1, 2, tzinfo=UTC)


def test_latest_consent_event_wins_whatever_the_arrival_order():
    # opt-out at T2 then a late opt-in from T1: still opted out
    state = resolve_consent("unknown", None, "opt_out", T2)
    assert resolve_consent(*state, "opt_in", T1) == ("opted_out", T2)
    # the other arrival order gives the same result
    state = resolve_consent("unknown", None, "opt_in", T1)
    assert resolve_consent(*state, "opt_out", T2) == ("opted_out", T2)
    # a tie goes to the opt-out
    assert resolve_consent("opted_out", T1, "opt_in", T1) == ("opted_out", T1)
    # an explicit later opt-in re-subscribes
    assert resolve_consent("opted_out", T1, "opt_in", T2) == ("opted_in", T2)


def test_declared_consent_never_undoes_an_opt_out():
    assert resolve_declared_consent("opted_out", "opted_in") == ("opted_out", True)
    assert resolve_declared_consent("unknown", "opted_in") == ("opted_in", False)
    assert resolve_declared_consent("opted_in", None) == ("opted_in", False)


def test_compare_version():
    assert compare_version(T2, T1) == "stale"
    assert compare_version(T1, T1) == "same"
    assert compare_version(T1, T2) == "newer"
    assert compare_version(None, T1) == "newer"


# ---- promotions

def test_good_promotion_is_cleaned_with_its_defaults():
    clean, problems = check_record(PROMOTION, promotion(starts_at="2026-11-09T13:00:00+08:00"), "USD")
    assert problems == []
    assert clean == {"id": "pr1", "product_id": "p1", "kind": "mailer",
                     "starts_at": datetime(2026, 11, 9, 5, tzinfo=UTC), "ends_at": datetime(2026, 11, 16, 5, tzinfo=UTC),
                     "reach_bp": 10_000, "cancelled": False, "planned_at": None, "updated_at": None}


def test_promotion_kinds_are_the_databases():
    from engine.commerce.models import PromotionKind

    assert PROMOTION_KINDS == tuple(k.value for k in PromotionKind)


def test_promotion_required_fields_and_unknown_fields():
    _, problems = check_record(PROMOTION, {"id": "pr1", "sku": "p1", "reach": 50}, "USD")
    assert fields(problems) == {"product_id", "kind", "starts_at", "ends_at", "sku", "reach"}
    assert ("kind", "is required") in problems


def test_promotion_kind_must_be_one_of_the_three():
    for kind in PROMOTION_KINDS:
        assert check_record(PROMOTION, promotion(kind=kind), "USD")[1] == []
    _, problems = check_record(PROMOTION, promotion(kind="Mailer"), "USD")
    assert problems == [("kind", "must be one of display, mailer, discount; got 'Mailer'")]


@pytest.mark.parametrize("ends_at", ["2026-11-09T05:00:00Z", "2026-11-09T13:00:00+08:00", "2026-11-09T04:59:59Z"])
def test_promotion_must_end_after_it_starts(ends_at):
    _, problems = check_record(PROMOTION, promotion(starts_at="2026-11-09T05:00:00Z", ends_at=ends_at), "USD")
    assert problems == [("ends_at", "must be after starts_at (2026-11-09T05:00:00+00:00); ends_at is exclusive")]


def test_promotion_may_last_at_most_366_days():
    start = "2026-11-09T05:00:00Z"
    assert check_record(PROMOTION, promotion(starts_at=start, ends_at="2027-11-10T05:00:00Z"), "USD")[1] == []
    _, problems = check_record(PROMOTION, promotion(starts_at=start, ends_at="2027-11-10T05:00:01Z"), "USD")
    assert fields(problems) == {"ends_at"} and "at most 366 days" in problems[0][1]


@pytest.mark.parametrize("reach, reason", [
    (0, "must be an integer from 1 to 10000 basis points (10000 = 100%), got 0"),
    (-5, "must be an integer from 1 to 10000 basis points (10000 = 100%), got -5"),
    (10_001, "must be an integer from 1 to 10000 basis points (10000 = 100%), got 10001"),
    (50.5, "must be an integer, got 50.5"),
    ("50%", "must be an integer, got '50%'"),
    (True, "must be an integer, got True"),
])
def test_promotion_reach_is_basis_points_from_1_to_10000(reach, reason):
    _, problems = check_record(PROMOTION, promotion(reach_bp=reach), "USD")
    assert problems == [("reach_bp", reason)]


@pytest.mark.parametrize("reach", [1, 2500, 10_000])
def test_promotion_reach_bounds_are_accepted(reach):
    clean, problems = check_record(PROMOTION, promotion(reach_bp=reach), "USD")
    assert problems == [] and clean["reach_bp"] == reach


def test_promotion_planned_at_may_not_be_in_the_future_of_its_receipt():
    now = datetime(2026, 11, 2, 12, tzinfo=UTC)
    assert planned_at_problem(None, now) is None
    assert planned_at_problem(now, now) is None
    assert planned_at_problem(datetime(2026, 10, 1, tzinfo=UTC), now) is None
    reason = planned_at_problem(datetime(2026, 11, 2, 12, 0, 1, tzinfo=UTC), now)
    assert reason is not None and reason.startswith("is in the future (2026-11-02T12:00:01+00:00 is after")
    # After starts_at is allowed (a plan fixed while it already runs); the record itself is valid.
    clean, problems = check_record(PROMOTION, promotion(planned_at="2026-11-10T00:00:00Z"), "USD")
    assert problems == [] and clean["planned_at"] == datetime(2026, 11, 10, tzinfo=UTC)
