"""Lift: how much a campaign's messages changed what its audience bought, measured against the
campaign's holdout. Pure statistics: summaries of two groups in, figures and a verdict out. No
database here (``attribution.queries`` reads the groups).

Each group is summarised by four exact integers: recipients ``n``, recipients who converted
``k``, the sum ``S`` of their revenue and the sum ``Q`` of its squares (revenue per recipient in
minor units, 0 for those who did not buy). That is all the statistics below need, so the reader
never holds one value per recipient in memory (``GroupSummary.add`` folds chunks in).

Methods (95%, two-sided):

* **Conversion rate difference**: Newcombe's hybrid score interval (Newcombe 1998, method 10),
  built from the two Wilson score intervals. Chosen over Wald because holdouts are small and
  conversion rates low: Wald's interval collapses to a width of 0 at 0 conversions and
  undercovers badly below a handful of conversions; Newcombe's does not.
* **Revenue per recipient difference**: Welch's unequal-variance standard error with the normal
  quantile (a large-sample approximation: per-recipient revenue is very skewed, mostly zeros, so
  it is only trusted with enough recipients and converters, see ``verdict``).
* **Incremental GMV**: the revenue-per-recipient difference times the treated recipients, i.e.
  what the treated group bought beyond what it would have bought at the holdout's rate; its
  interval is the difference's interval times the same count (the count is taken as fixed).

Money results are integers in minor units, rounded half-up (on the magnitude, like
``engine.core.money.apply_rate_bp``, so a negative figure is the mirror of a positive one).
Point estimates of money are computed exactly (fractions); intervals come from floats and are
rounded the same way. Rates are floats: they are statistics, never money.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Iterable

import numpy as np

Z95 = 1.959963984540054          # standard normal 0.975 quantile
MIN_HOLDOUT = 100                # fewer holdout recipients than this: too small to conclude
MIN_EVENTS = 5                   # each group needs this many converters and non-converters


@dataclass
class GroupSummary:
    """One group's sufficient statistics, exact integers."""
    recipients: int = 0
    conversions: int = 0
    revenue: int = 0              # minor units, sum over recipients
    revenue_sq: int = 0           # sum of squares (minor units squared), Python int: no overflow

    def add(self, converted: Iterable[bool] | np.ndarray, revenue: Iterable[int] | np.ndarray) -> "GroupSummary":
        """Fold in a chunk of recipients (one flag and one revenue each)."""
        conv = np.asarray(list(converted) if not isinstance(converted, np.ndarray) else converted, dtype=bool)
        rev = [int(r) for r in (revenue.tolist() if isinstance(revenue, np.ndarray) else revenue)]
        if len(conv) != len(rev):
            raise ValueError("one conversion flag and one revenue per recipient")
        if any(r < 0 for r in rev):
            raise ValueError("revenue per recipient is net of refunds and never negative")
        self.recipients += len(rev)
        self.conversions += int(conv.sum())
        self.revenue += sum(rev)
        self.revenue_sq += sum(r * r for r in rev)
        return self

    @classmethod
    def of(cls, converted, revenue) -> "GroupSummary":
        return cls().add(converted, revenue)

    def rate(self) -> float | None:
        return self.conversions / self.recipients if self.recipients else None

    def mean(self) -> Fraction | None:
        return Fraction(self.revenue, self.recipients) if self.recipients else None

    def variance(self) -> float | None:
        """Sample variance of revenue per recipient; the numerator is computed exactly in
        integers (n·Q − S²), so no cancellation error creeps in."""
        n = self.recipients
        if n < 2:
            return None
        return (n * self.revenue_sq - self.revenue * self.revenue) / (n * (n - 1))


def round_half_up(value: Fraction | float) -> int:
    """To the nearest integer, halves away from zero."""
    x = Fraction(value)
    sign = -1 if x < 0 else 1
    q, r = divmod(abs(x.numerator), x.denominator)
    return sign * (q + (2 * r >= x.denominator))


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of one proportion."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 − p2 (method 10 of Newcombe 1998)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def welch_se(a: GroupSummary, b: GroupSummary) -> float | None:
    va, vb = a.variance(), b.variance()
    if va is None or vb is None:
        return None
    return math.sqrt(va / a.recipients + vb / b.recipients)


@dataclass(frozen=True)
class Interval:
    low: float | int
    high: float | int

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class GroupFigures:
    recipients: int
    conversions: int
    conversion_rate: float | None
    revenue: int                          # minor units
    revenue_per_recipient: int | None     # minor units, rounded half-up


@dataclass(frozen=True)
class Lift:
    treated: GroupFigures
    holdout: GroupFigures
    conversion_rate_diff: float | None                 # treated − holdout
    conversion_rate_diff_ci: Interval | None
    revenue_per_recipient_diff: int | None             # minor units
    revenue_per_recipient_diff_ci: Interval | None     # minor units
    incremental_gmv: int | None                        # minor units
    incremental_gmv_ci: Interval | None                # minor units
    verdict: str            # insufficient_data | not_significant | positive | negative | mixed
    reasons: tuple[str, ...] = field(default_factory=tuple)   # machine-readable, why insufficient
    message: str = ""       # the verdict in words
    method: str = ("conversion: Newcombe hybrid score 95% CI; revenue per recipient: Welch standard error, "
                   "normal approximation 95% CI; incremental GMV = difference x treated recipients")

    def as_dict(self) -> dict:
        return asdict(self)


