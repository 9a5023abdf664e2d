"""Benchmark: batch scoring, features and predict end to end, on The Complete Journey.

Trains a ranker once (not timed), then scores every customer as a production scoring run does:
snapshot statistics, candidates, candidate features, LightGBM predict and top-k, in chunks of
customers. ``--scale N`` replicates the merchant's customers N times (each copy a distinct
customer with the same history) to show that memory stays bounded as the merchant grows.
Prints candidate rows per second end to end, bare LightGBM predict on the same matrix, their
ratio, and peak RSS. Database reads and writes are not included (see ``app.py score``).

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
from recommend.propensity import customer_set  # noqa: E402
from recommend.ranker import ranking_set, top_k, train_ranker  # noqa: E402
from recommend.snapshot import Snapshot  # noqa: E402
from recommend.tables import DAY, Lines, make_lines  # noqa: E402


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=1)
    p.add_argument("--chunk", type=int, default=5000)
    p.add_argument("--cutoff", default="2017-12-04")
    a = p.parse_args()
    h = load_history()
    cut = int(pd.Timestamp(a.cutoff, tz="America/New_York").timestamp())
    H = 14 * DAY
    sets = []
    for c in (cut - 2 * H - 7 * DAY * k for k in range(4)):
        s = Snapshot.at(h.lines, h.catalog, c)
        sets.append(ranking_set(s, s.known_customers(), h.lines.window(c, c + H)))
    vs = Snapshot.at(h.lines, h.catalog, cut - H)
    booster = train_ranker(sets, ranking_set(vs, vs.known_customers(), h.lines.window(cut - H, cut)))
    del sets, vs  # score with what a scoring process holds, not the training data
    lines = replicate(h.lines, a.scale)
    print(f"scoring benchmark on {os.cpu_count()} cores: {lines.n_customers:,} customers, {len(lines):,} lines, "
          f"{booster.num_trees()} trees (target: >= 200,000 candidate rows/s, peak memory <= 2 GB)")

    from recommend.propensity import fit_bgnbd_params

    bgnbd = fit_bgnbd_params(Snapshot.at(h.lines, h.catalog, cut - H))  # as a trained model stores it
    t0 = time.perf_counter()
    snap = Snapshot.at(lines, h.catalog, cut)
    customers = snap.known_customers()
    rows = 0
    predict_s = 0.0
    for start in range(0, len(customers), a.chunk):
        part = customers[start:start + a.chunk]
        customer_set(snap, part, None, 14, bgnbd)  # the propensity features of the same customers
        rs = ranking_set(snap, part, None, drop_empty_groups=False)
        t1 = time.perf_counter()
        scores = booster.predict(rs.X)
        predict_s += time.perf_counter() - t1
        top_k(rs.cand, scores, part, lines.n_customers, 10, with_scores=True)
        rows += len(scores)
        last_X = rs.X
    total = time.perf_counter() - t0
    # bare predict on one chunk's matrix, repeated to the same number of rows
    t1 = time.perf_counter()
    done = 0
    while done < rows:
        booster.predict(last_X)
        done += len(last_X)
    bare = time.perf_counter() - t1
    print(f"end to end      {rows:>10,} rows in {total:6.2f} s -> {rows / total:>9,.0f} rows/s")
    print(f"  of which predict                  {predict_s:6.2f} s")
    print(f"bare predict    {done:>10,} rows in {bare:6.2f} s -> {done / bare:>9,.0f} rows/s")
    print(f"ratio end-to-end / bare predict throughput: {(rows / total) / (done / bare):.2f}")
    print(f"peak RSS {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
