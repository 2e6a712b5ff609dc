"""Two checkouts of mfjax side by side in one run: a re-layout must not regress (#11, #18).

Each measurement runs in a fresh subprocess whose ``sys.path`` starts with one
checkout, alternating old/new so that load from other jobs hits both alike:

- ``ml100k``: ML-100K, 5 folds (``split.kfold(seed=0)``), ``fit`` defaults; RMSE and
  fit seconds per fold (one process per checkout and fold round, so each process
  compiles once, as a user's first fit does);
- ``ml1m_ials``: ML-1M binarized (ratings >= 4), a seeded 20% holdout, ``fit`` with
  ``objective="ials"`` defaults: fit seconds (the process's first fit, kernel load
  included) and test NDCG@10;
- ``ml20m``: the ML-20M shape (benchmarks/_common.py's planted model, 20M ratings,
  rank 64, reg 0.01, Adam lr 0.03, ``gradient="auto"`` = the fused kernel here),
  4 epochs; the median epoch after the first.

    python benchmarks/bench_versions.py --old /path/to/old/checkout          # both scenarios
    python benchmarks/bench_versions.py --old ../wt-old --only ml100k --rounds 1 --no-results
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

CHILD = r'''
import json, sys, time
root = sys.argv[1]
sys.path.insert(0, root); sys.path.insert(0, root + "/benchmarks")
import numpy as np
import mfjax
from mfjax import split
task = sys.argv[2]
out = {"mfjax": mfjax.__file__}
if task == "ml100k":
    r = mfjax.datasets.movielens("100k", download=False)
    rows = []
    for train, test in split.kfold(r, 5, seed=0):
        t0 = time.perf_counter()
        m = mfjax.fit(train, progress=False)
        s = time.perf_counter() - t0
        rows.append({"rmse": mfjax.evaluate(m, test)["rmse"], "seconds": s})
    out["folds"] = rows
elif task == "ml1m_ials":
    r = mfjax.datasets.movielens("1m", download=False)
    keep = r.ratings >= 4
    r = mfjax.Ratings(r.users[keep], r.items[keep], np.ones(int(keep.sum())), None, r.user_ids,
                      r.item_ids)
    train, test = split.holdout(r, 0.2, seed=0)
    t0 = time.perf_counter()
    m = mfjax.fit(train, objective="ials", progress=False)
    out["fit_seconds"] = time.perf_counter() - t0
    out["ndcg"] = mfjax.evaluate_ranking(m, train, test, k=10, threshold=None)["ndcg@10"]
else:
    import _common as C
    model = C.planted(138_493, 26_744, 8, seed=0)
    train = C.sample(model, 20_000_000, seed=1)
    t0 = time.perf_counter()
    m = mfjax.fit(train, solver="optax", rank=64, reg=0.01, learning_rate=0.03, epochs=4, progress=False)
    out["fit_seconds"] = time.perf_counter() - t0
    out["epochs"] = [h["seconds"] for h in m.history]
    out["gradient"] = m.config["gradient"]
print("RESULT " + json.dumps(out))
'''


def child(root: str, task: str) -> dict:
    env = dict(os.environ, PYTHONPATH=root)
    res = subprocess.run([sys.executable, "-c", CHILD, root, task], capture_output=True, text=True,
                         env=env, cwd=root)
    line = [l for l in res.stdout.splitlines() if l.startswith("RESULT ")]
    if res.returncode or not line:
        raise RuntimeError(f"{root} {task} failed:\n{res.stderr[-3000:]}")
    return json.loads(line[-1][7:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="the old checkout's root")
    ap.add_argument("--new", default=C.ROOT, help="the new checkout's root (default: this one)")
    ap.add_argument("--only", choices=["ml100k", "ml1m_ials", "ml20m"], default=None)
    ap.add_argument("--rounds", type=int, default=2, help="alternations per scenario")
    ap.add_argument("--no-results", action="store_true")
    args = ap.parse_args(argv)
    trees = {"old": os.path.abspath(args.old), "new": os.path.abspath(args.new)}
    tasks = [args.only] if args.only else ["ml100k", "ml1m_ials", "ml20m"]
    got = {(t, v): [] for t in tasks for v in trees}
    for t in tasks:
        for k in range(args.rounds):
            for v in (("old", "new") if k % 2 == 0 else ("new", "old")):
                r = child(trees[v], t)
                got[(t, v)].append(r)
                print(t, v, json.dumps(r)[:300], flush=True)
    rows = []
    for t in tasks:
        cells = {}
        for v in trees:
            runs = got[(t, v)]
            if t == "ml100k":
                rmse = statistics.mean(f["rmse"] for r in runs for f in r["folds"])
                secs = statistics.median(f["seconds"] for r in runs for f in r["folds"])
                cells[v] = (f"{rmse:.4f}", f"{secs:.2f}")
            elif t == "ml1m_ials":
                ndcg = statistics.mean(r["ndcg"] for r in runs)
                cells[v] = (f"{ndcg:.4f}", f"{statistics.median(r['fit_seconds'] for r in runs):.2f}")
            else:
                ep = statistics.median(e for r in runs for e in r["epochs"][1:])
                cells[v] = (runs[0]["gradient"], f"{ep:.2f}")
        ratio = float(cells["new"][1]) / float(cells["old"][1])
        label = {"ml100k": "ML-100K 5-fold: mean RMSE / median fit s per fold",
                 "ml1m_ials": "ML-1M iALS defaults: test NDCG@10 / median fit s",
                 "ml20m": "ML-20M shape: route / median epoch s (epochs 2-4)"}[t]
        rows.append([label, " / ".join(cells["old"]), " / ".join(cells["new"]), f"{ratio:.2f}"])
        print(rows[-1])
    table = C.markdown_table(["scenario", f"old ({trees['old']})", "new", "new/old time"], rows)
    print(table)
    if not args.no_results:
        C.append_results("Re-layout: old and new checkouts side by side",
                         C.command_line("bench_versions.py"), table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
