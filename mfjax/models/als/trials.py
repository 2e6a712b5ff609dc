"""Vectorized trials of :class:`~mfjax.ALS`: T trials that differ only in ``reg`` and
``bias_reg`` as one program, :func:`mfjax.solvers.als.solver.als_step` (XLA) mapped over
them (:func:`mfjax.solvers.trials.over_trials`). Where ``fit`` would use the C++ kernel
the vectorized trial runs XLA instead and ``route`` says so.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ...data import Ratings
from ...objectives.explicit import Params
from ...solvers.trials import VECTOR_ROUTE, cpu_mapped_note, over_trials, split_trials

__all__ = ["route", "trial_bytes", "train_batch"]


def route(spec) -> tuple[bool, str]:
    """``(True, why)``: every ALS spec's trials vectorize."""
    return True, (VECTOR_ROUTE + (" instead of fit's C++ kernel" if spec.kernel else "")
                  + cpu_mapped_note())


def trial_bytes(spec, train: Ratings, itemsize: int) -> int:
    """Device bytes one trial adds to a vectorized batch (tables and sweep temporaries)."""
    from ...solvers.als.solver import ROWS_PER_CHUNK
    from ...solvers.als.sweep import default_window

    k = spec.rank
    n = train.n_users + train.n_items
    d = k + 1
    window = default_window(k, itemsize=itemsize)
    return itemsize * (6 * n * d + 3 * ROWS_PER_CHUNK * d * d + 2 * window * d * d)


@functools.partial(jax.jit, static_argnames=("window", "cpu"), donate_argnums=(0,))
def _als_sweeps(params: Params, layout, reg, bias_reg, *, window: int, cpu: bool):
    from ...solvers.als.solver import als_step

    one = lambda p, r, b: als_step(p, layout, r, b, window=window)
    return over_trials(one, (0, 0, 0), cpu)(params, reg, bias_reg)


def train_batch(train: Ratings, batch: list, run) -> list:
    """T ALS trials (one :func:`shape_key`) as the ALS solver's XLA sweeps, vmapped."""
    from ...solvers.als.solver import dtype_of, init_params, layout_of
    from ...solvers.als.sweep import default_window

    spec, T = batch[0], len(batch)
    dtype = dtype_of(run)
    layout = layout_of(train, dtype)
    window = default_window(spec.rank, itemsize=dtype.itemsize)
    p0 = init_params(train, spec, run.seed, dtype)
    params = jax.tree.map(lambda x: jnp.array(jnp.broadcast_to(x, (T,) + x.shape)), p0)
    reg = jnp.asarray([s.reg for s in batch], dtype)
    bias_reg = jnp.asarray([s.reg if s.bias_reg is None else s.bias_reg for s in batch], dtype)
    losses = []
    for _ in range(spec.epochs):
        params, loss = _als_sweeps(params, layout, reg, bias_reg, window=window,
                                   cpu=jax.default_backend() == "cpu")
        losses.append(np.asarray(loss, np.float64))
    return split_trials(*params, losses, train.n_users, train.n_items)