def _figures(g: GroupSummary) -> GroupFigures:
    mean = g.mean()
    return GroupFigures(g.recipients, g.conversions, g.rate(), g.revenue,
                        None if mean is None else round_half_up(mean))


def _sign(ci: Interval | None) -> int:
    if ci is None or not ci.excludes_zero():
        return 0
    return 1 if ci.low > 0 else -1


def insufficiency(treated: GroupSummary, holdout: GroupSummary, *, min_holdout: int = MIN_HOLDOUT,
                  min_events: int = MIN_EVENTS) -> list[str]:
    """Why the groups are too small for the approximations to be trusted (empty: they are not).

    The rule of thumb of the normal approximation: at least ``min_events`` converters and as
    many non-converters in each group; and a holdout of at least ``min_holdout`` recipients, as
    below that even a large true effect is unlikely to show."""
    reasons = []
    if holdout.recipients == 0:
        reasons.append("no_holdout")
    elif holdout.recipients < min_holdout:
        reasons.append("holdout_too_small")
    if treated.recipients == 0:
        reasons.append("no_treated")
    for name, g in (("treated", treated), ("holdout", holdout)):
        if g.recipients and g.conversions < min_events:
            reasons.append(f"too_few_conversions_{name}")
        if g.recipients and g.recipients - g.conversions < min_events:
            reasons.append(f"too_few_non_conversions_{name}")
    return reasons


_WORDS = {
    "no_holdout": "the campaign has no holdout recipients in this period",
    "holdout_too_small": "the holdout has fewer than {min_holdout} recipients",
    "no_treated": "no recipient was treated in this period",
    "too_few_conversions_treated": "fewer than {min_events} treated recipients bought",
    "too_few_conversions_holdout": "fewer than {min_events} holdout recipients bought",
    "too_few_non_conversions_treated": "fewer than {min_events} treated recipients did not buy",
    "too_few_non_conversions_holdout": "fewer than {min_events} holdout recipients did not buy",
}


def lift(treated: GroupSummary, holdout: GroupSummary, *, min_holdout: int = MIN_HOLDOUT,
         min_events: int = MIN_EVENTS, z: float = Z95) -> Lift:
    """Treated minus holdout, with 95% intervals and a verdict.

    The figures are computed whenever they are defined, even when the verdict is
    ``insufficient_data``, so a merchant can see them; the verdict says not to trust them."""
    both = treated.recipients > 0 and holdout.recipients > 0
    conv_diff = conv_ci = rev_diff = rev_ci = gmv = gmv_ci = None
    rev_sign = conv_sign = 0
    if both:
        conv_diff = treated.rate() - holdout.rate()
        lo, hi = newcombe(treated.conversions, treated.recipients, holdout.conversions, holdout.recipients, z)
        conv_ci = Interval(lo, hi)
        conv_sign = _sign(conv_ci)
        exact = treated.mean() - holdout.mean()
        rev_diff = round_half_up(exact)
        gmv = round_half_up(exact * treated.recipients)
        se = welch_se(treated, holdout)
        if se is not None:
            lo_f, hi_f = float(exact) - z * se, float(exact) + z * se
            raw = Interval(lo_f, hi_f)
            rev_sign = _sign(raw) if se > 0 else (0 if exact == 0 else (1 if exact > 0 else -1))
            rev_ci = Interval(round_half_up(lo_f), round_half_up(hi_f))
            gmv_ci = Interval(round_half_up(lo_f * treated.recipients), round_half_up(hi_f * treated.recipients))

    reasons = insufficiency(treated, holdout, min_holdout=min_holdout, min_events=min_events)
    if reasons:
        verdict = "insufficient_data"
        message = ("Too small to conclude: " + "; ".join(_WORDS[r].format(min_holdout=min_holdout, min_events=min_events)
                                                          for r in reasons)
                   + ". The figures below are shown for information only.")
    else:
        signs = {conv_sign, rev_sign} - {0}
        if not signs:
            verdict = "not_significant"
            message = ("Not significant: both 95% intervals include 0, so the data cannot tell the messages' "
                       "effect apart from no effect.")
        elif signs == {1}:
            verdict = "positive"
            message = "The messages increased purchases: the treated group did better than the holdout (95%)."
        elif signs == {-1}:
            verdict = "negative"
            message = "The treated group did worse than the holdout (95%)."
        else:
            verdict = "mixed"
            message = "Conversion and revenue per recipient moved in opposite directions (95%); inconclusive."
    return Lift(_figures(treated), _figures(holdout), conv_diff, conv_ci, rev_diff, rev_ci, gmv, gmv_ci,
                verdict, tuple(reasons), message)
