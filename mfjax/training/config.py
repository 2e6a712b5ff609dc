"""``fit``'s configuration step: the spec from ``fit``'s arguments, every ``"auto"`` resolved.

:func:`spec_for` turns ``fit(train, model, **shorthand)`` into one spec
(:mod:`mfjax.specs`); :func:`resolve` checks the run's arguments, decides the hardware
once (:func:`detect_hardware`: backend, mesh, whether the fused CPU kernel is usable,
XLA options for affected jaxlib versions) and returns the spec with every ``"auto"``
resolved plus a :class:`Run`. Nothing below asks ``jax.default_backend()`` again, and
no solver changes the spec. The rules for the ``"auto"`` settings:

- :class:`~mfjax.MF` ``batch_size``: :func:`auto_batch_size` (about 1/20 of the data,
  a power of two); ``learning_rate``: the optimizer's default; ``gradient``: ``jax.grad``
  below :data:`AUTO_BLOCKED_MIN_RATINGS` ratings (its compile is the cheapest), from
  there ``"fused"`` on one CPU device when the kernel builds, else ``"blocked"``;
  ``sort_by``: users on a CPU, items on a GPU, unless that pads the grid by > 25% and
  the other pads less, for ``"fused"`` the side with more rows; ``ensemble``: members
  of rank >= 8, at most 16 (:func:`mfjax.solvers.minibatch.ensemble.n_members`).
- ``kernel`` (:class:`~mfjax.ALS`, :class:`~mfjax.ImplicitALS`): the C++ kernel on one
  CPU device when it builds and ``MFJAX_KERNELS`` does not turn kernels off.
- :class:`~mfjax.ImplicitALS` ``cg_steps``: 3 on a CPU backend (measured: the exact
  solve's quality in about half its time), exact (0) elsewhere.
- ``mesh``: :func:`mfjax.distributed.resolve_mesh`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any

import jax
import numpy as np

from .. import distributed, objectives, specs
from ..data import Ratings
from ..kernels import fused
from ..solvers.minibatch import ensemble as E
from ..solvers.minibatch.gradients import ROUTES
from ..solvers.minibatch.layout import padding_share
from ..solvers.minibatch.optimizers import OPTIMIZERS

__all__ = ["DEFAULTS", "GRADIENTS", "AUTO_BLOCKED_MIN_RATINGS", "SCATTER_CAS_JAXLIB",
           "Hardware", "Run", "auto_batch_size", "data_fingerprint", "detect_hardware",
           "resolve", "resolve_gradient", "resolve_sort_by", "scatter_add_is_slow", "spec_for",
           "DEFAULT_CG_STEPS_CPU"]

#: :class:`mfjax.MF`'s defaults by field (for the command line's help texts).
DEFAULTS = {f: getattr(specs.MF(), f) for f in specs.MF.field_names()}

#: :class:`mfjax.ImplicitALS` ``cg_steps=None`` on a CPU backend (``benchmarks/RESULTS.md``).
DEFAULT_CG_STEPS_CPU = 3

#: Gradient routes accepted by ``fit``; all give the same trajectory to float tolerance.
GRADIENTS = ("auto",) + ROUTES

#: ``gradient="auto"`` leaves ``jax.grad`` from this many ratings on, for ``"fused"``
#: (one CPU device) or ``"blocked"``: they compile longer and save most of every epoch.
AUTO_BLOCKED_MIN_RATINGS = 1 << 20

#: jaxlib versions whose GPU f32 scatter-add is a compare-and-swap loop (jax issue 38806).
SCATTER_CAS_JAXLIB = ((0, 10, 2), (0, 11, 0))


def auto_batch_size(n_ratings: int, n_users: int, n_items: int) -> int:
    """A batch size that keeps per-step overhead small at any data size.

    About 1/20 of the data per step, but never below 1024, and at most 2^20
    (20M ratings -> 2^20) unless that would take more than 64 steps: every
    step also makes one dense optimizer pass over the tables, so very large
    data (Netflix's 100M -> 2^21) gets larger steps, up to 2^22 ratings (a
    step's [batch, k] temporaries stay near 1 GB at rank 64). A power of two.
    """
    cap = min(max(1 << 20, n_ratings // 64), 1 << 22)
    target = max(1024, min(n_ratings // 20, cap))
    return min(1 << int(round(math.log2(target))), max(n_ratings, 1))


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


def resolve_gradient(gradient: str, n_ratings: int, hw: Hardware) -> str:
    """The gradient route for ``fit``'s ``gradient=`` (rules in the module docstring)."""
    if gradient not in GRADIENTS:
        raise ValueError(f"fit: gradient must be one of {GRADIENTS}, got {gradient!r}")
    if gradient == "auto":
        if n_ratings < AUTO_BLOCKED_MIN_RATINGS:
            return "autodiff"
        return "fused" if hw.single_cpu and hw.fused_reason is None else "blocked"
    if gradient == "fused":
        if not hw.single_cpu:
            raise ValueError(f"fit: gradient='fused' runs on a single CPU device only (backend "
                             f"{hw.backend!r}, mesh {distributed.describe(hw.mesh)}); use 'blocked' there")
        reason = hw.fused_reason
        if reason == fused.NOT_BUILT:  # asked for by name: compile it now
            reason = fused.unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"fit: gradient='fused' is not available here: {reason}. "
                               "Use gradient='blocked' (the same numbers through XLA).")
    return gradient


