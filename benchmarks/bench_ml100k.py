"""Benchmark (a): ML-100K, 5 folds, mfjax with the ``fit`` defaults against Surprise SVD.

Folds come from ``mfjax.split.kfold(ratings, 5, seed=0)``. On each fold, in the same
process and interleaved fold by fold (so load from other jobs hits every system
alike), this trains:

- mfjax: ``mfjax.fit(train)`` with every default, scored with ``mfjax.evaluate``,
  once as a user running the folds in one process would (the first fold pays
  JAX's start-up and the compile; later folds of the same shape reuse the
  compiled epoch) and once "cold", with mfjax's compiled training programs
  (epoch, optimizer init, member averaging) dropped first, so every fold
  compiles them;
- the explicit solvers by name (:data:`SOLVERS`: optax, als, gibbs; the defaults are
  gibbs at this size since issue #13);
- Surprise SVD with its defaults (k=100, 20 epochs, lr 0.005, reg 0.02);
- Surprise SVD tuned (n_factors=200, n_epochs=100, lr_all=0.005, reg_all=0.1),

and reports RMSE, MAE and fit seconds per fold, their means, and the ratios
mfjax / Surprise. Surprise's fit time is ``algo.fit(trainset)`` only (building
its trainset is not counted); mfjax's is the whole ``fit`` call (host sort,
layout, compilation, epochs). "Without compilation" subtracts the compile
estimate, first epoch minus the median later epoch, from the mfjax time.
Predictions of all systems are clipped to [1, 5].

Targets (issue #6): a mean RMSE below tuned Surprise's in the same run, with a
mean fit time <= 1/3 of it.

    python benchmarks/bench_ml100k.py                  # needs `pip install -e ".[bench]"`
    python benchmarks/bench_ml100k.py --folds 2 --no-results
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

MFJAX = {"mfjax, fit defaults": False, "mfjax, fit defaults, cold": True}
#: The explicit solvers by name (issue #13); "fit defaults" is gibbs at this size.
SOLVERS = {"mfjax optax (rank 128, 25 epochs)": dict(solver="optax"),
           "mfjax als": dict(solver="als"), "mfjax gibbs": dict(solver="gibbs")}
SURPRISE = {
    "Surprise SVD, defaults": {},
    "Surprise SVD, tuned": dict(n_factors=200, n_epochs=100, lr_all=0.005, reg_all=0.1),
}


def run_mfjax(train, test, cold: bool = False, kwargs=None) -> dict:
    import mfjax

    if cold:  # forget every compiled program, so this fit compiles them again
        import jax
        from mfjax.solvers.minibatch import ensemble, epoch, optimizers

        jax.clear_caches()
        epoch.cached_epoch.cache_clear()
        optimizers.opt_init.cache_clear()
        ensemble.combine_members.clear_cache()
    t = time.perf_counter()
    model = mfjax.fit(train, progress=False, **(kwargs or {}))
    seconds = time.perf_counter() - t
    ev = mfjax.evaluate(model, test)
    secs = [h["seconds"] for h in model.history]
    compile_s = max(0.0, secs[0] - float(np.median(secs[1:]))) if len(secs) > 1 else 0.0
    return {"rmse": ev["rmse"], "mae": ev["mae"], "fit_s": seconds,
            "fit_s_no_compile": seconds - compile_s, "spec": repr(model.spec)}


def run_surprise(train, test, kwargs) -> dict:
    import pandas as pd
    from surprise import SVD, Dataset, Reader

    df = pd.DataFrame({"u": train.user_ids[train.users], "i": train.item_ids[train.items],
                       "r": train.ratings.astype(np.float64)})
    trainset = Dataset.load_from_df(df, Reader(rating_scale=(1, 5))).build_full_trainset()
    algo = SVD(random_state=0, **kwargs)
    t = time.perf_counter()
    algo.fit(trainset)
    seconds = time.perf_counter() - t
    pairs = zip(test.user_ids[test.users], test.item_ids[test.items])
    pred = np.array([algo.predict(u, i, clip=True).est for u, i in pairs])
    err = pred - test.ratings.astype(np.float64)
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err))),
            "fit_s": seconds, "fit_s_no_compile": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=5, help="run the first N of the 5 folds")
    ap.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument("--json", help="also write the per-fold results here")
    args = ap.parse_args()

    import mfjax

    ratings = mfjax.datasets.movielens("100k")
    folds = mfjax.split.kfold(ratings, 5, seed=0)[: args.folds]
    try:
        import surprise  # noqa: F401
        systems = [*MFJAX, *SOLVERS, *SURPRISE]
    except ImportError:
        print("scikit-surprise is not installed (pip install -e '.[bench]'): mfjax only; compare "
              "with ../shared/ANCHORS.md (not the same run)")
        systems = [*MFJAX, *SOLVERS]
    per = {s: [] for s in systems}
    for j, (train, test) in enumerate(folds):
        for s in systems:
            res = (run_mfjax(train, test, MFJAX[s]) if s in MFJAX else
                   run_mfjax(train, test, False, SOLVERS[s]) if s in SOLVERS else
                   run_surprise(train, test, SURPRISE[s]))
            per[s].append(res)
            print(f"fold {j + 1}: {s:24s} RMSE {res['rmse']:.4f}  MAE {res['mae']:.4f}  "
                  f"fit {res['fit_s']:.2f} s", flush=True)

    mean = {s: {k: float(np.mean([r[k] for r in rs])) for k in ("rmse", "mae", "fit_s", "fit_s_no_compile")}
            for s, rs in per.items()}
    m = mean["mfjax, fit defaults"]
    rows = []
    for s in systems:
        x = mean[s]
        ratio = ""
        if s not in MFJAX and s not in SOLVERS:
            ratio = (f"RMSE {m['rmse'] / x['rmse']:.3f}x, MAE {m['mae'] / x['mae']:.3f}x, "
                     f"time {m['fit_s'] / x['fit_s']:.2f}x ({m['fit_s_no_compile'] / x['fit_s']:.2f}x "
                     "without compile)")
        rows.append((s, f"{x['rmse']:.4f}", f"{x['mae']:.4f}", f"{x['fit_s']:.2f}",
                     f"{x['fit_s_no_compile']:.2f}", ratio or "-"))
    table = C.markdown_table(("system", "RMSE", "MAE", "fit s/fold", "fit s/fold w/o compile",
                              "mfjax / this (same run)"), rows)
    folds_table = C.markdown_table(
        ("fold",) + tuple(f"{s} RMSE / s" for s in systems),
        [(j + 1, *(f"{per[s][j]['rmse']:.4f} / {per[s][j]['fit_s']:.2f}" for s in systems))
         for j in range(len(folds))])
    setting = f"mfjax defaults: {per['mfjax, fit defaults'][0]['spec']}"
    verdict = ""
    if "Surprise SVD, tuned" in mean:
        tuned, cold = mean["Surprise SVD, tuned"], mean["mfjax, fit defaults, cold"]
        verdict = (f"\nTargets: RMSE {m['rmse']:.4f} vs tuned Surprise {tuned['rmse']:.4f} "
                   f"({'met' if m['rmse'] < tuned['rmse'] else 'MISSED'}); fit time "
                   f"{m['fit_s']:.2f} s ({cold['fit_s']:.2f} s when every fold compiles) vs 1/3 of "
                   f"{tuned['fit_s']:.2f} s = {tuned['fit_s'] / 3:.2f} s "
                   f"({'met' if cold['fit_s'] <= tuned['fit_s'] / 3 else 'MISSED'}).\n")
    print(table + "\n\n" + folds_table + "\n" + setting + verdict)
    C.write_json(args.json, {"per_fold": per, "mean": mean})
    if not args.no_results:
        body = (f"{len(folds)} folds of `mfjax.split.kfold(ML-100K, 5, seed=0)`; means over folds.\n"
                f"{setting}.\n\n{table}\n\nPer fold:\n\n{folds_table}\n{verdict}")
        C.append_results("ML-100K, 5-fold: mfjax fit defaults vs Surprise SVD",
                         C.command_line("bench_ml100k.py"), body, ("surprise",))


if __name__ == "__main__":
    main()
