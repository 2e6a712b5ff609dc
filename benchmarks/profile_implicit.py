"""Where a ``fit(objective="ials"|"bpr")`` spends its time on the bench_implicit ML-1M split.

iALS: host prep (layout/sort, padded shared layouts), XLA compile of the shared exact
and CG half-steps (with the CPU compile options and with XLA's defaults), the per-sweep
run of both, then a whole first fit and a second fit of the same shape in the same
process (compile caches). BPR: a first and a second fit. Run from the
repository root::

    PYTHONPATH=$PWD python benchmarks/profile_implicit.py [ials|bpr|both]
"""
from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import bench_implicit as B
import mfjax
from mfjax.models.implicit_als import objective as im
from mfjax.data import interactions
from mfjax.models.implicit_als import layout as ials_layout
from mfjax.models.implicit_als import steps as st
from mfjax.models.implicit_als import solver as tials
from mfjax.models.bpr import solver as tbpr


def t(f, *a, **k):
    t0 = time.perf_counter()
    out = jax.block_until_ready(f(*a, **k))
    return out, time.perf_counter() - t0


def compile_time(f, *a, **k):
    """(wall s, process CPU s) of lowering + XLA-compiling f for these arguments."""
    t0, c0 = time.perf_counter(), time.process_time()
    f.lower(*a, **k).compile()
    return time.perf_counter() - t0, time.process_time() - c0


def prof_ials(train):
    hp = dict(tials.IALS_OPTIONS, reg=0.01)
    data, s_prep = t(interactions.build_implicit_data, train.users, train.items, np.ones(len(train)),
                     n_users=train.n_users, n_items=train.n_items)
    sides, s_sides = t(ials_layout.shared_layouts, data)
    users, items = sides
    n_pad = int(users.indptr.shape[0]) - 1
    p0 = mfjax.solvers.minibatch.epoch.host_init(0, train.n_users, train.n_items, 64, 1, 0.01, 0.0)
    p0 = jax.tree.map(jnp.asarray, p0)
    chunks = tials.ALSSolver.CHUNKS
    Pp = tials._pad_rows(p0.user_factors, n_pad)
    # Warm the compiler (LAPACK init imports scipy.linalg on the first Cholesky lowering).
    jax.jit(lambda a: jnp.linalg.cholesky(a @ a.T)).lower(Pp[:8, :8]).compile()
    # Compile: the shared exact and CG half-steps, each with the CPU compile options and
    # with XLA's defaults.
    cg = dict(hp, cg_steps=3, chunk_rows=chunks["chunk_rows"], chunk_nnz=chunks["chunk_nnz"])
    rows = [("half_step_exact (cpu options)", st.half_step_exact.cpu, (Pp, items), dict(hp, **chunks)),
            ("half_step_exact (XLA defaults)", st.half_step_exact.plain, (Pp, items), dict(hp, **chunks)),
            ("half_step_cg (cpu options)", st.half_step_cg.cpu, (Pp, items, Pp), cg),
            ("half_step_cg (XLA defaults)", st.half_step_cg.plain, (Pp, items, Pp), cg)]
    for name, f, a, k in rows:
        wall, cpu = compile_time(f, *a, **k)
        print(f"iALS compile {name}: {wall:.2f}s wall, {cpu:.2f}s CPU", flush=True)
    sw_exact, sw_cg = [], []
    Pc = Pp
    for _ in range(3):
        t0 = time.perf_counter()
        Qp, _, _ = st.half_step_exact(Pp, items, **hp, **chunks)
        Pp, _, _ = jax.block_until_ready(st.half_step_exact(Qp, users, **hp, **chunks))
        sw_exact.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        Qc, _, _ = st.half_step_cg(Pc, items, Qp, **cg)
        Pc, _, _ = jax.block_until_ready(st.half_step_cg(Qc, users, Pc, **cg))
        sw_cg.append(time.perf_counter() - t0)
    print(f"iALS: host prep {s_prep:.2f}s + shared layouts {s_sides:.2f}s | XLA sweep: exact "
          f"{np.median(sw_exact):.3f}s, 3-step CG {np.median(sw_cg):.3f}s", flush=True)
    for name in ("first", "second"):
        t0 = time.perf_counter()
        m = mfjax.fit(train, objective="ials", progress=False)
        tot = time.perf_counter() - t0
        steps = sum(r["seconds"] for r in m.history)
        print(f"iALS {name} fit: {tot:.2f}s, of which loop steps {steps:.2f}s "
              "(" + ", ".join("%.2f" % r["seconds"] for r in m.history) + ")", flush=True)


def prof_bpr(train):
    for name in ("first", "second"):
        t0 = time.perf_counter()
        m = mfjax.fit(train, objective="bpr", progress=False)
        tot = time.perf_counter() - t0
        steps = sum(r["seconds"] for r in m.history)
        print(f"BPR {name} fit: {tot:.2f}s, of which loop steps {steps:.2f}s "
              f"(first {m.history[0]['seconds']:.2f}, median {np.median([r['seconds'] for r in m.history[1:]]):.3f})",
              flush=True)


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "both"
    train, _ = B.holdout(B.positives(), seed=0)
    if what in ("ials", "both"):
        prof_ials(train)
    if what in ("bpr", "both"):
        prof_bpr(train)


if __name__ == "__main__":
    main()
