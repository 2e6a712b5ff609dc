"""Where a fit runs and how, decided once: :class:`Hardware` and :class:`Run`.

``fit``'s configuration step (:mod:`mfjax.training.config`) builds them; each model
package's ``resolve`` and solver read them, and nothing below asks
``jax.default_backend()`` again.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from .. import distributed
from ..kernels import fused

__all__ = ["Hardware", "Run", "SCATTER_CAS_JAXLIB", "compiler_options", "detect_hardware",
           "resolve_kernel",
           "jaxlib_version", "scatter_add_is_slow"]

#: jaxlib versions whose GPU f32 scatter-add is a compare-and-swap loop (jax issue 38806).
SCATTER_CAS_JAXLIB = ((0, 10, 2), (0, 11, 0))


def jaxlib_version() -> tuple[int, ...]:
    """jaxlib's (major, minor, patch)."""
    import jaxlib

    return tuple(int(x) for x in jaxlib.__version__.split(".")[:3] if x.isdigit())


def scatter_add_is_slow(version: tuple | None = None) -> bool:
    """Whether jaxlib ``version`` (default: this one) compiles GPU f32 scatter-add to a CAS
    loop (jax issue 38806).

    jaxlib 0.10.2 to 0.11.0 ship an LLVM that lowers the float atomic add of a
    scatter to a compare-and-swap retry loop unless the kernel flushes
    denormals, catastrophic when many updates hit one row (a popular item).
    """
    lo, hi = SCATTER_CAS_JAXLIB
    return lo <= (jaxlib_version() if version is None else tuple(version)) <= hi


def compiler_options(backend: str, version: tuple | None = None) -> dict | None:
    """XLA options for the compiled epoch on ``backend`` with jaxlib ``version``:
    ``xla_gpu_ftz`` on a GPU whose jaxlib has the slow scatter-add, else None."""
    return {"xla_gpu_ftz": True} if backend == "gpu" and scatter_add_is_slow(version) else None


@dataclasses.dataclass(frozen=True)
class Hardware:
    """Where ``fit`` runs, decided once.

    Attributes:
        backend: ``jax.default_backend()`` (``"cpu"``, ``"gpu"``, ``"tpu"``).
        mesh: the device mesh, or None for one device.
        fused_reason: None when the fused CPU kernel is usable here, else why not.
        compiler_options: XLA options for the compiled epoch (``xla_gpu_ftz`` on a
            GPU whose jaxlib has the slow scatter-add), or None.
    """

    backend: str
    mesh: Any = None
    fused_reason: str | None = "not checked"
    compiler_options: dict | None = None

    @property
    def single_cpu(self) -> bool:
        """One CPU device, no mesh: where the fused kernel may run."""
        return self.backend == "cpu" and self.mesh is None


def detect_hardware(mesh=None, *, n_users: int = 1, n_items: int = 1, rank: int = 1,
                    want_fused: bool = True) -> Hardware:
    """The :class:`Hardware` for ``fit(mesh=...)``.

    Args:
        mesh: ``fit``'s ``mesh`` argument (None, ``"auto"`` or a Mesh).
        n_users, n_items, rank: the table sizes (``mesh="auto"`` sizes the model axis).
        want_fused: whether to check whether the fused kernel is usable (it is never
            built here: ``gradient="fused"`` asked for by name builds it).
    """
    backend = jax.default_backend()
    mesh = distributed.resolve_mesh(mesh, n_users, n_items, rank)
    reason = "not checked"
    if backend != "cpu" or mesh is not None:
        reason = f"it runs on one CPU device only (backend {backend!r}, mesh {distributed.describe(mesh)})"
    elif want_fused:
        reason = fused.unavailable_reason(build=False)  # "auto" never compiles
    return Hardware(backend, mesh, reason, compiler_options(backend))



@dataclasses.dataclass(frozen=True)
class Run:
    """Everything about one ``fit`` call that is not the model: where and how it runs.

    Attributes:
        seed: seeds the initialization, every shuffle and every draw.
        hardware: the :class:`Hardware` decided once.
        table_sharding: ``"replicated"`` or ``"sharded"`` (minibatch solvers on a mesh).
        dtype: the factors' dtype (float64 under ``jax_enable_x64``, else float32).
        features: the :class:`mfjax.Features` of ``fit(..., features=F)``, or None; only
            a model whose record takes features (``ModelRecord.features``) gets one.
    """

    seed: int
    hardware: Hardware
    table_sharding: str = "replicated"
    dtype: Any = np.float32
    features: Any = None

    @property
    def mesh(self):
        return self.hardware.mesh




def resolve_kernel(spec, kernel, run: Run, what: str) -> bool:
    """``spec.kernel`` resolved: whether the C++ kernel module ``kernel`` runs (one CPU
    device only). ``"auto"`` never compiles (an uncached kernel: the XLA route, said
    once on stderr); ``kernel=True`` compiles it now.

    Raises:
        RuntimeError: ``kernel=True`` and the kernel cannot run here (says why).
    """
    one_device = run.mesh is None or run.mesh.size == 1
    if spec.kernel is False:
        return False
    usable = one_device and kernel.usable_for(run.dtype, build=spec.kernel is True)
    if spec.kernel is True and not usable:
        why = ("it runs on one CPU device, not a mesh" if not one_device else
               kernel.unavailable_reason() or f"it needs the CPU backend and float32/float64 "
               f"factors (backend {run.hardware.backend}, dtype {np.dtype(run.dtype)})")
        raise RuntimeError(f"fit: {type(spec).__name__}(kernel=True): the {what} CPU kernel "
                           f"cannot run here: {why}; pass kernel='auto' or False")
    return bool(usable)
