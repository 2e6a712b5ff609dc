"""Logistic MF on MovieLens-1M: mfjax ``LogisticMF()`` against ``implicit``'s LMF and most-popular.

Protocol: the implicit benchmark's (:mod:`bench_implicit`): ML-1M binarized (a rating
>= 4 is a positive of value 1, the rest dropped), a seeded per-user 20 % holdout of the
positives (users with >= 5), every model ranks all items outside the user's training
positives, P@10, Recall@20 and NDCG@10 by the same code from each model's top-20.

Each model is fitted ``--repeats`` times in this process (same seed, so the same
model); the table gives the median fit seconds, and the first mfjax fit separately
(it compiles; the persistent JIT cache is off here, ``MFJAX_JIT_CACHE=0``, so every
run of this script pays the compile once). Threads as in :mod:`bench_implicit`:
``implicit`` with ``num_threads=--threads`` and BLAS 1, JAX the machine's cores.

``--tune`` instead carves a validation split the same way from the TRAINING positives
(seed 1) and scores a grid there (``--grid 'alpha=8,16 reg=30,100'``, the other fields
at their defaults); the test positives are never looked at. Run from the repository
root::

    python benchmarks/bench_logistic_mf.py [--threads 2] [--repeats 3] [--no-record]
    python benchmarks/bench_logistic_mf.py --tune --grid 'alpha=8,16 reg=30,100'
"""
from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time

os.environ.setdefault("MFJAX_JIT_CACHE", "0")

import numpy as np  # noqa: E402

import _common  # noqa: E402
import bench_implicit as bi  # noqa: E402
import mfjax  # noqa: E402


def run_mfjax(train, test, spec):
    t = time.perf_counter()
    model = mfjax.fit(train, spec, progress=False)
    sec = time.perf_counter() - t
    return {**bi.metrics(bi.mf_top(model, train), test), "seconds": sec}


def run_implicit_lmf(train, test, threads):
    import implicit
    from threadpoolctl import threadpool_limits

    X = train.to_csr().tocsr().astype(np.float32)
    with threadpool_limits(1):
        model = implicit.cpu.lmf.LogisticMatrixFactorization(random_state=0, num_threads=threads)
        t = time.perf_counter()
        model.fit(X, show_progress=False)
        sec = time.perf_counter() - t
        ids, _ = model.recommend(np.arange(X.shape[0]), X, N=20, filter_already_liked_items=True)
    return {**bi.metrics(ids, test), "seconds": sec}


def parse_grid(text: str) -> dict:
    """``'alpha=8,16 reg=30'`` -> ``{"alpha": [8.0, 16.0], "reg": [30.0]}`` (ints stay ints)."""
    grid = {}
    for part in text.split():
        name, values = part.split("=", 1)
        grid[name] = [int(v) if v.lstrip("-").isdigit() else float(v) for v in values.split(",")]
    return grid


def tune(train, grid: dict):
    fit_part, val = bi.holdout(train, seed=1)
    print("most popular (validation)", round(bi.run_popular(fit_part, val)["NDCG@10"], 4))
    for values in itertools.product(*grid.values()):
        kw = dict(zip(grid, values))
        res = run_mfjax(fit_part, val, mfjax.LogisticMF(**kw))
        print(kw, {k: round(float(v), 4) for k, v in res.items()}, flush=True)


def repeated(f, repeats: int):
    """The last result of ``repeats`` calls, with the median and the first seconds."""
    runs = [f() for _ in range(repeats)]
    secs = [r["seconds"] for r in runs]
    return {**runs[-1], "seconds": statistics.median(secs), "first": secs[0], "all": secs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--grid", default="alpha=8,16 reg=30,100")
    ap.add_argument("--no-record", action="store_true")
    a = ap.parse_args()
    train, test = bi.holdout(bi.positives(), seed=0)
    if a.tune:
        return tune(train, parse_grid(a.grid))
    spec = mfjax.LogisticMF()
    results = {}
    for name, f in [("most popular", lambda: bi.run_popular(train, test)),
                    ("implicit LMF defaults", lambda: run_implicit_lmf(train, test, a.threads)),
                    ("mfjax LogisticMF() defaults", lambda: run_mfjax(train, test, spec))]:
        results[name] = res = repeated(f, a.repeats)
        print(name, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()},
              flush=True)
    rows = [[n, f"{r['P@10']:.3f}", f"{r['R@20']:.3f}", f"{r['NDCG@10']:.3f}",
             f"{r['seconds']:.2f}", f"{r['first']:.2f}", ", ".join(f"{s:.2f}" for s in r["all"])]
            for n, r in results.items()]
    table = _common.markdown_table(["model", "P@10", "Recall@20", "NDCG@10", "fit s (median)",
                                    "first fit s", "all fits s"], rows)
    ours, imp = results["mfjax LogisticMF() defaults"], results["implicit LMF defaults"]
    best = max(imp["NDCG@10"], results["most popular"]["NDCG@10"])
    ratios = (f"Same-run ratios: NDCG@10 mfjax / max(implicit LMF, popular) = "
              f"{ours['NDCG@10'] / best:.2f} (goal >= 1.25); median fit time mfjax / implicit "
              f"LMF = {ours['seconds'] / imp['seconds']:.2f} (goal <= 1), first fit (compile "
              f"included) / implicit median = {ours['first'] / imp['seconds']:.2f}.")
    print(table, "\n", ratios)
    if not a.no_record:
        body = (f"ML-1M, rating >= 4 positive; {len(train):,} train / {len(test):,} held-out "
                f"positives; {a.repeats} fits each in one process; threads: implicit "
                f"num_threads={a.threads}, BLAS 1 (threadpoolctl), JAX default "
                f"({os.cpu_count()} cores); MFJAX_JIT_CACHE={os.environ['MFJAX_JIT_CACHE']}; "
                f"mfjax spec: `{spec!r}`.\n\n{table}\n\n{ratios}\n")
        _common.append_results("Logistic MF, ML-1M (bench_logistic_mf.py)",
                               _common.command_line("bench_logistic_mf.py"), body, ["implicit"])


if __name__ == "__main__":
    main()
