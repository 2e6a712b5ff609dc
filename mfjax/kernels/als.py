"""The explicit ALS exact half-step, and the Gibbs half-sweep, as one threaded C++ call on the
CPU (XLA FFI kernels in one library).

:func:`half_step` returns the same ``(factors, bias, resid_sum, sse)`` as
:func:`mfjax.solvers.als.sweep.als_half_step` (``with_sse=True``) on the same
:class:`~mfjax.solvers.als.layout.SideLayout`. Row u solves, with z_i = [q_i; 1] and t = r − μ − b_i,

    (Σ_{i∈I_u} w z_i z_iᵀ + c_u Λ) [p_u; b_u] = Σ_{i∈I_u} w t z_i,   c_u = Σ w,

by Cholesky in double; rows without ratings (c_u = 0) get 0. Why: XLA's CPU program
for the half-step runs its row chunks on one core, scattering block Gram matrices
through ``segment_sum`` and solving row by row (jaxlib 0.10's batched LAPACK
deadlocks on two threads, see :mod:`mfjax.solvers.als.sweep`). The kernel (``als_cpu.cc``) splits
the rows over threads at equal cost and accumulates each row's Gram in registers.

Built and loaded like the iALS kernel (:mod:`mfjax.kernels`: private cache, SHA-256
verified before loading, the compiler under a timeout). ``MFJAX_KERNELS=0`` turns it
off (with every kernel); ``fit(solver="als")`` then uses the XLA half-step, as it does
while the kernel is not compiled yet (:func:`usable_for` never compiles; ``mfjax
build-kernels`` does).
Threads: ``$MFJAX_ALS_THREADS``, else the CPUs this process may use (at most 8).
Results do not depend on the thread count (per-row sums added in row order). A key
out of ``[0, n_rows)`` or out of order, or an other-side index outside
``[0, n_other)``, raises an error naming the row (or position); nothing is clamped.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from .. import kernels


__all__ = ["available", "unavailable_reason", "threads", "half_step", "gibbs_call", "call",
           "usable_for"]

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "als_cpu.cc")
_TARGETS = {np.dtype(np.float32): ("mfjax_als_f32", "MfjaxAlsF32"),
            np.dtype(np.float64): ("mfjax_als_f64", "MfjaxAlsF64")}
_GIBBS_TARGETS = {np.dtype(np.float32): ("mfjax_gibbs_f32", "MfjaxGibbsF32"),
                  np.dtype(np.float64): ("mfjax_gibbs_f64", "MfjaxGibbsF64")}


#: The library's name in messages (it holds the ALS half-step and the Gibbs row draws).
WHAT = "explicit ALS/Gibbs CPU kernel"


def build_kernel() -> str:
    """Path of the compiled kernel (:func:`mfjax.kernels.build`)."""
    return kernels.build(SOURCE, "mfjax_als", what=WHAT)


_KERNEL = kernels.Kernel(SOURCE, "mfjax_als", [*_TARGETS.values(), *_GIBBS_TARGETS.values()],
                        what=WHAT, builder=lambda: build_kernel(),
                        threads_env="MFJAX_ALS_THREADS")


#: Threads per call (``$MFJAX_ALS_THREADS``, else the usable CPUs, at most 8); why the kernel
#: cannot run (``MFJAX_KERNELS=0``, no compiler, a failed build) or None; whether it can.
threads, unavailable_reason, available = _KERNEL.threads, _KERNEL.reason, _KERNEL.available
#: ``usable_for(dtype, *, build=False)``: :meth:`mfjax.kernels.Kernel.usable_for` for this
#: kernel's dtypes (``build=False``, a fit's ``kernel="auto"``, never compiles).
usable_for = functools.partial(_KERNEL.usable_for, _TARGETS)


def call(side, other_factors, other_bias, mu, reg, bias_reg, *, n_threads: int):
    """The FFI call itself (traceable: use inside ``jit``); see :func:`half_step`."""
    dtype = other_factors.dtype
    n, k = side.n_rows, other_factors.shape[1]
    hp = jnp.stack([jnp.asarray(v, dtype) for v in (mu, reg, bias_reg)])
    outs = (jax.ShapeDtypeStruct((n, k), dtype), jax.ShapeDtypeStruct((n,), dtype),
            jax.ShapeDtypeStruct((), dtype), jax.ShapeDtypeStruct((), dtype))
    return jax.ffi.ffi_call(_TARGETS[np.dtype(dtype)][0], outs)(
        side.keys.astype(jnp.int32), side.others.astype(jnp.int32), side.ratings.astype(dtype),
        side.weights.astype(dtype), other_factors, other_bias.astype(dtype), hp,
        threads=np.int64(n_threads))


def gibbs_call(side, other_factors, other_bias, mu, tau, prior_prec, prior_rhs, eps,
               *, n_threads: int):
    """One Gibbs half-sweep of one side by the kernel (traceable: use inside ``jit``).

    Row u draws x_u = [p_u; b_u] ~ N(m_u, M_u⁻¹) with z_i = [q_i; 1], t = r − μ − b_i,

        M_u = Λ + τ Σ_{i∈I_u} w z_i z_iᵀ = L_u L_uᵀ,   m_u = M_u⁻¹ (Λ μ₀ + τ Σ w t z_i),
        (Λ μ₀ per row when ``prior_rhs`` is [n, D]),
        x_u = m_u + L_u⁻ᵀ ε_u,

    the draw of :func:`mfjax.solvers.gibbs.sampler.sample_side` given the same ε.

    Args:
        side: one side's layout (rows sorted by key).
        other_factors [n_other, k], other_bias [n_other]: the other side's current rows.
        mu: the global mean []; tau: the noise precision [].
        prior_prec: Λ [D, D]; prior_rhs: Λ μ₀ [D] (D = k + 1), or one per row [n, D]
            (a prior mean per row: Λ m_u).
        eps: the standard normals [n_rows, D].

    Returns:
        ``(factors [n, k], bias [n], sse [])``, sse = Σ w (r − r̂)² at the new rows.
    """
    dtype = other_factors.dtype
    n, k = side.n_rows, other_factors.shape[1]
    hp = jnp.stack([jnp.asarray(mu, dtype), jnp.asarray(tau, dtype)])
    outs = (jax.ShapeDtypeStruct((n, k), dtype), jax.ShapeDtypeStruct((n,), dtype),
            jax.ShapeDtypeStruct((), dtype))
    return jax.ffi.ffi_call(_GIBBS_TARGETS[np.dtype(dtype)][0], outs)(
        side.keys.astype(jnp.int32), side.others.astype(jnp.int32), side.ratings.astype(dtype),
        side.weights.astype(dtype), other_factors, other_bias.astype(dtype), hp,
        prior_prec.astype(dtype), prior_rhs.astype(dtype), eps.astype(dtype),
        threads=np.int64(n_threads))


@functools.partial(jax.jit, static_argnames=("n_threads",))
def _call(side, other_factors, other_bias, mu, reg, bias_reg, *, n_threads):
    return call(side, other_factors, other_bias, mu, reg, bias_reg, n_threads=n_threads)


def check(dtype) -> None:
    """Raise unless the kernel can run on ``dtype`` factors."""
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"the {WHAT} is not available: {reason}")
    if np.dtype(dtype) not in _TARGETS:
        raise ValueError(f"the ALS kernel takes float32 or float64 factors, got {dtype}")


def half_step(side, other_factors, other_bias, mu, *, reg, bias_reg):
    """:func:`mfjax.solvers.als.sweep.als_half_step` (``with_sse=True``) by the kernel.

    Returns ``(factors [n, k], bias [n], resid_sum [], sse [])``: resid_sum = Σ w (r − r̂)
    and sse = Σ w (r − r̂)² at the new rows.

    Raises:
        RuntimeError: the kernel is not available (see :func:`unavailable_reason`).
    """
    check(other_factors.dtype)
    return _call(side, other_factors, other_bias, mu, reg, bias_reg, n_threads=threads())
