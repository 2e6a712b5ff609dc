"""Seconds per iALS sweep (users + items), Cholesky vs CG, at the ML-1M shape.

Synthetic data: 6,040 users, 3,706 items, 575,000 distinct pairs with
Zipf-like item popularity and user activity (the ML-1M ratings>=4 shape),
float32, jitted, CPU. Run from the repository root::

    python benchmarks/bench_ials.py [--ranks 64 128] [--repeats 3]

Prints one line per (rank, method): compile+first sweep and the median of
``--repeats`` further sweeps.

Measured 2026-12-01 on the shared 2-core CPU (other jobs running, load 2-8,
so +-30 % and worse for Cholesky at k=128), float32, seconds per sweep
(median of 3-5), chunk_rows=256, chunk_nnz=2048:

    method                                  k=64        k=128
    cholesky, block=32 (default of solve_*) 0.40-0.65   1.4-3.0
    cholesky, block=16                      0.40         -
    cholesky, block=1 (an outer product     1.32        25.8 (19-32)
      per interaction)
    cg, 3 steps, row-chunked                0.37-0.45   0.67-0.72
      (default of als_sweep)
    cg, 3 steps, unchunked (earlier code,   1.39        2.55
      whole [nnz, k] gathers)
    cg, 1 step, unchunked                   0.59        1.34

Quality per time (/tmp script, same data and hyperparameters; L after n
sweeps, time of sweeps 2..n):

    k=64   cholesky  6 sweeps  2.20 s  L=465576
           cg        6 sweeps  2.04 s  L=466695   12 sweeps 4.47 s  L=456377
    k=128  cholesky  6 sweeps 15.25 s  L=412258
           cg        6 sweeps  3.56 s  L=414963   12 sweeps 7.38 s  L=401273

Cholesky is exact per half-step; 3-step warm-started CG is as fast at k=64
and 2-4x faster at k=128, slightly less progress per sweep, more per second.
The pre-block Cholesky (2048 outer products [2048, k, k] scatter-added per
inner step) took 1.84 s at k=64 (quiet) and 36.1 s at k=128 (load 7-8).
"""

import argparse
import time

import jax
import numpy as np

import _common  # noqa: F401  (puts the repository root on sys.path)
from mfjax import init_params
from mfjax.models.implicit_als import objective as im
from mfjax.data import interactions
from mfjax.models.implicit_als import solve as ia


def synthetic(n_users=6040, n_items=3706, nnz=575_000, seed=0):
    rng = np.random.default_rng(seed)
    pu = 1.0 / np.arange(1, n_users + 1) ** 0.6
    pi = 1.0 / np.arange(1, n_items + 1) ** 0.9
    keys = set()
    u_all, i_all = [], []
    while len(keys) < nnz:
        m = 2 * (nnz - len(keys))
        u = rng.choice(n_users, m, p=pu / pu.sum())
        i = rng.choice(n_items, m, p=pi / pi.sum())
        k = u.astype(np.int64) * n_items + i
        k = np.setdiff1d(np.unique(k), np.fromiter(keys, np.int64, len(keys)))[: nnz - len(keys)]
        keys.update(k.tolist())
    k = np.fromiter(keys, np.int64, len(keys))
    return k // n_items, k % n_items, rng.integers(1, 6, k.size).astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", nargs="+", default=["cholesky", "cg"])
    ap.add_argument("--cg-steps", type=int, default=3)
    ap.add_argument("--chunk-rows", type=int, default=256)
    ap.add_argument("--chunk-nnz", type=int, default=2048)
    ap.add_argument("--block", type=int, default=32)
    a = ap.parse_args()
    u, i, v = synthetic()
    data = interactions.build_implicit_data(u, i, v, n_users=6040, n_items=3706)
    print(f"{jax.devices()[0]}  nnz={len(u)}  {vars(a)}", flush=True)
    hp = dict(alpha=1.0, unobserved_weight=0.1, reg=0.01, nu=1.0)
    for k in a.ranks:
        params = init_params(jax.random.PRNGKey(0), 6040, 3706, k, init_scale=0.1)
        for m in a.methods:
            kw = dict(hp, method=m, cg_steps=a.cg_steps, chunk_rows=a.chunk_rows,
                      chunk_nnz=a.chunk_nnz, block=a.block)
            t0 = time.perf_counter()
            p = jax.block_until_ready(ia.als_sweep(params, data, **kw))
            first = time.perf_counter() - t0
            ts = []
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                p = jax.block_until_ready(ia.als_sweep(p, data, **kw))
                ts.append(time.perf_counter() - t0)
            obj = float(im.loss(p, data.user_rows, data.user_items, data.user_values, **hp))
            print(f"k={k:4d} {m:9s} first={first:7.2f}s  sweep median={np.median(ts):7.2f}s "
                  f"(all {', '.join(f'{t:.2f}' for t in ts)})  loss={obj:.6g}", flush=True)


if __name__ == "__main__":
    main()
