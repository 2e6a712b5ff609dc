"""Hang check for the jitted Gibbs sweep on CPU (jaxlib 0.10 batched-LAPACK deadlock).

Usage: python benchmarks/gibbs_hang_check.py RANK SWEEPS [rowwise|vmap]
ML-100K-like shape (943 x 1682, 80k ratings). Prints progress; a faulthandler
dump after HANG_S seconds (default 100) marks a hang.
"""
import faulthandler, os, sys, time
faulthandler.dump_traceback_later(int(os.environ.get("HANG_S", "100")), exit=True)
import jax
import jax.numpy as jnp
import numpy as np
import mfjax
from mfjax.solvers.als.layout import make_layout
from mfjax.solvers.gibbs.sampler import gibbs_init, gibbs_sweep

k, S = int(sys.argv[1]), int(sys.argv[2])
solver = sys.argv[3] if len(sys.argv) > 3 else "rowwise"
data, _ = mfjax.datasets.synthetic(943, 1682, 80000, rank=8, noise=0.5, seed=0)
lay = make_layout(data.users, data.items, data.ratings, n_users=943, n_items=1682, rows_per_chunk=1024)
p = mfjax.init_params(jax.random.PRNGKey(0), 943, 1682, k)
st = gibbs_init(p, lay)
key = jax.random.PRNGKey(1)
t0 = time.time()
for s in range(S):
    st = gibbs_sweep(st, lay, key, s, solver=solver)
    jax.block_until_ready(st)
    if s % 50 == 0:
        print(s, float(st.tau), round(time.time() - t0, 1), flush=True)
print("finished", S, "sweeps rank", k, solver, "in", round(time.time() - t0, 1), "s", flush=True)
