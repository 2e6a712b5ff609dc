"""The ``"fused"`` gradient route: one C++ pass per minibatch on a CPU (an XLA FFI call).

:func:`value_and_grad` returns the same ``(loss, grads)`` as
:func:`mfjax.solvers.minibatch.gradients.blocked.blocked_value_and_grad` and ``(loss, manual_grad)``. That is, for a
minibatch of ratings sorted by key, with weights w (0 on padding),

    e = μ + b_u + b_i + p_u·q_i − r,       L = ½ Σ w e² + ½ Σ_u c_u (λ‖p_u‖² + λ_b b_u²) + (items alike)
    ∂p_u = Σ_{r∋u} w e q_i + λ c_u p_u,    ∂q_i = Σ_{r∋i} w e p_u + λ c_i q_i,    ∂μ = Σ w e

(per member when the tables carry a member axis). The difference is how the work is
done. XLA:CPU's gathers and scatters move each rating's rows three to five times per
step at about 0.5-0.8 ns per float; see the profile in ``benchmarks/RESULTS.md``. The
kernel (``fused_cpu.cc``) walks the sorted rows once. It keeps the key's row in
registers, reads the other side's row once per rating, and accumulates the other
side's gradient in a private copy per thread.

The kernel is compiled with the system C++ compiler (``$CXX``, else ``c++``/``g++``)
against the XLA FFI headers that jaxlib ships, with ``-march=native``, and cached in
:func:`mfjax.kernels.cache_folder` (``$MFJAX_CACHE``, else ``$XDG_CACHE_HOME/mfjax`` or
``~/.cache/mfjax``, then ``/kernels``; a private 0700 folder), keyed by the source, the
jaxlib version and the CPU, with the SHA-256 each build recorded beside it; only a
library matching its record is loaded (see :func:`build_kernel`).
``fit(gradient="auto")`` never compiles it (:func:`unavailable_reason` with
``build=False``): until ``mfjax build-kernels`` (or ``gradient="fused"``) has built it,
fits take the ``"blocked"`` XLA route and say so once on stderr. If no
compiler is available or the build fails, :func:`available` is False and
``gradient="fused"`` raises an error that says why. ``MFJAX_KERNELS=0`` turns every
kernel off.

Results are deterministic for a given thread count: the per-thread sums are added in a
fixed order. The thread count is ``$MFJAX_FUSED_THREADS``, else the CPUs this
process may use, at most 8.
Out-of-range indices raise an error naming the minibatch row; they are never clamped.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from .. import kernels
from ..objectives.explicit import Params, resolve_bias_reg

__all__ = ["available", "unavailable_reason", "usable_for", "value_and_grad", "threads",
           "build_kernel", "find_compiler"]

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fused_cpu.cc")
_TARGETS = {np.dtype(np.float32): ("mfjax_fused_f32", "MfjaxFusedF32"),
            np.dtype(np.float64): ("mfjax_fused_f64", "MfjaxFusedF64")}
#: Default limit (seconds) of one kernel build; ``$MFJAX_BUILD_TIMEOUT`` overrides it.
BUILD_TIMEOUT = kernels.BUILD_TIMEOUT
#: Most threads the kernel uses (each holds a private copy of the other side's table).
MAX_THREADS = kernels.MAX_THREADS



def threads() -> int:
    """Threads per call: ``$MFJAX_FUSED_THREADS``, else the CPUs this process may run on,
    at most :data:`MAX_THREADS`."""
    return kernels.threads("MFJAX_FUSED_THREADS")


def find_compiler() -> str | None:
    return kernels.find_compiler()


def _key(cxx: str) -> str:
    return kernels.key(SOURCE, cxx)


def build_kernel() -> str:
    """Path of the compiled kernel, building it if no verified copy is cached
    (:func:`mfjax.kernels.build`: private folder, recorded SHA-256 checked before use,
    damaged copies rebuilt with a warning, lock, compiler in its own process group with a
    timeout)."""
    return kernels.build(SOURCE, "mfjax_fused", what="fused gradient CPU kernel")


#: :func:`unavailable_reason`'s answer (``build=False``) when the kernel is not compiled.
NOT_BUILT = kernels.NOT_BUILT

_KERNEL = kernels.Kernel(SOURCE, "mfjax_fused", _TARGETS.values(),
                         what="fused gradient CPU kernel",
                         builder=lambda: build_kernel())


def _load() -> str | None:
    """None when the kernel is usable, else why not (``MFJAX_KERNELS=0``, or the build)."""
    return _KERNEL.reason()


def available() -> bool:
    """Whether the fused kernel can run here (builds it on the first call)."""
    return _load() is None


def unavailable_reason(build: bool = True) -> str | None:
    """Why :func:`available` is False (None when it is True). ``build=False`` never
    compiles (see :func:`usable_for`); its answer may then be :data:`NOT_BUILT`."""
    return _load() if build else _KERNEL.cached_reason()


def usable_for(dtype, *, build: bool = False) -> bool:
    """Whether a fit in ``dtype`` on the default backend can use the kernel now
    (:meth:`mfjax.kernels.Kernel.usable_for`: ``build=False`` never compiles)."""
    return _KERNEL.usable_for(_TARGETS, dtype, build=build)


def value_and_grad(
    params: Params,
    keys: jax.Array,
    others: jax.Array,
    ratings: jax.Array,
    weights: jax.Array,
    *,
    reg: float = 0.0,
    bias_reg: float | None = None,
    sort_by: str = "users",
) -> tuple[jax.Array, Params]:
    """``(loss, grads)`` of a key-sorted minibatch, from the fused CPU kernel.

    Args:
        params: model parameters (float32 or float64; with or without a member axis).
        keys: the key of each row [n], sorted (non-decreasing): users when
            ``sort_by="users"``, else items. Unsorted keys give wrong results.
        others: the other index of each row [n].
        ratings: observed ratings [n].
        weights: per-rating weights [n] (0 on padding rows).
        reg, bias_reg: λ and λ_b, as in :func:`mfjax.loss`.
        sort_by: ``"users"`` or ``"items"``.

    Returns:
        ``(loss, grads)``, grads a :class:`Params` shaped like ``params``.

    Raises:
        RuntimeError: the kernel is not available (see :func:`unavailable_reason`).
    """
    if sort_by not in ("users", "items"):
        raise ValueError(f"sort_by must be 'users' or 'items', got {sort_by!r}")
    reason = _load()
    if reason is not None:
        raise RuntimeError(f"the fused CPU kernel is not available: {reason}")
    dtype = np.dtype(params.global_bias.dtype)
    if dtype not in _TARGETS:
        raise ValueError(f"the fused kernel takes float32 or float64 parameters, got {dtype}")
    bias_reg = resolve_bias_reg(reg, bias_reg)
    K, O, kb, ob = params.user_factors, params.item_factors, params.user_bias, params.item_bias
    if sort_by == "items":
        K, O, kb, ob = O, K, ob, kb
    outs = [jax.ShapeDtypeStruct((), dtype)] + [jax.ShapeDtypeStruct(x.shape, dtype)
                                                for x in (K, O, kb, ob, params.global_bias)]
    loss, dK, dO, dkb, dob, dmu = jax.ffi.ffi_call(_TARGETS[dtype][0], outs)(
        K, O, kb, ob, jnp.reshape(params.global_bias, (-1,)),
        keys.astype(jnp.int32), others.astype(jnp.int32), ratings.astype(dtype), weights.astype(dtype),
        reg=np.float64(reg), bias_reg=np.float64(bias_reg), threads=np.int64(threads()))
    if sort_by == "items":
        dK, dO, dkb, dob = dO, dK, dob, dkb
    return loss, Params(dK, dO, dkb, dob, dmu)