def resolve_sort_by(sort_by: str, train: Ratings, n_batches: int, gradient: str, hw: Hardware) -> str:
    """The key the training grid is sorted and padded by (rules in the module docstring).

    Users on a CPU: the bigger table's rows then move once per block instead of
    once per rating. Items on a GPU: their popular rows take the most updates per
    batch, and blocks sum those densely instead of with contended f32 atomics. The
    fused kernel skips padding almost for free but keeps a private copy of the
    other side's table per thread, so for it the key is the side with more rows.
    """
    if sort_by not in ("auto", "users", "items"):
        raise ValueError(f"fit: sort_by must be 'auto', 'users' or 'items', got {sort_by!r}")
    if sort_by != "auto":
        return sort_by
    if gradient == "fused":
        return "users" if train.n_users >= train.n_items else "items"
    pref, other = ("items", "users") if hw.backend == "gpu" else ("users", "items")
    pad = {k: padding_share(train, k, n_batches) for k in (pref, other)}
    return other if pad[pref] > 0.25 and pad[other] < pad[pref] else pref


def data_fingerprint(train: Ratings) -> str:
    """SHA-256 of the training data (indices, ratings, timestamps and ID tables), for checkpoints.

    A resumed run must train on exactly the data its checkpoint was trained on;
    equal counts are not enough.
    """
    h = hashlib.sha256()
    for a in (train.users, train.items, train.ratings):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    for ids in (train.user_ids, train.item_ids):
        ids = np.asarray(ids)
        if ids.dtype == object:
            h.update("\x1f".join(f"{type(x).__name__}:{x}" for x in ids).encode("utf-8", "surrogatepass"))
        else:
            h.update(ids.dtype.str.encode() + np.ascontiguousarray(ids).tobytes())
    return h.hexdigest()




@dataclasses.dataclass(frozen=True)
class Run:
    """Everything about one ``fit`` call that is not the model: where and how it runs.

    Attributes:
        seed: seeds the initialization, every shuffle and every draw.
        hardware: the :class:`Hardware` decided once.
        table_sharding: ``"replicated"`` or ``"sharded"`` (minibatch solvers on a mesh).
        dtype: the factors' dtype (float64 under ``jax_enable_x64``, else float32).
    """

    seed: int
    hardware: Hardware
    table_sharding: str = "replicated"
    dtype: Any = np.float32

    @property
    def mesh(self):
        return self.hardware.mesh


def _describe(cls) -> str:
    return f"{cls.__name__} (objective {cls.objective!r})"


def spec_for(train, model, shorthand: dict):
    """The spec ``fit(train, model, **shorthand)`` trains.

    ``model`` is a spec, a spec class or None. ``shorthand`` may name ``objective``
    and ``solver`` (which pick the spec class when ``model`` is None) and any field of
    that spec; with ``model=None`` and neither, the class is
    :func:`mfjax.objectives.default_spec`'s, from the data alone.

    Raises:
        TypeError: ``model`` is not a spec, or a keyword is not a field of the spec
            (the spec's fields are listed).
        ValueError: a bad field value, or ``objective``/``solver`` that contradict
            ``model``.
    """
    kw = dict(shorthand)
    objective, solver = kw.pop("objective", None), kw.pop("solver", None)
    if isinstance(model, type) and issubclass(model, specs.Spec):
        model = model()
    if model is not None and not isinstance(model, specs.Spec):
        raise TypeError(f"fit: model must be a spec such as mfjax.MF(...) or "
                        f"mfjax.ImplicitALS(...), got {type(model).__name__}")
    if model is None:
        if objective is None and solver is None:
            cls = type(objectives.default_spec(train))
        else:
            record = objectives.get("explicit" if objective is None else objective)
            if solver is None and record.default_solver is None:  # explicit: by size
                cls = specs.BayesianMF if len(train) <= objectives.GIBBS_MAX_RATINGS else specs.MF
            else:
                cls = record.spec_class(solver)
        if cls is specs.ImplicitALS and solver is not None:
            kw.setdefault("solver", solver)
        model = _build(cls, kw)
    else:
        if objective is not None and objectives.get(objective).name != model.objective:
            raise ValueError(f"fit: objective={objective!r} contradicts the model "
                             f"{_describe(type(model))}")
        if solver is not None and solver != model.solver:
            raise ValueError(f"fit: solver={solver!r} contradicts the model {type(model).__name__}"
                             f" (solver {model.solver!r})")
        if kw:
            model = _build(type(model), kw, base=model)
    return model


