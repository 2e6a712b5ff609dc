"""Implicit feedback on MovieLens-1M: mfjax iALS and BPR against ``implicit`` and most-popular.

Protocol: ML-1M (``mfjax.datasets.movielens("1m")``, cached in ~/.cache/mfjax),
binarized: a rating >= 4 is a positive (value 1), everything else is dropped. Per
user with >= 5 positives a seeded 20 % (``round(0.2 c)``, seed 0) of the positives
is held out; every user keeps the rest. Each model ranks all items not among the
user's training positives; P@10, Recall@20 (|hits| / min(20, |held out|), the truncated recall), NDCG@10 (binary
gains) are averaged over the users with held-out positives, all computed by the
same code here from each model's top-20 lists. Fit seconds are wall time of one
fit, compile included (a fresh process: nothing is cached before the first fit).

Threads: BLAS/OpenMP pools limited to 1 by threadpoolctl (``implicit`` asks for
it); ``implicit`` gets ``num_threads=--threads`` (default 2), and JAX's CPU
backend uses the machine's cores (2 here), so both use 2 threads.

``--tune`` instead carves a validation split the same way from the TRAINING
positives (seed 1) and scores a small grid there; the test positives are never
looked at. Run from the repository root::

    python benchmarks/bench_implicit.py [--threads 2] [--no-record]
    python benchmarks/bench_implicit.py --tune ials|bpr
"""
from __future__ import annotations

import argparse
import itertools
import os
import time

import numpy as np

import _common
import mfjax


def positives():
    r = mfjax.datasets.movielens("1m")
    pos = r.subset(r.ratings >= 4)
    return mfjax.Ratings(pos.users, pos.items, np.ones(len(pos)), pos.timestamps, pos.user_ids,
                         pos.item_ids)


def holdout(r, seed, fraction=0.2, min_positives=5):
    """(train, test) with round(fraction c) of each user's c >= min_positives held out."""
    c = np.bincount(r.users, minlength=r.n_users)
    n_test = np.where(c >= min_positives, np.floor(fraction * c + 0.5).astype(np.int64), 0)
    key = np.random.default_rng(seed).random(len(r))
    order = np.lexsort((key, r.users))
    start = np.concatenate([[0], np.cumsum(c)[:-1]])
    rank = np.arange(len(r)) - start[r.users[order]]
    mask = np.zeros(len(r), bool)
    mask[order[rank < n_test[r.users[order]]]] = True
    return r.subset(~mask), r.subset(mask)


def metrics(top, test):
    """P@10, R@20, NDCG@10 of top lists [n_users, >=20] (item indices) against test."""
    users = np.unique(test.users)
    rel = {}
    for u, i in zip(test.users, test.items):
        rel.setdefault(u, set()).add(i)
    p10 = r20 = nd = 0.0
    disc = 1 / np.log2(np.arange(2, 12))
    for u in users:
        s = rel[u]
        h = np.array([i in s for i in top[u, :20]], float)
        p10 += h[:10].sum() / 10
        r20 += h.sum() / min(len(s), 20)  # truncated recall (Liang et al. 2018)
        nd += (h[:10] @ disc) / disc[: min(len(s), 10)].sum()
    n = len(users)
    return {"P@10": p10 / n, "R@20": r20 / n, "NDCG@10": nd / n}


def mf_top(model, train):
    users = np.arange(train.n_users)
    from mfjax.serving.recommend import recommend_indices

    idx, _ = recommend_indices(model.params, users, 20, exclude=(model.seen_indptr, model.seen_items))
    return idx


def run_mfjax(train, test, **kw):
    t = time.perf_counter()
    m = mfjax.fit(train, progress=False, **kw)
    sec = time.perf_counter() - t
    return {**metrics(mf_top(m, train), test), "seconds": sec}, m


