"""Model selection (#19): cross-validation against Surprise, a 16-trial iALS grid search.

- ``cv``: ML-100K, 5 folds (``mfjax.split.kfold(seed=0)``). ``mfjax.cross_validate``
  with the default explicit spec (``fit(train)`` with no model: BayesianMF at this
  size), against Surprise's ``SVD(n_factors=200, n_epochs=100, lr_all=0.005,
  reg_all=0.1)`` fitted and tested on the same folds (a loop of ``fit``/``test``, what
  Surprise's ``cross_validate`` does per fold). RMSE per fold and seconds.
- ``grid``: ML-1M binarized (rating >= 4 positive), ``split.per_user(0.2, seed=0)``
  validation. A 16-trial ImplicitALS grid (4 reg x 4 unobserved_weight, other fields
  the defaults) through ``mfjax.search`` (vectorized: vmapped XLA sweeps), against the
  same 16 specs fitted one by one with ``kernel=False`` (the same XLA sweeps, so the
  metrics must be equal) and with the defaults (``kernel="auto"``: the C++ kernel on a
  CPU). Also ``implicit``'s ALS over the same 16 settings one by one, with the mapping
  described in :func:`implicit_settings`. NDCG@10 of the best trial against the
  defaults'.

    python benchmarks/bench_selection.py [--only cv|grid] [--no-record]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

REGS = [0.003, 0.01, 0.03, 0.1]
UNOBSERVED = [0.1, 0.3, 1.0, 3.0]


def bench_cv() -> str:
    import mfjax
    import pandas as pd
    from surprise import SVD, Dataset, Reader, accuracy

    r = mfjax.datasets.movielens("100k", download=False)
    pairs = mfjax.split.kfold(r, 5, seed=0)
    t0 = time.perf_counter()
    df = mfjax.cross_validate(None, folds=pairs, progress=False)
    ours = time.perf_counter() - t0
    reader = Reader(rating_scale=r.rating_range)
    frame = r.to_frame()[["user", "item", "rating"]]
    data = Dataset.load_from_df(frame, reader)
    rows = []
    t0 = time.perf_counter()
    for train, test in pairs:
        trainset = data.construct_trainset(list(train.to_frame()[["user", "item", "rating"]]
                                                .assign(ts=None).itertuples(index=False, name=None)))
        testset = data.construct_testset(list(test.to_frame()[["user", "item", "rating"]]
                                              .assign(ts=None).itertuples(index=False, name=None)))
        t = time.perf_counter()
        algo = SVD(n_factors=200, n_epochs=100, lr_all=0.005, reg_all=0.1, random_state=0)
        algo.fit(trainset)
        rows.append({"rmse": accuracy.rmse(algo.test(testset), verbose=False),
                     "seconds": time.perf_counter() - t})
    theirs = time.perf_counter() - t0
    s = pd.DataFrame(rows)
    table = C.markdown_table(
        ["", *[f"fold {j + 1}" for j in range(5)], "mean"],
        [["mfjax cross_validate RMSE (BayesianMF defaults)", *[f"{x:.4f}" for x in df["rmse"]],
          f"{df['rmse'].mean():.4f}"],
         ["mfjax fit s", *[f"{x:.2f}" for x in df["fit_s"]], f"{df['fit_s'].mean():.2f}"],
         ["Surprise SVD(200 f., 100 ep.) RMSE", *[f"{x:.4f}" for x in s["rmse"]],
          f"{s['rmse'].mean():.4f}"],
         ["Surprise fit+test s", *[f"{x:.2f}" for x in s["seconds"]], f"{s['seconds'].mean():.2f}"]])
    return (f"ML-100K, 5 folds (kfold seed 0). Total wall time: mfjax cross_validate "
            f"{ours:.1f} s (fits, tests and the first fold's compile), Surprise {theirs:.1f} s "
            f"(ratio {ours / theirs:.2f}).\n\n{table}\n")


def implicit_settings(reg: float, unobserved: float, alpha: float, nu: float, train) -> dict:
    """``implicit``'s (regularization, alpha) for mfjax's (reg, unobserved_weight).

    implicit minimises Σ_all c (p − xᵀy)² + λ_imp (Σ‖x‖² + Σ‖y‖²) with c = 1 + a·v on
    interactions and 1 elsewhere. mfjax's L, divided by α0, has weight 1 on every pair,
    (1 + α·v)/α0 + 1 on interactions and λ λ̃_u / α0 per row, λ̃_u = (|I_u| + α0 n)^ν
    frequency-scaled (no counterpart in implicit): λ_imp = λ · mean_u(λ̃_u) / α0 and
    a = (1 + α)/α0 (v = 1).
    """
    counts = np.bincount(train.users, minlength=train.n_users)
    lam = float(np.mean((counts + unobserved * train.n_items) ** nu))
    return {"regularization": reg * lam / unobserved, "alpha": (1.0 + alpha) / unobserved}


def run_implicit(train, setting: dict, threads: int = 2):
    import implicit
    from threadpoolctl import threadpool_limits

    X = train.to_csr().tocsr().astype(np.float32)
    with threadpool_limits(1):
        model = implicit.cpu.als.AlternatingLeastSquares(factors=64, iterations=4, random_state=0,
                                                         num_threads=threads, **setting)
        t = time.perf_counter()
        model.fit(X, show_progress=False)
        return model, time.perf_counter() - t


def bench_grid() -> str:
    import mfjax
    from mfjax.objectives.explicit import Params
    from mfjax.selection.search import trial_model
    from mfjax.training.config import resolve

    r = mfjax.datasets.movielens("1m", download=False)
    keep = r.ratings >= 4
    r = mfjax.Ratings(r.users[keep], r.items[keep], np.ones(int(keep.sum()), np.float32), None,
                      r.user_ids, r.item_ids)
    train, val = mfjax.split.per_user(r, 0.2, seed=0)
    base = mfjax.ImplicitALS()
    space = {"reg": REGS, "unobserved_weight": UNOBSERVED}
    metric = "ndcg@10"
    ndcg = lambda m: mfjax.evaluate_ranking(m, train, val, k=10, threshold=None)["ndcg@10"]

    t0 = time.perf_counter()
    res = mfjax.search(train, base, space, validation=val, metric=metric, vectorize=True,
                       progress=False)
    t_vec = time.perf_counter() - t0
    t0 = time.perf_counter()
    res_auto = mfjax.search(train, base, space, validation=val, metric=metric, progress=False)
    t_auto = time.perf_counter() - t0
    auto_route = res_auto.routes[res_auto.table["route"].iloc[0]]
    specs = [dataclasses.replace(base, reg=g, unobserved_weight=w) for g in REGS for w in UNOBSERVED]
    seq = {}
    for label, kw in (("xla", {"kernel": False}), ("default", {})):
        t0, scores, fit_s = time.perf_counter(), [], 0.0
        for s in specs:
            t = time.perf_counter()
            m = mfjax.fit(train, dataclasses.replace(s, **kw), progress=False)
            fit_s += time.perf_counter() - t
            scores.append(ndcg(m))
        seq[label] = (time.perf_counter() - t0, fit_s, scores)
    vec_scores = [float(res.table.set_index("trial").loc[j, metric]) for j in range(16)]
    diff = max(abs(a - b) for a, b in zip(vec_scores, seq["xla"][2]))
    t0, imp_scores, imp_fit = time.perf_counter(), [], 0.0
    run = resolve(train, base, seed=0)[1]
    for s in specs:
        model, sec = run_implicit(train, implicit_settings(s.reg, s.unobserved_weight, s.alpha,
                                                           s.nu, train))
        imp_fit += sec
        P, Q = (np.asarray(x.to_numpy() if hasattr(x, "to_numpy") else x, np.float32)
                for x in (model.user_factors, model.item_factors))
        z = lambda n: np.zeros(n, np.float32)
        m = trial_model(train, base, run, Params(P, Q, z(len(P)), z(len(Q)), np.float32(0)), [],
                        "implicit")
        imp_scores.append(ndcg(m))
    t_imp = time.perf_counter() - t0
    default = ndcg(mfjax.fit(train, base, progress=False))
    best = res.table.iloc[0]
    rows = [["mfjax.search, vectorize=True (one XLA program, CG sweeps vmapped)", f"{t_vec:.1f}", "-",
             f"{max(vec_scores):.4f}"],
            [f"mfjax.search, default vectorize='auto' ({auto_route.split(' (')[0]})",
             f"{t_auto:.1f}", f"{res_auto.table['fit_s'].sum():.1f}",
             f"{res_auto.table[metric].max():.4f}"],
            ["16 fit calls, kernel=False (same XLA sweeps)", f"{seq['xla'][0]:.1f}",
             f"{seq['xla'][1]:.1f}", f"{max(seq['xla'][2]):.4f}"],
            ["16 fit calls, defaults (C++ kernel)", f"{seq['default'][0]:.1f}",
             f"{seq['default'][1]:.1f}", f"{max(seq['default'][2]):.4f}"],
            ["implicit ALS, 16 settings (4 it., mapped)", f"{t_imp:.1f}", f"{imp_fit:.1f}",
             f"{max(imp_scores):.4f}"]]
    table = C.markdown_table(["run", "total s (fit + NDCG)", "fit s", "best NDCG@10"], rows)
    grid = C.markdown_table(["reg \\ unobserved_weight", *map(str, UNOBSERVED)],
                            [[str(g), *[f"{vec_scores[4 * a + b]:.4f}" for b in range(4)]]
                             for a, g in enumerate(REGS)])
    return (f"ML-1M, rating >= 4 positive; per-user 20% validation (seed 0): {len(train):,} train "
            f"/ {len(val):,} validation. Grid: reg {REGS} x unobserved_weight {UNOBSERVED}, other "
            f"fields ImplicitALS defaults (rank 64, 4 epochs, cg_steps resolved to 3 on CPU).\n\n"
            f"{table}\n\nVectorized / sequential (same route): {t_vec / seq['xla'][0]:.2f}x; "
            f"vectorized / sequential defaults (kernel): {t_vec / seq['default'][0]:.2f}x; "
            f"search defaults / sequential defaults: {t_auto / seq['default'][0]:.2f}x. "
            f"Largest |NDCG@10 difference| vectorized vs kernel=False fits: {diff:.2e}.\n\n"
            f"Best trial: reg={best['reg']}, unobserved_weight={best['unobserved_weight']}, "
            f"NDCG@10 {best[metric]:.4f}; ImplicitALS() defaults: {default:.4f}.\n\n"
            f"NDCG@10 per trial (vectorized):\n\n{grid}\n\nimplicit mapping: regularization = "
            f"reg * mean_u((|I_u| + a0 n_items)^nu) / a0, alpha = (1 + alpha) / a0 "
            f"(bench_selection.implicit_settings).\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=["cv", "grid"])
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args(argv)
    parts = []
    if a.only in (None, "cv"):
        parts.append("### Cross-validation\n\n" + bench_cv())
        print(parts[-1], flush=True)
    if a.only in (None, "grid"):
        parts.append("### Grid search\n\n" + bench_grid())
        print(parts[-1], flush=True)
    if not a.no_record:
        C.append_results("Model selection (bench_selection.py)", C.command_line("bench_selection.py"),
                         "\n".join(parts), ["surprise", "implicit"])


if __name__ == "__main__":
    main()
