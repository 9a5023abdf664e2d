"""The eval command's core on a small synthetic merchant: one split, and many pooled."""
from __future__ import annotations

import numpy as np
import pytest

from recommend.evaluation import evaluate, format_report
from recommend.rolling_eval import OURS_RANKER, evaluate_rolling, format_rolling, ratio_to_best, rolling_cutoffs
from recommend.split import time_split
from recommend.tables import DAY
from tests.recommend_data import START, synthetic_history

LAST = int(START.timestamp()) + 130 * DAY


@pytest.fixture(scope="module")
def history():
    return synthetic_history()


def test_one_split_measures_every_method_on_both_slices(history):
    report = evaluate(history, time_split(LAST, n_train=6))
    for sl in ("all", "low-frequency"):
        assert set(report.ranking[sl]) == {"global popularity", "P-Pop", "P-Pop + popularity", "TIFU-KNN", OURS_RANKER}
        assert len(report.propensity[sl]) == 3
    assert report.sizes["ranking all"] > report.sizes["ranking low-frequency"] > 0
    assert "ours (LightGBM ranker)" in format_report(report)


def test_rolling_eval_pools_the_low_frequency_slice_over_its_cutoffs(history):
    cutoffs = rolling_cutoffs(LAST, 2)
    assert cutoffs == [LAST - 7 * DAY, LAST]
    rolled = evaluate_rolling(history, cutoffs, n_train=6)
    singles = [evaluate(history, time_split(c, n_train=6)) for c in cutoffs]
    assert [r["n_low"] for r in rolled.per_cutoff] == [s.sizes["ranking low-frequency"] for s in singles]
    for method, pooled in rolled.pooled_low.items():
        per = [s.ranking["low-frequency"][method] for s in singles]
        n = sum(p["n"] for p in per)
        assert pooled["n"] == n
        assert pooled["ndcg@10"] == pytest.approx(sum(p["ndcg@10"] * p["n"] for p in per) / n)
        assert pooled["recall@10"] == pytest.approx(sum(p["recall@10"] * p["n"] for p in per) / n)
    for row, single in zip(rolled.per_cutoff, singles):
        assert row["all ndcg@10 ratio"] == pytest.approx(ratio_to_best(single.ranking["all"], "ndcg@10")[0])
    diffs = [r["all auc diff"] for r in rolled.per_cutoff]
    assert rolled.propensity["all"]["mean"] == pytest.approx(np.mean(diffs))
    assert rolled.propensity["all"]["min"] == pytest.approx(min(diffs))
    text = format_rolling(rolled)
    assert "pooled over the cutoffs" in text and "ours / best baseline" in text
