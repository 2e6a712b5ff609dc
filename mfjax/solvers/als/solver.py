"""The exact ALS sweep engine, shared by ``mfjax.ALS`` and the Gibbs samplers.

It lays the ratings out once (:func:`mfjax.solvers.als.layout.make_layout`: sorted by user
and by item, each row padded to whole blocks): :class:`ExactBase` (the layout and window
every exact solver sets up), :func:`init_params`, :func:`als_step` (one exact
block-coordinate descent sweep on :func:`mfjax.loss`: users, then items, then μ;
:func:`mfjax.solvers.als.sweep.als_sweep`, with ``kernel_threads`` the threaded C++ kernel of
:mod:`mfjax.kernels.als`, the same outputs) and :func:`sweep_bytes`. The ALS solver itself
is :class:`mfjax.models.als.solver.ALSSolver`; :class:`mfjax.solvers.gibbs.solver.GibbsSolver`
builds on :class:`ExactBase` too.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ...data import Ratings
from ...kernels import als as als_kernel
from ...objectives.explicit import Params
from .. import memory
from ..base import restore_leaves
from .layout import make_layout
from .sweep import als_half_step, default_window

__all__ = ["sweep_bytes", "als_step", "ExactBase", "ROWS_PER_CHUNK", "init_params",
           "layout_of", "dtype_of"]

#: Rows per ``lax.map`` step of a half-sweep (ML-1M rank 10 Gibbs sweep: 0.19-0.38 s at 256,
#: 0.10 s at 1024; the chunk's Gram matrices are 1024·(k+1)² numbers).
ROWS_PER_CHUNK = 1024


def dtype_of(run):
    """The factors' dtype of this run (float64 under ``jax_enable_x64``)."""
    return jnp.dtype(run.dtype)


def layout_of(train: Ratings, dtype):
    """Both sides' block-padded CSR layout (:func:`mfjax.solvers.als.layout.make_layout`)."""
    return make_layout(train.users, train.items, train.ratings, n_users=train.n_users,
                       n_items=train.n_items, dtype=dtype, rows_per_chunk=ROWS_PER_CHUNK)


def init_params(train: Ratings, spec, seed: int, dtype) -> Params:
    """Factors i.i.d. N(0, init_scale²) from (seed, 0) on the host, biases 0, μ the mean."""
    rng = np.random.default_rng([seed, 0])
    dtype = np.dtype(dtype)  # cast on the host: no eager device op to compile
    put = lambda x: jax.device_put(np.asarray(x).astype(dtype))
    f = lambda n: put(spec.init_scale * rng.standard_normal((n, spec.rank)))
    return Params(f(train.n_users), f(train.n_items), put(np.zeros(train.n_users)),
                  put(np.zeros(train.n_items)), put(float(train.mean)))


class ExactBase:
    """What the one-device exact solvers share: host placement, identity finalize."""

    min_epochs = 1

    def __init__(self):
        self.seen, self.facts = None, {}

    def _setup(self, train: Ratings, spec, run):
        self.spec, self.seed, self.n = spec, run.seed, len(train)
        self.dtype = dtype_of(run)
        self.layout = layout_of(train, self.dtype)
        self.window = default_window(spec.rank, itemsize=self.dtype.itemsize)

    def put(self, x):
        return jnp.asarray(x)

    def restore(self, state, leaves):
        return restore_leaves(state, leaves)

    def finalize(self, state, params: Params) -> Params:
        return params

    def posterior(self, state, params):
        return None


@partial(jax.jit, static_argnames=("window", "kernel_threads"))
def als_step(p: Params, layout, reg, bias_reg, *, window: int, kernel_threads: int = 0):
    """:func:`mfjax.solvers.als.sweep.als_sweep` (users, items, μ) and :func:`mfjax.loss` per rating after it.

    The loss costs no extra pass: the item half-step also returns SSE = Σ w e², and
    the μ step μ += Δ with Δ = Σ w e / Σ w lowers it to SSE − (Σ w e)²/Σ w exactly;
    the penalty is Σ_u c_u (λ‖p_u‖² + λ_b b_u²) + Σ_i c_i (…), c the per-row Σ w.

    ``kernel_threads`` > 0 takes both half-steps with the C++ kernel
    (:func:`mfjax.kernels.als.call`, same outputs) on that many threads; 0: XLA.
    """
    if kernel_threads:
        kern = partial(als_kernel.call, reg=reg, bias_reg=bias_reg, n_threads=kernel_threads)
        P, bu, _, _ = kern(layout.users, p.item_factors, p.item_bias, p.global_bias)
        Q, bi, resid, sse = kern(layout.items, P, bu, p.global_bias)
    else:
        kw = dict(reg=reg, bias_reg=bias_reg, window=window)
        P, bu, _ = als_half_step(layout.users, p.user_factors, p.user_bias, p.item_factors,
                                 p.item_bias, p.global_bias, **kw)
        Q, bi, resid, sse = als_half_step(layout.items, p.item_factors, p.item_bias, P, bu,
                                          p.global_bias, with_sse=True, **kw)
    total_w = jnp.sum(layout.items.weights.astype(P.dtype))
    delta = resid / total_w
    sse = sse - resid * delta

    def pen(side, F, b):
        c = jax.ops.segment_sum(side.weights.astype(F.dtype), side.keys, num_segments=side.n_rows)
        return jnp.sum(c * (reg * jnp.sum(F * F, 1) + bias_reg * b * b))

    loss = 0.5 * (sse + pen(layout.users, P, bu) + pen(layout.items, Q, bi)) / total_w
    return Params(P, Q, bu, bi, p.global_bias + delta), loss


def sweep_bytes(rank: int, *, n_users: int, n_items: int, nnz: int, itemsize: int, backend: str,
                kernel: bool = True) -> int:
    """Peak bytes of an explicit ALS (or Gibbs) sweep: both tables of n (k+1) z, the row
    systems (:func:`mfjax.solvers.memory.row_systems_bytes`) and the two CSR layouts."""
    d = rank + 1
    return (2 * (n_users + n_items) * d * itemsize
            + memory.row_systems_bytes(d, itemsize, backend, ROWS_PER_CHUNK, kernel)
            + memory.layout_bytes(nnz, itemsize))
