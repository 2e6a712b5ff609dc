"""Vectorized trials of :class:`~mfjax.ImplicitALS` (``solver="als"``): T trials that
differ only in ``alpha``, ``unobserved_weight``, ``reg``, ``nu`` as one program.

The XLA half-steps of :mod:`mfjax.models.implicit_als.steps` on the shared padded layout, exact
(``cg_steps=0``: :func:`~mfjax.models.implicit_als.steps.half_step_exact`) or CG
(:func:`~mfjax.models.implicit_als.steps.half_step_cg`, then one exact user re-solve), the same
sweeps as ``fit`` with ``kernel=False``. Where ``fit`` would use the C++ kernel
(``kernel`` resolved True) the vectorized trial runs XLA instead and ``route`` says so;
the outputs agree to float tolerance.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ...data import Ratings, interactions
from ...solvers.trials import VECTOR_ROUTE, cpu_mapped_note, over_trials, split_trials

__all__ = ["route", "trial_bytes", "train_batch"]

_IALS_HP = ("alpha", "unobserved_weight", "reg", "nu")


def route(spec) -> tuple[bool, str]:
    """``(vectorized, why)``: the ALS solver's trials vectorize, the Optax check's do not."""
    if spec.solver != "als":
        return False, (f"sequential fit: ImplicitALS(solver={spec.solver!r}) has no vectorized "
                       "route (solver='als' has)")
    how = f"CG, {spec.cg_steps} steps" if spec.cg_steps else "exact"
    why = f"{VECTOR_ROUTE}, {how} half-steps"
    return True, why + (" instead of fit's C++ kernel" if spec.kernel else "") + cpu_mapped_note()


def trial_bytes(spec, train: Ratings, itemsize: int) -> int:
    """Device bytes one trial adds to a vectorized batch (tables and sweep temporaries)."""
    k = spec.rank
    n_pad = 2 * max(train.n_users, train.n_items)
    return itemsize * (6 * n_pad * k + 4 * 256 * k * k + 6 * 2048 * k + 1024)


@functools.lru_cache(maxsize=None)
def _ials_programs(cg_steps: int, chunks: tuple, cpu: bool):
    from .steps import cpu_jit, half_step_cg, half_step_exact

    kw = dict(chunks)

    def exact(other, side, hp):
        return half_step_exact.plain(other, side, **hp, **kw)  # nested: no compiler options

    exact_trials = over_trials(exact, (0, None, 0), cpu)

    def sweep(Pp, Qp, users, items, hp):
        if cg_steps:
            cg = lambda other, side, x0, h: half_step_cg.plain(
                other, side, x0, cg_steps=cg_steps, **h, chunk_rows=kw["chunk_rows"],
                chunk_nnz=kw["chunk_nnz"])
            Qp, _, pen = jax.vmap(cg, in_axes=(0, None, 0, 0))(Pp, items, Qp, hp)
            Pp, value, _ = jax.vmap(cg, in_axes=(0, None, 0, 0))(Qp, users, Pp, hp)
        else:
            Qp, _, pen = exact_trials(Pp, items, hp)
            Pp, value, _ = exact_trials(Qp, users, hp)
        return Pp, Qp, value + pen

    def resolve_users(Qp, users, hp):
        return exact_trials(Qp, users, hp)[0]

    return cpu_jit(sweep, donate_argnums=(0, 1)), cpu_jit(resolve_users)


def train_batch(train: Ratings, batch: list, run) -> list:
    """T ImplicitALS trials (one :func:`shape_key`) as the ALS solver's sweeps, vmapped."""
    from .layout import shared_layouts
    from ...data.interactions import implicit_values
    from .solver import ALSSolver, hyperparameters
    from ...solvers.minibatch.epoch import host_init

    spec, T = batch[0], len(batch)
    data = interactions.build_implicit_data(train.users, train.items,
                                            implicit_values(train, "ials"),
                                            n_users=train.n_users, n_items=train.n_items)
    users, items = shared_layouts(data)
    n_pad = int(users.indptr.shape[0]) - 1
    p0 = host_init(run.seed, train.n_users, train.n_items, spec.rank, 1, spec.init_scale, 0.0)
    dtype = np.dtype(p0.user_factors.dtype)

    def stacked(x):
        x = np.asarray(x)
        out = np.zeros((T, n_pad) + x.shape[1:], x.dtype)
        out[:, :x.shape[0]] = x
        return jax.device_put(out)

    Pp, Qp = stacked(p0.user_factors), stacked(p0.item_factors)
    hp = {k: jax.device_put(np.array([hyperparameters(s)[k] for s in batch], dtype))
          for k in _IALS_HP}
    sweep, resolve_users = _ials_programs(int(spec.cg_steps or 0),
                                          tuple(sorted(ALSSolver.CHUNKS.items())),
                                          jax.default_backend() == "cpu")
    nnz = int(data.user_items.shape[0])
    losses = []
    for _ in range(spec.epochs):
        Pp, Qp, value = sweep(Pp, Qp, users, items, hp)
        losses.append(np.asarray(value, np.float64) / nnz)
    if spec.cg_steps:  # the solver's finalize: users re-solved exactly once
        Pp = resolve_users(Qp, users, hp)
    P, Q = np.asarray(Pp), np.asarray(Qp)
    return split_trials(jnp.asarray(P), jnp.asarray(Q), p0.user_bias, p0.item_bias, p0.global_bias,
                  losses, train.n_users, train.n_items)


