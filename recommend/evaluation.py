"""The ``eval`` command's core: every method measured in the same run, on the same split.

Item ranking, per customer who has history before the test cutoff and buys anything in the
test window; the truth is every distinct item they buy in the window (not only our candidates):
global popularity, P-Pop, P-Pop filled with popularity, TIFU-KNN (published Dunnhumby
defaults) and our ranker. Propensity, per customer with history before the test cutoff; the
label is a paid basket in the window: recency only (as probabilities), BG/NBD and ours. Both
tables again for the low-frequency slice (at most 3 baskets before the test cutoff).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from recommend import baselines
from recommend.metrics import propensity_metrics, ranking_metrics, truth_items
from recommend.propensity import customer_set
from recommend.ranker import ranking_set, top_k
from recommend.snapshot import Snapshot
from recommend.split import TimeSplit
from recommend.tables import DAY, History
from recommend.training import train_models

LOW_FREQUENCY_MAX_BASKETS = 3
K = 20


@dataclass
class EvalReport:
    split: dict
    ranking: dict = field(default_factory=dict)      # slice -> method -> metrics
    propensity: dict = field(default_factory=dict)   # slice -> method -> metrics
    seconds: dict = field(default_factory=dict)
    fallbacks: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"split": self.split, "ranking": self.ranking, "propensity": self.propensity,
                "seconds": self.seconds, "fallbacks": self.fallbacks, "sizes": self.sizes}


def evaluate(history: History, split: TimeSplit, *, progress=None) -> EvalReport:
    report = EvalReport(split.describe())
    lines, catalog = history.lines, history.catalog
    t0 = time.perf_counter()
    models = train_models(history, split, progress=progress)
    report.seconds["training"] = round(time.perf_counter() - t0, 1)
    report.fallbacks = models.fallbacks
    test, h = split.test_cutoff, split.horizon_days * DAY
    snap = Snapshot.at(lines, catalog, test, promotions=history.promotions, horizon_days=split.horizon_days)
    window = lines.window(test, test + h)
    before = snap.lines
    n_baskets = snap.customers.n_baskets

    # ---- item ranking
    customers = np.intersect1d(snap.known_customers(), np.unique(window.customer)).astype(np.int32)
    truth = truth_items(window, customers)
    ranked = {
        "global popularity": baselines.global_popularity(before, test, catalog, customers, K),
        "P-Pop": baselines.p_pop(before, test, catalog, customers, K),
        "P-Pop + popularity": baselines.p_pop_filled(before, test, catalog, customers, K),
        "TIFU-KNN": baselines.tifu_knn(before, test, catalog, customers, K),
    }
    if models.ranker is not None:
        t1 = time.perf_counter()
        rs = ranking_set(snap, customers, None, drop_empty_groups=False)
        ranked["ours (LightGBM ranker)"] = top_k(rs.cand, models.ranker.predict(rs.X), customers, lines.n_customers, K)
        report.seconds["ranker scoring"] = round(time.perf_counter() - t1, 2)
    low = n_baskets[customers] <= LOW_FREQUENCY_MAX_BASKETS
    for name, mask in (("all", np.ones(len(customers), bool)), ("low-frequency", low)):
        report.sizes[f"ranking {name}"] = int(mask.sum())
        report.ranking[name] = {m: ranking_metrics(r[mask], _rows(truth, mask)) for m, r in ranked.items()}

    # ---- propensity
    known = snap.known_customers()
    y = (np.bincount(window.customer, minlength=lines.n_customers) > 0)[known]
    probs = {
        "recency only": baselines.recency_only_probabilities(lines, split.valid_cutoff, split.horizon_days, before, test, known),
        "BG/NBD": baselines.bgnbd_probabilities(before, test, split.horizon_days, known),
    }
    if models.propensity is not None:
        probs["ours (LightGBM, calibrated)"] = models.propensity.probability(customer_set(snap, known, None, split.horizon_days).X)
    low = n_baskets[known] <= LOW_FREQUENCY_MAX_BASKETS
    for name, mask in (("all", np.ones(len(known), bool)), ("low-frequency", low)):
        report.sizes[f"propensity {name}"] = int(mask.sum())
        report.propensity[name] = {m: propensity_metrics(y[mask], p[mask]) for m, p in probs.items()}
    return report


def _rows(truth, mask: np.ndarray):
    return truth[np.flatnonzero(mask)] if hasattr(truth, "tocsr") else [t for t, m in zip(truth, mask) if m]


def format_report(report: EvalReport) -> str:
    out = [f"split: test cutoff {report.split['test_cutoff']}, horizon {report.split['horizon_days']} days, "
           f"validation cutoff {report.split['valid_cutoff']}, {len(report.split['train_cutoffs'])} training cutoffs "
           f"{report.split['train_cutoffs'][-1]} .. {report.split['train_cutoffs'][0]}"]
    for name, table in report.ranking.items():
        out.append(f"\nitem ranking, {name} customers (n = {report.sizes[f'ranking {name}']})")
        out.append(f"  {'method':<26}{'Recall@10':>10}{'NDCG@10':>10}{'Recall@20':>10}{'NDCG@20':>10}{'HR@10':>8}")
        for m, r in table.items():
            out.append(f"  {m:<26}{r['recall@10']:>10.4f}{r['ndcg@10']:>10.4f}{r['recall@20']:>10.4f}{r['ndcg@20']:>10.4f}{r['hit_rate@10']:>8.4f}")
    for name, table in report.propensity.items():
        out.append(f"\npropensity, {name} customers (n = {report.sizes[f'propensity {name}']})")
        out.append(f"  {'method':<30}{'AUC':>8}{'AP':>8}{'lift@10%':>10}{'ECE':>8}")
        for m, r in table.items():
            out.append(f"  {m:<30}{r['auc']:>8.4f}{r['average_precision']:>8.4f}{r['top_decile_lift']:>10.3f}{r['ece']:>8.4f}")
    if report.fallbacks:
        out.append("\nfallbacks: " + "; ".join(f"{k}: {v}" for k, v in report.fallbacks.items()))
    out.append("\nseconds: " + ", ".join(f"{k} {v}" for k, v in report.seconds.items()))
    return "\n".join(out)
