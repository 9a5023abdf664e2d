"""Lift statistics (attribution.lift) against hand computations, published values and scipy."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from attribution.lift import GroupSummary, Z95, lift, newcombe, round_half_up, welch_se, wilson


def group(n: int, revenues: list[int]) -> GroupSummary:
    """n recipients, of whom len(revenues) converted with those revenues."""
    conv = [True] * len(revenues) + [False] * (n - len(revenues))
    return GroupSummary.of(conv, list(revenues) + [0] * (n - len(revenues)))


def test_z_is_the_normal_quantile():
    assert Z95 == pytest.approx(stats.norm.ppf(0.975), abs=1e-12)


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (56, 70), (1, 1000)])
def test_wilson_matches_scipy(k, n):
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


@pytest.mark.parametrize("k1,n1,k2,n2,expected", [
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10.
    (56, 70, 48, 80, (0.0524, 0.3339)),
    (9, 10, 3, 10, (0.1705, 0.8090)),
    (5, 56, 0, 29, (-0.0381, 0.1926)),
    (0, 10, 0, 20, (-0.1611, 0.2775)),
    (0, 10, 0, 10, (-0.2775, 0.2775)),
])
def test_newcombe_reproduces_the_published_intervals(k1, n1, k2, n2, expected):
    lo, hi = newcombe(k1, n1, k2, n2)
    assert (round(lo, 4), round(hi, 4)) == expected


def test_newcombe_by_hand_from_the_wilson_limits():
    k1, n1, k2, n2 = 30, 200, 10, 100
    l1, u1 = wilson(k1, n1)
    l2, u2 = wilson(k2, n2)
    d = 0.15 - 0.10
    lo, hi = newcombe(k1, n1, k2, n2)
    assert lo == pytest.approx(d - math.hypot(0.15 - l1, u2 - 0.10))
    assert hi == pytest.approx(d + math.hypot(u1 - 0.15, 0.10 - l2))


def test_welch_standard_error_matches_scipy_and_numpy():
    rng = np.random.default_rng(7)
    a = np.where(rng.random(500) < 0.2, rng.integers(100, 20_000, 500), 0)
    b = np.where(rng.random(120) < 0.1, rng.integers(100, 20_000, 120), 0)
    ga, gb = GroupSummary.of(a > 0, a), GroupSummary.of(b > 0, b)
    assert ga.variance() == pytest.approx(np.var(a, ddof=1), rel=1e-12)
    t = stats.ttest_ind(a, b, equal_var=False)
    se = (a.mean() - b.mean()) / t.statistic
    assert welch_se(ga, gb) == pytest.approx(se, rel=1e-9)
    out = lift(ga, gb)
    diff = Fraction(int(a.sum()), 500) - Fraction(int(b.sum()), 120)
    assert out.revenue_per_recipient_diff == round_half_up(diff)
    assert out.revenue_per_recipient_diff_ci.low == round_half_up(float(diff) - Z95 * se)
    assert out.revenue_per_recipient_diff_ci.high == round_half_up(float(diff) + Z95 * se)
    assert out.incremental_gmv == round_half_up(diff * 500)
    assert out.incremental_gmv_ci.high == round_half_up((float(diff) + Z95 * se) * 500)


def test_round_half_up_on_the_magnitude():
    assert [round_half_up(Fraction(x, 2)) for x in (-3, -1, 1, 3, 5)] == [-2, -1, 1, 2, 3]
    assert round_half_up(Fraction(-7, 3)) == -2 and round_half_up(2.4999) == 2


def test_money_figures_are_integers_and_exact():
    treated = group(3, [1000])          # 333.33… per recipient
    holdout = group(2, [])
    out = lift(treated, holdout)
    assert out.treated.revenue_per_recipient == 333 and isinstance(out.treated.revenue_per_recipient, int)
    assert out.revenue_per_recipient_diff == 333
    assert out.incremental_gmv == 1000          # exact: (1000/3 − 0) × 3, not 333 × 3
    assert isinstance(out.incremental_gmv_ci.low, int) and isinstance(out.incremental_gmv_ci.high, int)


def test_a_tiny_holdout_is_too_small_to_conclude():
    treated = group(5000, [2000] * 1000)
    holdout = group(20, [])
    out = lift(treated, holdout)
    assert out.verdict == "insufficient_data"
    assert "holdout_too_small" in out.reasons and "too_few_conversions_holdout" in out.reasons
    assert "Too small to conclude" in out.message
    assert out.conversion_rate_diff == pytest.approx(0.2)   # still shown, for information


def test_zero_conversions_everywhere():
    out = lift(group(1000, []), group(200, []))
    assert out.conversion_rate_diff == 0
    lo, hi = out.conversion_rate_diff_ci.low, out.conversion_rate_diff_ci.high
    assert lo < 0 < hi                           # Newcombe keeps a width where Wald would not
    assert out.revenue_per_recipient_diff == 0 and out.incremental_gmv == 0
    assert out.verdict == "insufficient_data" and "too_few_conversions_treated" in out.reasons


def test_no_holdout_at_all():
    out = lift(group(100, [500] * 10), GroupSummary())
    assert out.verdict == "insufficient_data" and out.reasons[0] == "no_holdout"
    assert out.conversion_rate_diff is None and out.incremental_gmv is None
    assert out.holdout.conversion_rate is None and out.holdout.revenue_per_recipient is None


def test_identical_groups_give_intervals_around_zero_and_not_significant():
    revenues = [1500, 2500, 900, 12000, 400] * 20
    treated, holdout = group(2000, revenues), group(2000, revenues)
    out = lift(treated, holdout)
    assert out.conversion_rate_diff == 0
    assert out.conversion_rate_diff_ci.low < 0 < out.conversion_rate_diff_ci.high
    assert out.conversion_rate_diff_ci.low == pytest.approx(-out.conversion_rate_diff_ci.high)
    assert out.revenue_per_recipient_diff_ci.low < 0 < out.revenue_per_recipient_diff_ci.high
    assert out.revenue_per_recipient_diff_ci.low == -out.revenue_per_recipient_diff_ci.high
    assert out.verdict == "not_significant" and out.reasons == ()
    assert "Not significant" in out.message


def test_a_clear_effect_is_positive():
    treated = group(10_000, [3000] * 1500)      # 15%
    holdout = group(1_000, [3000] * 80)         # 8%
    out = lift(treated, holdout)
    assert out.verdict == "positive"
    assert out.conversion_rate_diff_ci.low > 0 and out.revenue_per_recipient_diff_ci.low > 0
    assert out.incremental_gmv == (450 - 240) * 10_000
    assert out.as_dict()["verdict"] == "positive"


def test_summaries_fold_in_chunks_like_one_array():
    rng = np.random.default_rng(3)
    rev = np.where(rng.random(1000) < 0.3, rng.integers(1, 10**9, 1000), 0)
    whole = GroupSummary.of(rev > 0, rev)
    parts = GroupSummary()
    for k in range(0, 1000, 128):
        parts.add(rev[k:k + 128] > 0, rev[k:k + 128])
    assert parts == whole
    assert whole.revenue_sq == sum(int(x) ** 2 for x in rev)   # exact beyond int64
    with pytest.raises(ValueError):
        GroupSummary.of([True], [-1])
