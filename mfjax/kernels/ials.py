"""The iALS exact half-step as one threaded C++ call on the CPU (an XLA FFI kernel).

:func:`half_step` returns the same ``(x, value, penalty)`` as
:func:`mfjax.models.implicit_als.steps.half_step_exact` on the same :class:`~mfjax.models.implicit_als.layout.SideLayout`;
:func:`solve_users` / :func:`solve_items` the same factors as the Cholesky
:func:`mfjax.models.implicit_als.solve.solve_users` / :func:`~mfjax.models.implicit_als.solve.solve_items`. Row u solves

    (α0 G + λ λ̃_u I + Σ_{i∈I_u} c_ui q_i q_iᵀ) p_u = Σ_{i∈I_u} c_ui q_i,
    G = QᵀQ,   λ̃_u = (|I_u| + α0 n_other)^ν,   c = 1 + α v

by Cholesky in double; rows without interactions get 0. Why: XLA's CPU program for
the half-step runs its per-row loop on one core (and jaxlib 0.10's batched LAPACK
deadlocks on two threads, benchmarks/RESULTS.md), so the solves go row by row on one
core. The kernel (``ials_cpu.cc``) splits the rows over threads at equal cost, builds
each row's Gram four interactions at a time, and computes G in the same call.

It is built and loaded like the fused gradient kernel (:mod:`mfjax.kernels`: private
cache, SHA-256 verified before loading, the compiler under a timeout). ``MFJAX_KERNELS=0``
turns it off (with every kernel); ``fit(objective="ials")`` then uses the XLA
half-step, as it does while the kernel is not compiled yet (:func:`usable_for` never
compiles; ``mfjax build-kernels`` does). Threads: ``$MFJAX_IALS_THREADS``, else
the CPUs this process may use (at most 8). Results do not depend on the thread count
(G is summed over fixed blocks, the per-row sums in row order). An index outside
``[0, n_other)`` or a decreasing ``indptr`` raises an error naming the row.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from .. import kernels
from ..data.interactions import ImplicitData


__all__ = ["available", "unavailable_reason", "threads", "half_step", "half_step_cg", "solve",
           "solve_users", "solve_items", "usable_for"]

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ials_cpu.cc")
_TARGETS = {np.dtype(np.float32): ("mfjax_ials_f32", "MfjaxIalsF32"),
            np.dtype(np.float64): ("mfjax_ials_f64", "MfjaxIalsF64")}
_CG_TARGETS = {np.dtype(np.float32): ("mfjax_ials_cg_f32", "MfjaxIalsCgF32"),
               np.dtype(np.float64): ("mfjax_ials_cg_f64", "MfjaxIalsCgF64")}


def build_kernel() -> str:
    """Path of the compiled kernel (:func:`mfjax.kernels.build`)."""
    return kernels.build(SOURCE, "mfjax_ials", what="iALS CPU kernel")


_KERNEL = kernels.Kernel(SOURCE, "mfjax_ials", [*_TARGETS.values(), *_CG_TARGETS.values()],
                         what="iALS CPU kernel", builder=lambda: build_kernel(),
                         threads_env="MFJAX_IALS_THREADS")


#: Threads per call (``$MFJAX_IALS_THREADS``, else the usable CPUs, at most 8); why the kernel
#: cannot run (``MFJAX_KERNELS=0``, no compiler, a failed build) or None; whether it can.
threads, unavailable_reason, available = _KERNEL.threads, _KERNEL.reason, _KERNEL.available
#: ``usable_for(dtype, *, build=False)``: :meth:`mfjax.kernels.Kernel.usable_for` for this
#: kernel's dtypes (``build=False``, a fit's ``kernel="auto"``, never compiles).
usable_for = functools.partial(_KERNEL.usable_for, _TARGETS)


@functools.partial(jax.jit, static_argnames=("n_threads",))
def _call(other, indptr, cols, vals, n_rows, n_other, alpha, unobserved_weight, reg, nu, *,
          n_threads):
    dtype = other.dtype
    hp = jnp.stack([jnp.asarray(h, dtype) for h in (alpha, unobserved_weight, reg, nu)])
    sizes = jnp.stack([jnp.asarray(n_rows, jnp.int32), jnp.asarray(n_other, jnp.int32)])
    n = indptr.shape[0] - 1
    outs = (jax.ShapeDtypeStruct((n, other.shape[1]), dtype), jax.ShapeDtypeStruct((), dtype),
            jax.ShapeDtypeStruct((), dtype))
    return jax.ffi.ffi_call(_TARGETS[np.dtype(dtype)][0], outs)(
        other, indptr.astype(jnp.int32), cols.astype(jnp.int32), vals.astype(dtype), sizes, hp,
        threads=np.int64(n_threads))


@functools.partial(jax.jit, static_argnames=("n_threads", "cg_steps", "observed"))
def _call_cg(other, indptr, cols, vals, x0, n_rows, n_other, alpha, unobserved_weight, reg, nu, *,
             n_threads, cg_steps, observed):
    dtype = other.dtype
    hp = jnp.stack([jnp.asarray(h, dtype) for h in (alpha, unobserved_weight, reg, nu)])
    sizes = jnp.stack([jnp.asarray(n_rows, jnp.int32), jnp.asarray(n_other, jnp.int32)])
    outs = (jax.ShapeDtypeStruct(x0.shape, dtype), jax.ShapeDtypeStruct((), dtype),
            jax.ShapeDtypeStruct((), dtype))
    return jax.ffi.ffi_call(_CG_TARGETS[np.dtype(dtype)][0], outs)(
        other, indptr.astype(jnp.int32), cols.astype(jnp.int32), vals.astype(dtype), sizes, hp,
        x0.astype(dtype), threads=np.int64(n_threads), cg_steps=np.int64(cg_steps),
        observed=np.int64(observed))


def _check(other):
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"the iALS CPU kernel is not available: {reason}")
    if np.dtype(other.dtype) not in _TARGETS:
        raise ValueError(f"the iALS kernel takes float32 or float64 factors, got {other.dtype}")


def half_step(other, side, *, alpha, unobserved_weight, reg, nu):
    """:func:`mfjax.models.implicit_als.steps.half_step_exact` by the kernel: ``(x, value, penalty)``.

    Args:
        other: the other side's factors [n_pad_other, k] (rows past ``side.n_other`` zero).
        side: this side's :class:`~mfjax.models.implicit_als.layout.SideLayout`.
        alpha, unobserved_weight, reg, nu: as in :func:`mfjax.models.implicit_als.objective.loss`.

    Raises:
        RuntimeError: the kernel is not available (see :func:`unavailable_reason`).
    """
    _check(other)
    return _call(other, side.indptr, side.cols, side.vals, side.n_rows, side.n_other, alpha,
                 unobserved_weight, reg, nu, n_threads=threads())


def half_step_cg(other, side, x0, *, cg_steps: int, alpha, unobserved_weight, reg,
                 nu, with_observed: bool = True):
    """``cg_steps`` conjugate-gradient iterations per row from ``x0``: ``(x, value, penalty)``.

    Each row runs the recurrences of :func:`mfjax.models.implicit_als.row_solves.cg_rows` on the system
    above with the matvec ``α0 G v + λ λ̃_u v + Σ_i c_ui q_i (q_iᵀ v)`` (no k×k matrix
    per row: O(|I_u| k) per step instead of the exact solve's O(|I_u| k²)). ``value``
    and ``penalty`` are :func:`half_step`'s at the returned x, the observed part summed
    directly as ``Σ c (1 − q_iᵀ x_u)²``.

    Args:
        other: the other side's factors [n_pad_other, k] (rows past ``side.n_other`` zero).
        side: this side's :class:`~mfjax.models.implicit_als.layout.SideLayout`.
        x0: the warm start [n_pad, k] (this side's current factors, zero-padded).
        cg_steps: CG iterations per row (0 returns x0 on rows with interactions).
        alpha, unobserved_weight, reg, nu: as in :func:`mfjax.models.implicit_als.objective.loss`.
        with_observed: False skips the pass for the observed part (then ``value`` lacks
            it): a sweep needs only the item side's ``penalty``.
    """
    _check(other)
    return _call_cg(other, side.indptr, side.cols, side.vals, x0, side.n_rows, side.n_other,
                    alpha, unobserved_weight, reg, nu, n_threads=threads(), cg_steps=int(cg_steps),
                    observed=bool(with_observed))


def solve(other, indptr, cols, vals, *, alpha, unobserved_weight, reg, nu) -> jax.Array:
    """The exact rows ``x [len(indptr) - 1, k]`` of one side's CSR view against ``other``."""
    _check(other)
    x, _, _ = _call(other, indptr, cols, vals, indptr.shape[0] - 1, other.shape[0], alpha,
                    unobserved_weight, reg, nu, n_threads=threads())
    return x


def solve_users(item_factors, data: ImplicitData, *, alpha, unobserved_weight, reg, nu):
    """:func:`mfjax.models.implicit_als.solve.solve_users` (Cholesky) by the kernel."""
    return solve(item_factors, data.user_indptr, data.user_items, data.user_values, alpha=alpha,
                 unobserved_weight=unobserved_weight, reg=reg, nu=nu)


def solve_items(user_factors, data: ImplicitData, *, alpha, unobserved_weight, reg, nu):
    """:func:`mfjax.models.implicit_als.solve.solve_items` (Cholesky) by the kernel."""
    return solve(user_factors, data.item_indptr, data.item_users, data.item_values, alpha=alpha,
                 unobserved_weight=unobserved_weight, reg=reg, nu=nu)
