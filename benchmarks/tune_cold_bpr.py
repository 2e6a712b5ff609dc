"""Tune BPR / WARP with item features for the cold-items benchmark on a VALIDATION split.

The validation split is carved from the benchmark's training data the same way as the
test (``cold_items(train, 0.2, seed=1)``); the test's cold items are never looked at.
Prints NDCG@20 / AUC on the validation cold items and the fit time for each setting::

    python benchmarks/tune_cold_bpr.py [name=value ...]   # one setting, or the grid below
"""
from __future__ import annotations

import sys
import time

import numpy as np

import mfjax
from bench_cold_start import SEED, cold_metrics, mfjax_scores
from bench_implicit import positives

GRID = [
    dict(loss="warp", identity_features=False),
    dict(loss="warp", identity_features=True),
    dict(loss="bpr", identity_features=False),
    dict(loss="bpr", identity_features=True),
]


def validation():
    r = positives()
    train, _ = mfjax.split.cold_items(r, 0.2, seed=SEED)
    fit, val = mfjax.split.cold_items(train, 0.2, seed=1)
    F = mfjax.Features(items=mfjax.datasets.movielens_features("1m").items)
    cold = np.unique(val.item_ids[val.items])
    users = np.unique(val.user_ids[val.users])
    rel = np.zeros((len(users), len(cold)), bool)
    rel[np.searchsorted(users, val.user_ids[val.users]),
        np.searchsorted(cold, val.item_ids[val.items])] = True
    return fit, F, cold, users, rel


def parse(arg: str):
    k, v = arg.split("=", 1)
    if v in ("True", "False"):
        return k, v == "True"
    try:
        return k, int(v)
    except ValueError:
        try:
            return k, float(v)
        except ValueError:
            return k, v


def main():
    fit, F, cold, users, rel = validation()
    grid = [dict(parse(a) for a in sys.argv[1:])] if sys.argv[1:] else GRID
    for kw in grid:
        t = time.perf_counter()
        m = mfjax.fit(fit, mfjax.BPR(**kw), features=F, progress=False)
        sec = time.perf_counter() - t
        res = cold_metrics(mfjax_scores(m, users, cold), rel)
        secs = [round(h["seconds"], 2) for h in m.history]
        print(kw, {k: round(v, 4) for k, v in res.items()}, f"{sec:.1f} s", secs,
              f"loss {m.history[-1]['loss']:.4f}", flush=True)


if __name__ == "__main__":
    main()
