"""Benchmark: batch scoring, features and predict end to end, on The Complete Journey.

Trains a propensity model and a ranker once (not timed), then scores every customer with the
production function, ``recommend.scoring.score_chunks``: snapshot statistics, propensity
features and predict, candidates, candidate features, ranker predict and top-k, in chunks of
customers (the ranker predicts each sub-chunk on a thread of its own while the next one's
features are built). ``--scale N`` replicates the merchant's customers N times (each copy a distinct
customer with the same history) to show that memory stays bounded as the merchant grows.
Prints candidate rows per second end to end, bare LightGBM predict on the same matrix, their
ratio, and peak RSS. Database reads and writes are not included (see ``app.py score``).
Timings on this shared machine vary by up to a quarter from run to run: run it several times.

    python bench/scoring.py [--scale 1] [--chunk 5000]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommend.completejourney import load_history  # noqa: E402
from recommend.propensity import customer_set, fit_bgnbd_params, train_propensity  # noqa: E402
from recommend.ranker import ranking_set, train_ranker  # noqa: E402
from recommend.scoring import score_chunks  # noqa: E402
from recommend.snapshot import Snapshot  # noqa: E402
from recommend.tables import DAY, History, Lines, make_lines  # noqa: E402


def replicate(lines: Lines, n: int) -> Lines:
    if n == 1:
        return lines
    k = np.arange(n)
    return make_lines(
        (lines.customer[None, :] + (k * lines.n_customers)[:, None]).ravel(),
        (lines.basket.astype(np.int64)[None, :] + (k * (int(lines.basket.max()) + 1))[:, None]).ravel(),
        np.tile(lines.item, n), np.tile(lines.ts, n), np.tile(lines.quantity, n), np.tile(lines.amount, n),
        lines.n_customers * n, lines.n_items)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TimedBooster:
    """A booster whose predict calls are timed and whose last matrix is kept."""

    def __init__(self, booster):
        self.booster, self.seconds, self.last_X = booster, 0.0, None

    def predict(self, X, **kw):
        t = time.perf_counter()
        out = self.booster.predict(X, **kw)
        self.seconds += time.perf_counter() - t
        self.last_X = X
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=1)
    p.add_argument("--chunk", type=int, default=5000)
    p.add_argument("--cutoff", default="2017-12-04")
    a = p.parse_args()
    h = load_history()
    cut = int(pd.Timestamp(a.cutoff, tz="America/New_York").timestamp())
    H = 14 * DAY
    sets, csets = [], []
    for c in (cut - 2 * H - 7 * DAY * k for k in range(4)):
        s = Snapshot.at(h.lines, h.catalog, c, promotions=h.promotions)
        sets.append(ranking_set(s, s.known_customers(), h.lines.window(c, c + H)))
        csets.append(customer_set(s, s.known_customers(), h.lines.window(c, c + H)))
    vs = Snapshot.at(h.lines, h.catalog, cut - H, promotions=h.promotions)
    booster = train_ranker(sets, ranking_set(vs, vs.known_customers(), h.lines.window(cut - H, cut)))
    propensity = train_propensity(csets, customer_set(vs, vs.known_customers(), h.lines.window(cut - H, cut)))
    propensity.bgnbd_params = fit_bgnbd_params(vs)  # as a trained model stores it
    del sets, csets, vs  # score with what a scoring process holds, not the training data
    lines = replicate(h.lines, a.scale)
    history = History(lines, h.catalog, [f"c{i}" for i in range(lines.n_customers)], h.currency, h.promotions)
    print(f"scoring benchmark on {os.cpu_count()} cores: {lines.n_customers:,} customers, {len(lines):,} lines, "
          f"{booster.num_trees()} ranker trees (target: >= 200,000 candidate rows/s, peak memory <= 2 GB)")

    ranker = TimedBooster(booster)
    c0 = time.process_time()
    t0 = time.perf_counter()
    snap = Snapshot.at(lines, h.catalog, cut, promotions=h.promotions)
    customers = np.arange(lines.n_customers, dtype=np.int32)
    rows = 0
    for _result, n in score_chunks(history, snap, customers, propensity=propensity, ranker=ranker,
                                   horizon_days=14, k=10, chunk=a.chunk):
        rows += n
    total = time.perf_counter() - t0
    cpu = time.process_time() - c0
    # bare predict on the last chunk's matrix, repeated to the same number of rows
    t1 = time.perf_counter()
    done = 0
    while done < rows:
        booster.predict(ranker.last_X)
        done += len(ranker.last_X)
    bare = time.perf_counter() - t1
    print(f"end to end      {rows:>10,} rows in {total:6.2f} s -> {rows / total:>9,.0f} rows/s "
          f"({cpu:.2f} CPU seconds in all threads)")
    print(f"  ranker predict, on its own thread  {ranker.seconds:6.2f} s (overlapped with the next sub-chunk's features)")
    print(f"bare predict    {done:>10,} rows in {bare:6.2f} s -> {done / bare:>9,.0f} rows/s")
    print(f"ratio end-to-end / bare predict throughput: {(rows / total) / (done / bare):.2f}")
    print(f"peak RSS {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
