"""The eval over many test cutoffs: one split is one draw, and a small slice of one split is
noise.

``evaluate_rolling`` runs the ``eval`` command's whole measurement (``evaluation.evaluate``:
training, baselines, our models) at each of several test cutoffs a week apart, and reports
1. per cutoff, how ours compares with the best baseline (NDCG@10 and Recall@10 ratios for all
   customers and the low-frequency slice, AUC difference, calibration error), so a result that
   holds on one split only shows up as such;
2. the low-frequency slice pooled over the cutoffs: every method's Recall@10 and NDCG@10
   averaged over all the (customer, cutoff) pairs of the slice (13 to 26 customers a cutoff on
   The Complete Journey, a few hundred pooled), and the ratio of ours to the best baseline;
3. the propensity AUC difference (ours minus the best baseline) averaged over the cutoffs, with
   its standard error and the worst cutoff.
A customer appears at several cutoffs; the pooled figures weigh each appearance once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from recommend.evaluation import evaluate
from recommend.split import time_split
from recommend.tables import DAY, History

OURS_RANKER = "ours (LightGBM ranker)"
OURS_PROPENSITY = "ours (LightGBM, calibrated)"


@dataclass
class RollingReport:
    cutoffs: list[str]
    per_cutoff: list[dict] = field(default_factory=list)
    pooled_low: dict = field(default_factory=dict)     # method -> {"recall@10", "ndcg@10", "n"}
    propensity: dict = field(default_factory=dict)     # slice -> {"mean", "se", "min", "max"}

    def as_dict(self) -> dict:
        return {"cutoffs": self.cutoffs, "per_cutoff": self.per_cutoff, "pooled_low": self.pooled_low,
                "propensity": self.propensity}


def rolling_cutoffs(last: int, n: int, step_days: int = 7) -> list[int]:
    """``n`` test cutoffs ``step_days`` apart, oldest first, ending at ``last``."""
    return [last - k * step_days * DAY for k in range(n - 1, -1, -1)]


def ratio_to_best(table: dict, metric: str, ours: str = OURS_RANKER) -> tuple[float, str]:
    """Ours over the best baseline on ``metric`` (NaN when the best baseline scores 0)."""
    best = max((m for m in table if m != ours), key=lambda m: table[m][metric])
    base = table[best][metric]
    return (table[ours][metric] / base if base > 0 else float("nan")), best


def evaluate_rolling(history: History, test_cutoffs: list[int], *, horizon_days: int = 14, n_train: int = 12,
                     progress=None) -> RollingReport:
    iso = [datetime.fromtimestamp(t, timezone.utc).isoformat() for t in test_cutoffs]
    out = RollingReport(iso)
    sums: dict[str, np.ndarray] = {}
    auc_diff: dict[str, list[float]] = {"all": [], "low-frequency": []}
    for n, (cut, label) in enumerate(zip(test_cutoffs, iso)):
        if progress:
            progress(f"test cutoff {n + 1}/{len(test_cutoffs)}: {label[:10]}")
        report = evaluate(history, time_split(cut, horizon_days=horizon_days, n_train=n_train), progress=progress)
        row = {"test_cutoff": label, "n_low": report.sizes["ranking low-frequency"]}
        if OURS_RANKER in report.ranking["all"]:
            for sl in ("all", "low-frequency"):
                for metric in ("ndcg@10", "recall@10"):
                    row[f"{sl} {metric} ratio"], row[f"{sl} {metric} best"] = ratio_to_best(report.ranking[sl], metric)
            for method, m in report.ranking["low-frequency"].items():
                w = m["n"]
                acc = sums.setdefault(method, np.zeros(3))
                if w:
                    acc += (m["recall@10"] * w, m["ndcg@10"] * w, w)
        if OURS_PROPENSITY in report.propensity["all"]:
            for sl in ("all", "low-frequency"):
                table = report.propensity[sl]
                best = max((m for m in table if m != OURS_PROPENSITY), key=lambda m: table[m]["auc"])
                diff = table[OURS_PROPENSITY]["auc"] - table[best]["auc"]
                row[f"{sl} auc diff"], row[f"{sl} auc best"] = diff, best
                if np.isfinite(diff):
                    auc_diff[sl].append(diff)
            row["ece"] = report.propensity["all"][OURS_PROPENSITY]["ece"]
        out.per_cutoff.append(row)
    out.pooled_low = {m: {"recall@10": a[0] / a[2], "ndcg@10": a[1] / a[2], "n": int(a[2])}
                      for m, a in sums.items() if a[2] > 0}
    for sl, d in auc_diff.items():
        if d:
            v = np.array(d)
            out.propensity[sl] = {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()),
                                  "se": float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")}
    return out


def format_rolling(r: RollingReport) -> str:
    out = [f"{len(r.cutoffs)} test cutoffs {r.cutoffs[0][:10]} .. {r.cutoffs[-1][:10]}, each with its own split "
           f"(validation one horizon before, 12 weekly training cutoffs before that)", "",
           f"  {'test cutoff':<12}{'NDCG@10':>9}{'Rec@10':>8}{'low n':>7}{'low NDCG':>9}{'low Rec':>8}"
           f"{'AUC diff':>10}{'low AUC':>9}{'ECE':>7}   (ratios: ours / best baseline; AUC: ours - best)"]
    for row in r.per_cutoff:
        g = (lambda k, f: format(row[k], f) if k in row else "-")
        out.append(f"  {row['test_cutoff'][:10]:<12}{g('all ndcg@10 ratio', '.3f'):>9}{g('all recall@10 ratio', '.3f'):>8}"
                   f"{row['n_low']:>7}{g('low-frequency ndcg@10 ratio', '.3f'):>9}{g('low-frequency recall@10 ratio', '.3f'):>8}"
                   f"{g('all auc diff', '+.4f'):>10}{g('low-frequency auc diff', '+.4f'):>9}{g('ece', '.4f'):>7}")
    ratios = [row["all ndcg@10 ratio"] for row in r.per_cutoff if "all ndcg@10 ratio" in row]
    if ratios:
        rec = [row["all recall@10 ratio"] for row in r.per_cutoff]
        out.append(f"  {'mean':<12}{np.mean(ratios):>9.3f}{np.mean(rec):>8.3f}")
    if r.pooled_low:
        n = max(v["n"] for v in r.pooled_low.values())
        out += ["", f"low-frequency slice pooled over the cutoffs ({n} customer-windows)",
                f"  {'method':<26}{'Recall@10':>10}{'NDCG@10':>10}"]
        for m, v in r.pooled_low.items():
            out.append(f"  {m:<26}{v['recall@10']:>10.4f}{v['ndcg@10']:>10.4f}")
        if OURS_RANKER in r.pooled_low:
            for metric in ("ndcg@10", "recall@10"):
                ratio, best = ratio_to_best(r.pooled_low, metric)
                out.append(f"  ours / best baseline ({best}) on {metric}: {ratio:.3f}")
    for sl, v in r.propensity.items():
        out.append(f"\npropensity AUC, ours - best baseline, {sl}: mean {v['mean']:+.4f} ± {v['se']:.4f} (standard error), "
                   f"worst {v['min']:+.4f}, best {v['max']:+.4f}")
    return "\n".join(out)
