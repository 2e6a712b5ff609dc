"""iALS half-steps on padded layouts shared by both sides: one compiled program per fit.

:func:`half_step_exact` (Cholesky) and :func:`half_step_cg` (warm-started conjugate
gradient) solve every row of one side, users or items, given the other side's factors.
Both sides' CSR views are zero-padded to one set of bucketed shapes
(:func:`mfjax.models.implicit_als.layout.shared_layouts`) and the true row counts are traced values, so
the user and the item half-step run the same executable (and a later fit whose sizes
fall in the same buckets compiles nothing). Each returns ``(x, value, penalty)``: the
rows, this side's part of the objective L of :mod:`mfjax.models.implicit_als.objective` at them, and its
penalty, so a sweep's L needs no extra pass over the interactions. The row solves
themselves are :func:`mfjax.models.implicit_als.row_solves.cholesky_rows` / :func:`~mfjax.models.implicit_als.row_solves.cg_rows`;
:mod:`mfjax.kernels.ials` computes the same outputs in C++ on a CPU.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .layout import SideLayout
from .objective import row_reg
from .row_solves import cg_rows, cholesky_rows

__all__ = ["CPU_COMPILER_OPTIONS", "cpu_jit", "half_step_exact", "half_step_cg", "observed_sum"]


#: XLA options for the iALS programs on the CPU backend. On ML-1M (rank 64) they cut the
#: half-step's XLA compile from ~0.80 to ~0.35 s (CPU time, same run) and leave its run
#: time unchanged (0.21 / 0.17 s users / items): the legacy loop emitters instead of the
#: fusion emitters, and LLVM -O1 (the programs' time is in gathers, small matmuls and
#: LAPACK calls, which -O2/-O3 do not speed up). Compile options only: nothing is cached.
CPU_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 1}


def cpu_jit(fun, **kw):
    """``jax.jit(fun, **kw)``, compiled with :data:`CPU_COMPILER_OPTIONS` when the default
    backend is the CPU (other backends get XLA's defaults). The choice is made per call,
    so a process that changes its default device still gets the right options."""
    plain = jax.jit(fun, **kw)
    cpu = jax.jit(fun, compiler_options=CPU_COMPILER_OPTIONS, **kw)

    @functools.wraps(fun)
    def call(*args, **kwargs):
        return (cpu if jax.default_backend() == "cpu" else plain)(*args, **kwargs)

    call.plain, call.cpu = plain, cpu
    call.lower = lambda *a, **k: (cpu if jax.default_backend() == "cpu" else plain).lower(*a, **k)
    return call


@functools.partial(cpu_jit, static_argnames=("chunk_rows", "chunk_nnz", "block"))
def half_step_exact(other, side: SideLayout, *, alpha, unobserved_weight, reg, nu,
                    chunk_rows: int = 256, chunk_nnz: int = 2048, block: int = 32, prior=None):
    """One exact (Cholesky) half-step on padded shapes; the same executable for both sides.

    Args:
        other: the other side's factors [n_pad, k], rows past ``side.n_other`` zero.
        side: this side's :class:`mfjax.models.implicit_als.layout.SideLayout` (from :func:`mfjax.models.implicit_als.layout.shared_layouts`).
        alpha, unobserved_weight, reg, nu: as in :func:`loss` (traced).
        chunk_rows, chunk_nnz, block: as in :func:`solve_users`.
        prior: None, or the rows' prior means m [n_pad, k] (feature-aware iALS,
            :mod:`mfjax.models.implicit_als.priors`): the penalty becomes ``λ λ̃ ‖x − m‖²``
            (m must be 0 on rows without interactions, which stay 0).

    Returns:
        ``(x, value, penalty)``: x [n_pad, k] the exact minimiser for this side's rows
        (padding rows 0); ``penalty = λ Σ λ̃ ‖x − m‖²`` over this side (m = 0 without a prior); ``value`` this side's
        observed sum at x (see :func:`cholesky_rows`) + ``α0 <xᵀx, otherᵀother>`` +
        ``penalty``. After the item half-step Q then the user half-step P,
        ``L(P, Q) = value_users + penalty_items``.
    """
    dtype = other.dtype
    n_other = side.n_other.astype(dtype)
    kw = dict(alpha=alpha, unobserved_weight=unobserved_weight, reg=reg, nu=nu)
    x, observed = cholesky_rows(other, side.indptr, None, side.cols, side.vals, block=block,
                                chunk_rows=chunk_rows, chunk_nnz=chunk_nnz, with_loss=True,
                                n_other=n_other, n_live=side.n_rows, prior=prior, **kw)
    lam = row_reg(jnp.diff(side.indptr).astype(dtype), n_other, unobserved_weight, nu)
    penalty = reg * jnp.sum(lam * _sq_dist(x, prior))
    value = observed + unobserved_weight * jnp.sum((x.T @ x) * (other.T @ other)) + penalty
    return x, value, penalty


def observed_sum(x, other, indptr, rows, cols, vals, alpha):
    """``Σ c (1 − <x_row, other_col>)²`` over the positions of ``indptr``'s rows [n + 1]
    (``rows``/``cols``/``vals`` [nnz_pad]; positions past ``indptr[-1]`` are padding)."""
    live = jnp.arange(cols.shape[0]) < indptr[-1]
    rows = jnp.clip(rows, 0, x.shape[0] - 1)
    err = 1.0 - jnp.sum(x[rows] * other[cols], axis=1)
    return jnp.sum(jnp.where(live, (1.0 + alpha * vals.astype(x.dtype)) * err * err, 0.0))


@functools.partial(cpu_jit, static_argnames=("cg_steps", "chunk_rows", "chunk_nnz"))
def half_step_cg(other, side: SideLayout, x0, *, cg_steps: int, alpha, unobserved_weight, reg,
                 nu, chunk_rows: int = 256, chunk_nnz: int = 2048, prior=None):
    """``cg_steps`` warm-started CG iterations per row (:func:`cg_rows`) on padded shapes.

    Args:
        other, side: as in :func:`half_step_exact`.
        x0: this side's current factors [n_pad, k] (zero-padded), the warm start.
        cg_steps: CG iterations per row.
        alpha, unobserved_weight, reg, nu, chunk_rows, chunk_nnz: as in :func:`solve_users`.
        prior: as in :func:`half_step_exact`.

    Returns:
        ``(x, value, penalty)`` as :func:`half_step_exact` defines them, at the CG
        result x (the observed part by :func:`observed_sum`).
    """
    dtype = other.dtype
    n_other = side.n_other.astype(dtype)
    rows = jnp.searchsorted(side.indptr, jnp.arange(side.cols.shape[0]), side="right") - 1
    x = cg_rows(other, side.indptr, rows, side.cols, side.vals, x0, alpha=alpha,
                unobserved_weight=unobserved_weight, reg=reg, nu=nu, steps=cg_steps,
                chunk_rows=chunk_rows, chunk_nnz=chunk_nnz, n_other=n_other, prior=prior)
    observed = observed_sum(x, other, side.indptr, rows, side.cols, side.vals, alpha)
    lam = row_reg(jnp.diff(side.indptr).astype(dtype), n_other, unobserved_weight, nu)
    penalty = reg * jnp.sum(lam * _sq_dist(x, prior))
    value = observed + unobserved_weight * jnp.sum((x.T @ x) * (other.T @ other)) + penalty
    return x, value, penalty


def _sq_dist(x, prior):
    """‖x − m‖² per row [n] (m = 0 when ``prior`` is None)."""
    d = x if prior is None else x - prior
    return jnp.sum(d * d, axis=1)