def _build(cls, kw: dict, base=None):
    unknown = [k for k in kw if k not in cls.field_names()]
    if unknown:
        raise TypeError(f"fit: {', '.join(map(repr, unknown))} "
                        f"{'does' if len(unknown) == 1 else 'do'} not apply to {_describe(cls)}; "
                        f"its fields are {', '.join(cls.field_names())}")
    return cls(**kw) if base is None else dataclasses.replace(base, **kw)


def _check_seed(seed) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"fit: seed must be an integer, got {seed!r} ({type(seed).__name__})")
    if not 0 <= int(seed) <= specs.MAX_SEED:
        raise ValueError(f"fit: seed must be in [0, 2**63 - 1], got {seed}")
    return int(seed)


def resolve(train: Ratings, spec, *, seed, mesh=None, table_sharding="auto"):
    """``(resolved spec, Run)`` for ``fit``: every ``"auto"`` decided (module docstring).

    Raises:
        TypeError, ValueError: naming the bad argument; RuntimeError: a kernel asked
        for with ``kernel=True`` cannot run here.
    """
    seed = _check_seed(seed)
    if table_sharding not in ("auto", "replicated", "sharded"):
        raise ValueError(f"fit: table_sharding must be 'auto', 'replicated' or 'sharded', "
                         f"got {table_sharding!r}")
    n = len(train)
    is_mf = isinstance(spec, specs.MF)
    want_fused = is_mf and (spec.gradient == "fused" or (
        spec.gradient == "auto" and n >= AUTO_BLOCKED_MIN_RATINGS))
    hw = detect_hardware(mesh, n_users=train.n_users, n_items=train.n_items, rank=spec.rank,
                         want_fused=want_fused)
    if hw.mesh is not None and isinstance(spec, (specs.ALS, specs.BayesianMF)):
        raise ValueError(f"fit: {type(spec).__name__} (solver {spec.solver!r}) runs on one "
                         "device; pass mesh=None")
    sharding = "replicated"
    if hw.mesh is not None:
        shard = table_sharding == "sharded" or (table_sharding == "auto"
                                                and hw.mesh.shape[distributed.MODEL] > 1)
        sharding = "sharded" if shard else "replicated"
    run = Run(seed, hw, sharding, np.float64 if jax.config.jax_enable_x64 else np.float32)
    return _resolve_spec(spec, train, run), run


def _resolve_spec(spec, train: Ratings, run: Run):
    hw, n = run.hardware, len(train)
    if isinstance(spec, specs.MF):
        batch = spec.batch_size or auto_batch_size(n, train.n_users, train.n_items)
        batch = int(min(batch, n))
        gradient = resolve_gradient(spec.gradient, n, hw)
        lr = spec.learning_rate
        if lr is None and isinstance(spec.optimizer, str) and spec.schedule is None:
            lr = OPTIMIZERS[spec.optimizer][1]
        return dataclasses.replace(
            spec, batch_size=batch, gradient=gradient, learning_rate=lr,
            sort_by=resolve_sort_by(spec.sort_by, train, -(-n // batch), gradient, hw),
            ensemble=E.n_members(spec.rank, spec.ensemble))
    if isinstance(spec, (specs.ALS, specs.BayesianMF)):
        from ..kernels import als as kernel

        return dataclasses.replace(spec, kernel=_kernel(spec, kernel, run, "explicit ALS/Gibbs"))
    if isinstance(spec, specs.ImplicitALS):
        if spec.solver == "optax":
            opt = spec.optimizer or "adam"
            lr = spec.learning_rate or OPTIMIZERS[opt][1]
            return dataclasses.replace(spec, optimizer=opt, learning_rate=lr, kernel=False)
        from ..kernels import ials as kernel

        steps = spec.cg_steps
        if steps is None:
            steps = min(DEFAULT_CG_STEPS_CPU, spec.rank) if hw.backend == "cpu" else 0
        return dataclasses.replace(spec, cg_steps=steps, kernel=_kernel(spec, kernel, run, "iALS"))
    if isinstance(spec, specs.BPR):
        lr = spec.learning_rate
        if lr is None and isinstance(spec.optimizer, str) and spec.schedule is None:
            lr = spec.DEFAULT_LEARNING_RATE
        return dataclasses.replace(spec, learning_rate=lr)
    return spec


def _kernel(spec, kernel, run: Run, what: str) -> bool:
    """``spec.kernel`` resolved: whether the C++ kernel runs (one CPU device only)."""
    one_device = run.mesh is None or run.mesh.size == 1
    if spec.kernel is False:
        return False
    # "auto" never compiles (an uncached kernel: the XLA route, said once on stderr);
    # kernel=True compiles it now.
    usable = one_device and kernel.usable_for(run.dtype, build=spec.kernel is True)
    if spec.kernel is True and not usable:
        why = ("it runs on one CPU device, not a mesh" if not one_device else
               kernel.unavailable_reason() or f"it needs the CPU backend and float32/float64 "
               f"factors (backend {run.hardware.backend}, dtype {np.dtype(run.dtype)})")
        raise RuntimeError(f"fit: {type(spec).__name__}(kernel=True): the {what} CPU kernel "
                           f"cannot run here: {why}; pass kernel='auto' or False")
    return bool(usable)