def run_implicit(train, test, kind, threads):
    import implicit
    from threadpoolctl import threadpool_limits

    X = train.to_csr().tocsr().astype(np.float32)
    with threadpool_limits(1):
        if kind == "als":
            model = implicit.cpu.als.AlternatingLeastSquares(factors=64, iterations=15,
                                                             random_state=0, num_threads=threads)
        else:
            model = implicit.cpu.bpr.BayesianPersonalizedRanking(factors=64, iterations=100,
                                                                random_state=0, num_threads=threads)
        t = time.perf_counter()
        model.fit(X, show_progress=False)
        sec = time.perf_counter() - t
        ids, _ = model.recommend(np.arange(X.shape[0]), X, N=20, filter_already_liked_items=True)
    return {**metrics(ids, test), "seconds": sec}


def run_popular(train, test):
    t = time.perf_counter()
    pop = np.bincount(train.items, minlength=train.n_items).astype(float)
    order = np.argsort(-pop, kind="stable")
    sec = time.perf_counter() - t
    seen = {}
    for u, i in zip(train.users, train.items):
        seen.setdefault(u, set()).add(i)
    top = np.zeros((train.n_users, 20), np.int64)
    for u in range(train.n_users):
        s = seen.get(u, set())
        top[u] = [i for i in order[: 20 + len(s)] if i not in s][:20]
    return {**metrics(top, test), "seconds": sec}


GRIDS = {
    "ials": dict(rank=[64], reg=[0.01], unobserved_weight=[0.3], alpha=[3.0, 10.0],
                 nu=[1.0, 0.5], epochs=[8]),
    "bpr": dict(rank=[64], reg=[0.001, 0.0025, 0.01], learning_rate=[0.005, 0.01],
                epochs=[25], batch_size=[4096]),
}


def tune(kind, train):
    fit_part, val = holdout(train, seed=1)
    grid = GRIDS[kind]
    for values in itertools.product(*grid.values()):
        kw = dict(zip(grid, values))
        res, _ = run_mfjax(fit_part, val, objective=kind, **kw)
        print(kw, {k: round(v, 4) for k, v in res.items()}, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tune", choices=["ials", "bpr"])
    ap.add_argument("--no-record", action="store_true")
    a = ap.parse_args()
    train, test = holdout(positives(), seed=0)
    if a.tune:
        return tune(a.tune, train)
    rows = []
    for name, f in [("most popular", lambda: run_popular(train, test)),
                    ("implicit ALS (64 factors, 15 it.)", lambda: run_implicit(train, test, "als", a.threads)),
                    ("implicit BPR (64 factors, 100 it.)", lambda: run_implicit(train, test, "bpr", a.threads)),
                    ("mfjax iALS defaults", lambda: run_mfjax(train, test, objective="ials")[0]),
                    ("mfjax iALS, cg_steps=0 (exact)", lambda: run_mfjax(train, test, objective="ials",
                                                                         cg_steps=0)[0]),
                    ("mfjax BPR defaults", lambda: run_mfjax(train, test, objective="bpr")[0])]:
        res = f()
        print(name, {k: round(v, 4) for k, v in res.items()}, flush=True)
        rows.append([name, f"{res['P@10']:.3f}", f"{res['R@20']:.3f}", f"{res['NDCG@10']:.3f}",
                     f"{res['seconds']:.2f}"])
    table = _common.markdown_table(["model", "P@10", "Recall@20", "NDCG@10", "fit s"], rows)
    print(table)
    if not a.no_record:
        body = (f"ML-1M, rating >= 4 positive; {len(train):,} train / {len(test):,} held-out "
                f"positives; threads: implicit num_threads={a.threads}, BLAS 1 (threadpoolctl), "
                f"JAX default ({os.cpu_count()} cores).\n\n{table}\n")
        _common.append_results("Implicit feedback, ML-1M (bench_implicit.py)",
                               _common.command_line("bench_implicit.py"), body, ["implicit"])


if __name__ == "__main__":
    main()
