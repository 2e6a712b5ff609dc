"""Time one jitted ALS sweep and one Gibbs sweep (after warm-up) on synthetic data.

Usage: python benchmarks/bench_explicit_solvers.py N_USERS N_ITEMS N_RATINGS RANK [als|gibbs|both] [REPS]
Run under `/usr/bin/time -v` for peak RSS. float32 (x64 off), solver="rowwise", the
layout ``fit`` uses (1024-row chunks, rows padded to blocks of 16) and host Gamma draws.
"""
import sys
import time

import jax
import numpy as np

import mfjax
from mfjax.solvers.als.layout import make_layout
from mfjax.solvers.als.sweep import als_sweep
from mfjax.solvers.gibbs.sampler import gibbs_init, gibbs_sweep, host_gammas

sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.abspath(__file__)))
import _common as C  # noqa: E402

nu, ni, nr, k = (int(a) for a in sys.argv[1:5])
what = sys.argv[5] if len(sys.argv) > 5 else "both"
reps = int(sys.argv[6]) if len(sys.argv) > 6 else 2
t = time.time()
if nr > 2_000_000:  # _common's chunked planted generator (no [n] float64 temporaries)
    data = C.sample(C.planted(nu, ni, rank=8, seed=0), nr, noise=0.5, seed=1)
else:
    data, _ = mfjax.datasets.synthetic(nu, ni, nr, rank=8, noise=0.5, seed=0)
lay = make_layout(data.users, data.items, data.ratings, n_users=nu, n_items=ni, rows_per_chunk=1024)
print(f"data+layout {time.time() - t:.1f}s", flush=True)
p = mfjax.init_params(jax.random.PRNGKey(0), nu, ni, k, global_bias=float(np.mean(data.ratings)))


def timed(name, f, x):
    t = time.time()
    x = jax.block_until_ready(f(x, 0))
    print(f"{name} rank {k}: first call (compile+run) {time.time() - t:.2f}s", flush=True)
    ts = []
    for s in range(1, reps + 1):
        t = time.time()
        x = jax.block_until_ready(f(x, s))
        ts.append(time.time() - t)
    print(f"{name} rank {k}: sweep seconds {' '.join(f'{v:.2f}' for v in ts)}", flush=True)
    return x


if what in ("als", "both"):
    q = timed("als", lambda x, s: als_sweep(x, lay, reg=0.05), p)
    if nr <= 2_000_000:  # an unchunked loss pass: [n, k] gathers, skipped at scale (RSS)
        print("als train rmse", float(np.sqrt(2 * mfjax.loss(q, lay.users.keys, lay.users.others,
                                                            lay.users.ratings,
                                                            weights=lay.users.weights) / nr)))
if what in ("gibbs", "both"):
    st = gibbs_init(p, lay)
    key = jax.random.PRNGKey(1)
    st = timed("gibbs", lambda x, s: gibbs_sweep(
        x, lay, key, s, gammas=host_gammas(np.random.default_rng([0, s]), lay, k, n_eff=nr)), st)
    print("gibbs tau", float(st.tau))
print(f"peak RSS {C.peak_rss_gb():.2f} GB", flush=True)
