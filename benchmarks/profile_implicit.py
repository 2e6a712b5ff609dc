"""Where a ``fit(objective="ials"|"bpr")`` spends its time on the bench_implicit ML-1M split.

Splits one fit into host prep (layout/sort), compile, per-step run, the per-step loss,
the final exact re-solve and what is left (Python, transfers), then times a whole first
fit and a second fit of the same shape in the same process (compile caches). Run from the
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
from mfjax import implicit as im
from mfjax.training import ials as tials
from mfjax.training import bpr as tbpr


def t(f, *a, **k):
    t0 = time.perf_counter()
    out = jax.block_until_ready(f(*a, **k))
    return out, time.perf_counter() - t0


def prof_ials(train):
    hp = dict(tials.IALS_OPTIONS, reg=0.01)
    data, s_prep = t(im.build_implicit_data, train.users, train.items, np.ones(len(train)),
                     n_users=train.n_users, n_items=train.n_items)
    p0 = mfjax.training.epoch.host_init(0, train.n_users, train.n_items, 64, 1, 0.01, 0.0)
    p0 = jax.tree.map(jnp.asarray, p0)
    t0 = time.perf_counter()
    c_sweep = tials._sweep.lower(p0, data, hp, method="cg", cg_steps=3).compile()
    s_c_sweep = time.perf_counter() - t0
    t0 = time.perf_counter()
    c_res = tials._resolve_users.lower(p0, data, hp).compile()
    s_c_res = time.perf_counter() - t0
    loss_only = jax.jit(tials._loss)
    _, s_c_loss = t(loss_only, p0, data, hp)
    _, s_loss = t(loss_only, p0, data, hp)
    sweep_only = jax.jit(lambda p, d, h: im.als_sweep(p, d, method="cg", cg_steps=3, **h))
    _, s_c_sw = t(sweep_only, p0, data, hp)
    sw = []
    p = p0
    for _ in range(3):
        p, s = t(sweep_only, p, data, hp)
        sw.append(s)
    _, s_res = t(c_res, p, data, hp)
    print(f"iALS: host prep {s_prep:.2f}s | compile _sweep {s_c_sweep:.2f}s, _resolve_users "
          f"{s_c_res:.2f}s | sweep (no loss) {np.median(sw):.3f}s/it | loss {s_loss:.3f}s | "
          f"exact re-solve {s_res:.3f}s", flush=True)
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
