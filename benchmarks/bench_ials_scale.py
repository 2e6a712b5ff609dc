"""Seconds per iALS iteration at the ML-20M binarized shape: mfjax against ``implicit``.

The reference is ``implicit``'s published figure for ML-20M with ratings >= 4 at 64
factors: 0.33 s per iteration on an A6000 GPU, 0.84 s on CPU (``../shared/ANCHORS.md``).
Synthetic data of that shape: 138,493 users, 26,744 items, ``--nnz`` distinct
(user, item) pairs, value 1. Users and items are drawn with Zipf-like weights.
MovieLens-20M has 20,000,263 ratings, about half of them >= 4, hence the default
of 10M. One iteration is one sweep over the users and the items.

- mfjax: ``fit(objective="ials", rank=64, epochs=N)`` through the public path (on a
  CPU backend the C++ kernel, on a GPU the shared XLA half-step, on ``--mesh`` the
  sharded half-steps). Each sweep's wall time comes from ``history["seconds"]`` (the
  step ends with a device-to-host read of the loss, so the time is real). The first
  sweep includes compilation; the median of sweeps 2..N is reported. ``--methods
  cholesky cg`` also runs ``ImplicitALS(cg_steps=3)``, 3 warm-started CG steps for
  the items and an exact user solve.
- implicit (CPU only, ``--implicit``): ``AlternatingLeastSquares(factors=64,
  iterations=N)`` with its defaults (CG, 3 steps). Time is fit wall time / N, with
  ``num_threads`` = the core count and BLAS limited to 1 thread, as it asks.

Run from the repository root::

    python benchmarks/bench_ials_scale.py --implicit --methods cholesky cg --record
    python benchmarks/bench_ials_scale.py --implicit [--iterations 4] [--json OUT]
    python benchmarks/bench_ials_scale.py --mesh auto       # every device (GPU / TPU)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

import _common  # (also puts the repository root on sys.path)
import mfjax


def synthetic(n_users: int, n_items: int, nnz: int, seed: int = 0):
    """``nnz`` distinct pairs with Zipf-like user activity and item popularity."""
    rng = np.random.default_rng(seed)
    pu = 1.0 / np.arange(1, n_users + 1) ** 0.6
    pi = 1.0 / np.arange(1, n_items + 1) ** 0.9
    keys = np.zeros(0, np.int64)
    while keys.size < nnz:
        m = int(1.3 * (nnz - keys.size)) + 1000
        k = (rng.choice(n_users, m, p=pu / pu.sum()).astype(np.int64) * n_items
             + rng.choice(n_items, m, p=pi / pi.sum()))
        keys = np.unique(np.concatenate([keys, k]))
    keys = rng.permutation(keys)[:nnz]
    return keys // n_items, keys % n_items


def run_mfjax(train, rank, iterations, method, mesh):
    spec = mfjax.ImplicitALS(rank=rank, epochs=iterations, cg_steps=3 if method == "cg" else 0)
    t0 = time.perf_counter()
    m = mfjax.fit(train, spec, progress=False, mesh=mesh)
    total = time.perf_counter() - t0
    s = [h["seconds"] for h in m.history]
    return {"method": method, "sweeps_s": s, "first_s": s[0], "median_s": float(np.median(s[1:])),
            "fit_s": total, "loss": m.history[-1]["loss"], "kernel": m.spec.kernel,
            "mesh": m.config.get("mesh")}


def run_implicit(train, rank, iterations):
    import implicit
    from threadpoolctl import threadpool_limits

    csr = train.to_csr().tocsr().astype(np.float32)
    with threadpool_limits(1):
        model = implicit.cpu.als.AlternatingLeastSquares(
            factors=rank, iterations=iterations, num_threads=os.cpu_count() or 1, random_state=0)
        t0 = time.perf_counter()
        model.fit(csr, show_progress=False)
        total = time.perf_counter() - t0
    return {"version": implicit.__version__, "fit_s": total, "per_iteration_s": total / iterations}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=138_493)
    ap.add_argument("--items", type=int, default=26_744)
    ap.add_argument("--nnz", type=int, default=10_000_000)
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--methods", nargs="+", default=["cholesky"], choices=["cholesky", "cg"])
    ap.add_argument("--implicit", action="store_true", help="also time implicit's CPU ALS")
    ap.add_argument("--mesh", default=None, help="'auto': every device")
    ap.add_argument("--json", default=None)
    ap.add_argument("--record", action="store_true", help="append the table to RESULTS.md")
    a = ap.parse_args()

    import jax

    t0 = time.perf_counter()
    u, i = synthetic(a.users, a.items, a.nnz)
    train = mfjax.Ratings(u.astype(np.int32), i.astype(np.int32), np.ones(u.size, np.float32), None,
                          np.arange(a.users), np.arange(a.items))
    setup = time.perf_counter() - t0
    report = {"shape": [a.users, a.items, int(u.size)], "rank": a.rank,
              "iterations": a.iterations, "devices": [str(d) for d in jax.devices()],
              "versions": f"jax {jax.__version__}, python {platform.python_version()}",
              "cpus": os.cpu_count(), "data_s": setup, "mfjax": []}
    print(f"{report['devices'][0]} x{len(report['devices'])}  shape {report['shape']}  "
          f"rank {a.rank}  data {setup:.1f} s", flush=True)
    for method in a.methods:
        r = run_mfjax(train, a.rank, a.iterations, method, a.mesh)
        report["mfjax"].append(r)
        print(f"mfjax {method:8s} median {r['median_s']:.3f} s/iteration (first {r['first_s']:.2f} s, "
              f"all {', '.join(f'{s:.2f}' for s in r['sweeps_s'])}; kernel {r['kernel']}; "
              f"{r['mesh']})", flush=True)
    if a.implicit:
        r = report["implicit"] = run_implicit(train, a.rank, a.iterations)
        print(f"implicit {r['version']} ALS  {r['per_iteration_s']:.3f} s/iteration "
              f"(fit {r['fit_s']:.2f} s / {a.iterations})", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)
    if a.record:
        record(report, a)


def record(report, a):
    rows = [[f"mfjax iALS, {'exact (Cholesky)' if r['method'] == 'cholesky' else '3-step CG'}"
             f"{' (C++ kernel)' if r['kernel'] else ''}", f"{r['median_s']:.3f}",
             f"{r['first_s']:.2f}", ", ".join(f"{s:.2f}" for s in r["sweeps_s"])]
            for r in report["mfjax"]]
    imp = report.get("implicit")
    if imp:
        rows.append([f"implicit {imp['version']} ALS (CG, 3 steps)", f"{imp['per_iteration_s']:.3f}",
                     "-", f"fit {imp['fit_s']:.2f} s / {a.iterations}"])
    table = _common.markdown_table(["model", "s / iteration (median)", "first s", "all"], rows)
    nu, ni, n = report["shape"]
    body = (f"Synthetic ML-20M binarized shape: {nu:,} users x {ni:,} items, {n:,} interactions, "
            f"rank {a.rank}, {a.iterations} iterations each, same process; devices "
            f"{report['devices']}.\n\n{table}\n")
    _common.append_results("iALS seconds per iteration, ML-20M shape (bench_ials_scale.py)",
                           _common.command_line("bench_ials_scale.py"), body,
                           ["implicit"] if imp else [])


if __name__ == "__main__":
    main()
