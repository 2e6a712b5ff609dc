"""Exact and conjugate-gradient ALS half-steps for the iALS objective of :mod:`mfjax.models.implicit_als.objective`.

Exact ALS half-step (users; items are symmetric). L is quadratic in p_u with
Q fixed; ∂L/∂p_u = 0 gives, after dividing by 2::

    (Σ_{i∈I_u} c_ui q_i q_iᵀ + α0 G_Q + λ λ̃_u I_k) p_u = Σ_{i∈I_u} c_ui q_i     [k, k] [k] = [k]

(−2 c (1 − qᵀp) q contributes c q qᵀ p on the left and c q on the right;
α0 <p, G_Q p> contributes α0 G_Q p.) Because the all-pairs term includes the
observed pairs, an observed pair's quadratic weight is c_ui + α0 (the
"c − α0" form of Hu et al. comes from summing α0 over the unobserved pairs
only, which is a different objective). :func:`solve_users` builds the
per-row k×k systems from the user-sorted interactions, in fixed-size row
chunks (``lax.map``); within a chunk each row's list is cut into blocks of
``block`` interactions whose Gram ``Σ c q qᵀ`` is one small matmul, and the
per-block [k, k] results are ``segment_sum``-ed into rows, a fixed number of
blocks per inner step. Memory is O((chunk_rows + chunk_nnz / block) k² +
chunk_nnz k), independent of n_users. The systems are solved by batched
Cholesky. ``method="cg"`` instead runs a few conjugate-gradient steps per
row, warm-started from the current factors, with the matvec
``α0 G_Q p + Σ_i c_ui q_i (q_iᵀ p) + λ λ̃_u p`` (no k×k per row), as
``implicit`` and ALX do. Rows without interactions get p_u = 0 (their
right-hand side is 0, so 0 is a minimiser). The systems are positive
definite when λ > 0 or α0 G_Q is; with λ = α0 = 0 a row may be singular.

Defaults: the standalone half-steps :func:`solve_users`/:func:`solve_items` are exact
(Cholesky; their name promises the minimiser, and they may have no warm start);
:func:`als_sweep`, which always warm-starts, uses 3-step CG (timings of both:
``benchmarks/bench_ials.py``, whose docstring has the measured sweeps).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ...objectives.explicit import Params
from ...data.interactions import ImplicitData
from ...solvers.finite import NonFiniteError
from .row_solves import cg_rows, cholesky_rows

__all__ = [
    "solve_users",
    "solve_items",
    "als_sweep",
    "METHODS",
    "check_finite",
    "checked_factors",
]

#: Accepted ``method`` values of the solves.
METHODS = ("cholesky", "cg")


_STATIC = ("method", "cg_steps", "chunk_rows", "chunk_nnz", "block")


def _solve(other, indptr, rows, cols, vals, init, *, alpha, unobserved_weight, reg, nu,
           method, cg_steps, chunk_rows, chunk_nnz, block):
    if method == "cholesky":
        return cholesky_rows(other, indptr, rows, cols, vals, alpha=alpha,
                             unobserved_weight=unobserved_weight, reg=reg, nu=nu,
                             chunk_rows=chunk_rows, chunk_nnz=chunk_nnz, block=block)
    if method == "cg":
        if init is None:
            init = jnp.zeros((indptr.shape[0] - 1, other.shape[1]), other.dtype)
        return cg_rows(other, indptr, rows, cols, vals, init, alpha=alpha,
                       unobserved_weight=unobserved_weight, reg=reg, nu=nu, steps=cg_steps,
                       chunk_rows=chunk_rows, chunk_nnz=chunk_nnz)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


@functools.partial(jax.jit, static_argnames=_STATIC)
def solve_users(item_factors, data: ImplicitData, *, alpha, unobserved_weight, reg, nu,
                method: str = "cholesky", init=None, cg_steps: int = 3,
                chunk_rows: int = 256, chunk_nnz: int = 2048, block: int = 32) -> jax.Array:
    """The ALS user half-step: argmin over P of L with Q = ``item_factors`` fixed.

    Row u solves ``(Σ_{i∈I_u} c_ui q_i q_iᵀ + α0 QᵀQ + λ λ̃_u I) p_u = Σ_{i∈I_u} c_ui q_i``
    (module docstring).

    Args:
        item_factors: Q [n_items, k].
        data: an :class:`ImplicitData`.
        alpha, unobserved_weight, reg, nu: as in :func:`loss`.
        method: ``"cholesky"`` (exact) or ``"cg"`` (``cg_steps`` conjugate-gradient
            steps from ``init``; exact after k steps in exact arithmetic).
        init: the current P [n_users, k], the CG warm start (``None``: zeros).
            Ignored by Cholesky.
        cg_steps: CG iterations.
        chunk_rows, chunk_nnz, block: chunking: rows per ``lax.map`` step and
            interactions per inner step (both methods), and Cholesky's block length
            L of one per-row Gram matmul (Cholesky memory ~ (chunk_rows + chunk_nnz /
            block) k² + chunk_nnz k; CG ~ (chunk_rows + chunk_nnz) k).

    Returns:
        P [n_users, k].
    """
    return _solve(item_factors, data.user_indptr, data.user_rows, data.user_items,
                  data.user_values, init, alpha=alpha, unobserved_weight=unobserved_weight,
                  reg=reg, nu=nu, method=method, cg_steps=cg_steps, chunk_rows=chunk_rows,
                  chunk_nnz=chunk_nnz, block=block)


@functools.partial(jax.jit, static_argnames=_STATIC)
def solve_items(user_factors, data: ImplicitData, *, alpha, unobserved_weight, reg, nu,
                method: str = "cholesky", init=None, cg_steps: int = 3,
                chunk_rows: int = 256, chunk_nnz: int = 2048, block: int = 32) -> jax.Array:
    """The ALS item half-step, symmetric to :func:`solve_users`: returns Q [n_items, k]."""
    return _solve(user_factors, data.item_indptr, data.item_rows, data.item_users,
                  data.item_values, init, alpha=alpha, unobserved_weight=unobserved_weight,
                  reg=reg, nu=nu, method=method, cg_steps=cg_steps, chunk_rows=chunk_rows,
                  chunk_nnz=chunk_nnz, block=block)


@functools.partial(jax.jit, static_argnames=_STATIC)
def als_sweep(params: Params, data: ImplicitData, *, alpha, unobserved_weight, reg, nu,
              method: str = "cg", cg_steps: int = 3, chunk_rows: int = 256,
              chunk_nnz: int = 2048, block: int = 32) -> Params:
    """One ALS sweep: solve the users, then the items. Biases are returned unchanged.

    ``method`` defaults to ``"cg"`` warm-started from ``params`` (faster per
    unit of progress at k >= 128 on CPU, module docstring); ``"cholesky"``
    makes each half-step exact. Other arguments as in :func:`solve_users`.
    """
    kw = dict(alpha=alpha, unobserved_weight=unobserved_weight, reg=reg, nu=nu, method=method,
              cg_steps=cg_steps, chunk_rows=chunk_rows, chunk_nnz=chunk_nnz, block=block)
    P = solve_users(params.item_factors, data, init=params.user_factors, **kw)
    Q = solve_items(P, data, init=params.item_factors, **kw)
    return params._replace(user_factors=P, item_factors=Q)


def check_finite(hp: dict, where: str, **values) -> None:
    """Raise :class:`~mfjax.solvers.finite.NonFiniteError` (a ValueError) naming the cause
    and the fix when one of ``values`` is not finite.

    Args:
        hp: the solve's ``alpha``, ``unobserved_weight``, ``reg`` (``nu``).
        where: what produced them, e.g. ``"sweep 3"`` or ``"the final user re-solve"``.
        **values: arrays (factor tables, loss values) by name.

    Raises:
        NonFiniteError: a value is NaN or infinite. With ``reg = 0`` a row's system
            ``Σ c q qᵀ + α0 QᵀQ`` is singular whenever those terms do not span all
            rank directions (fewer interactions and other-side rows than the rank, or
            ``unobserved_weight = 0``), so the fix is ``reg > 0``; otherwise the
            confidences overflow or swamp the ridge, so the fix is smaller values/alpha.
    """
    bad = [name for name, v in values.items() if not np.isfinite(np.asarray(v)).all()]
    if not bad:
        return
    reg, a0, alpha = (float(hp.get(k, np.nan)) for k in ("reg", "unobserved_weight", "alpha"))
    if reg == 0:
        cause = (f"with reg=0 (unobserved_weight={a0:g}) a row's system is singular when its "
                 "interactions and unobserved_weight * QᵀQ do not span every rank direction "
                 "(fewer interactions or other-side rows than the rank, or unobserved_weight=0)")
        fix = "use reg > 0"
    else:
        cause = (f"the row systems overflow or are too ill-conditioned to solve (confidences "
                 f"1 + alpha * value with alpha={alpha:g} against reg={reg:g})")
        fix = "scale the interaction values or alpha down, or raise reg"
    raise NonFiniteError(f"fit(objective='ials'): {where} gave non-finite {', '.join(bad)}: "
                     f"{cause}; {fix}")


def checked_factors(params: Params, hp: dict, where: str = "the final solve") -> Params:
    """``params`` after :func:`check_finite` of its user and item factors."""
    check_finite(hp, where, user_factors=params.user_factors,
                 item_factors=params.item_factors)
    return params
