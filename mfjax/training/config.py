"""``fit``'s configuration step: check every argument once and resolve every ``"auto"``.

:func:`resolve` turns ``fit``'s keyword arguments into a :class:`FitConfig`. The
hardware is decided once, in :func:`detect_hardware` (backend, mesh, whether the
fused CPU kernel is usable, XLA options for affected jaxlib versions), and passed
down, so nothing below asks ``jax.default_backend()`` again. The rules for the
``"auto"`` settings:

- ``batch_size``: :func:`auto_batch_size` (about 1/20 of the data, a power of two).
- ``gradient``: ``jax.grad`` below :data:`AUTO_BLOCKED_MIN_RATINGS` ratings (its
  compile is the cheapest); from there ``"fused"`` on one CPU device when the kernel
  builds, else ``"blocked"`` (accelerators, meshes, no compiler).
- ``sort_by``: users on a CPU, items on a GPU, unless that pads the grid by > 25%
  and the other pads less; for ``"fused"`` the side with more rows.
- ``ensemble``: members of rank >= 8, at most 16 (:func:`mfjax.solvers.minibatch.ensemble.n_members`).
- ``mesh``: :func:`mfjax.distributed.resolve_mesh`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any, Callable

import jax
import numpy as np
import optax

from .. import distributed
from ..data import Ratings
from ..solvers.minibatch.gradients import ROUTES
from ..kernels import fused
from ..solvers.minibatch import ensemble as E
from ..solvers.minibatch.layout import padding_share
from ..solvers.minibatch.optimizers import OPTIMIZERS, make_optimizer

__all__ = ["DEFAULTS", "OBJECTIVE_DEFAULTS", "objective_default", "GRADIENTS", "AUTO_BLOCKED_MIN_RATINGS", "SCATTER_CAS_JAXLIB", "Hardware",
           "FitConfig", "auto_batch_size", "data_fingerprint", "detect_hardware", "resolve", "resolve_gradient",
           "resolve_sort_by", "scatter_add_is_slow"]

# Tuned on ML-100K (scripts/train.py and benchmarks/ record the runs).
DEFAULTS = dict(
    rank=128,
    reg=0.1,
    bias_reg=0.01,
    optimizer="adam",
    learning_rate=None,
    epochs=25,
    batch_size=None,
    init_scale=0.1,
    ensemble="auto",
)

#: ``fit``'s defaults per implicit objective, where they differ from :data:`DEFAULTS`
#: (which are tuned on explicit ratings). ``rank``/``reg``/``epochs``/``batch_size``/
#: ``learning_rate``/``init_scale`` given as ``None`` resolve here; the solver options
#: (``alpha``, ``unobserved_weight``, ``nu``) resolve in the solver. Tuned on a
#: validation split carved from the training part of ML-1M (ratings >= 4 positive,
#: ``benchmarks/bench_implicit.py --tune``), never on its test positives.
OBJECTIVE_DEFAULTS = {
    # epochs: on that validation split iALS' NDCG@10 is 0.211 after 4 sweeps and 0.215
    # after 8 (each sweep ~0.4 s; with both half-steps exact, the default since the
    # shared half-step program, 0.210 and 0.215, and 0.209 after 3); BPR's peaks at 0.164 near epoch 8-9 and falls to 0.145
    # by epoch 25 (overfitting), so fewer epochs are both faster and better there.
    "ials": dict(rank=64, reg=0.01, epochs=4, init_scale=0.01),
    "bpr": dict(rank=64, reg=0.001, epochs=8, batch_size=8192, learning_rate=0.01,
                init_scale=0.01),
}


def objective_default(objective: str, name: str, value):
    """``value``, or where it is ``None`` the default of ``name`` for ``objective``.

    Explicit objectives get :data:`DEFAULTS` (``batch_size``/``learning_rate`` stay
    ``None``: they resolve later, from the data and the optimizer).
    """
    if value is not None:
        return value
    return OBJECTIVE_DEFAULTS.get(objective, {}).get(name, DEFAULTS.get(name))


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


def scatter_add_is_slow() -> bool:
    """Whether this jaxlib compiles GPU f32 scatter-add to a CAS loop (jax issue 38806).

    jaxlib 0.10.2 to 0.11.0 ship an LLVM that lowers the float atomic add of a
    scatter to a compare-and-swap retry loop unless the kernel flushes
    denormals, catastrophic when many updates hit one row (a popular item).
    """
    lo, hi = SCATTER_CAS_JAXLIB
    return lo <= jaxlib_version() <= hi


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
        want_fused: whether to check (and so build, once per machine) the fused kernel.
    """
    backend = jax.default_backend()
    mesh = distributed.resolve_mesh(mesh, n_users, n_items, rank)
    reason = "not checked"
    if backend != "cpu" or mesh is not None:
        reason = f"it runs on one CPU device only (backend {backend!r}, mesh {distributed.describe(mesh)})"
    elif want_fused:
        reason = fused.unavailable_reason(build=False)  # "auto" never compiles
    options = {"xla_gpu_ftz": True} if backend == "gpu" and scatter_add_is_slow() else None
    return Hardware(backend, mesh, reason, options)


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


@dataclasses.dataclass
class FitConfig:
    """Every setting of one ``fit`` call, checked and with each ``"auto"`` resolved.

    ``record`` is what the model and checkpoints store (JSON-able); solvers may add
    facts about their layout to it (e.g. ``batch_slots``).
    """

    rank: int
    reg: float
    bias_reg: float | None
    epochs: int
    seed: int
    init_scale: float
    members: int
    hardware: Hardware
    objective: str = "explicit"
    solver: str = "optax"
    optimizer: Any = "adam"
    opt: optax.GradientTransformation | None = None
    learning_rate: float | None = None
    schedule: Callable | None = None
    batch_size: int = 0
    n_batches: int = 0
    gradient: str = "autodiff"
    sort_by: str = "users"
    table_sharding: str = "replicated"
    patience: int | None = None
    checkpoint_every: int = 1
    options: dict = dataclasses.field(default_factory=dict)
    record: dict = dataclasses.field(default_factory=dict)

    @property
    def mesh(self):
        return self.hardware.mesh


def _positive_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"fit: {name} must be a positive integer, got {v!r}")
    return int(v)


def _non_negative(name: str, v) -> float:
    if isinstance(v, bool) or not (isinstance(v, (int, float, np.floating, np.integer))
                                   and v >= 0 and math.isfinite(v)):
        raise ValueError(f"fit: {name} must be a non-negative number, got {v!r}")
    return float(v)


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


def _optimizer_record(optimizer, schedule, optimizer_name, resume: bool):
    """How the optimizer and schedule are named in the record (checkpoints compare names)."""
    if optimizer_name is not None and (not isinstance(optimizer_name, str) or not optimizer_name):
        raise ValueError(f"fit: optimizer_name must be a non-empty string, got {optimizer_name!r}")
    custom = not isinstance(optimizer, str) or schedule is not None
    if custom and resume and optimizer_name is None:
        raise ValueError("fit: resume=True with an optax.GradientTransformation or a schedule needs "
                         "optimizer_name= (a name you choose for that optimizer and schedule): "
                         "their repr holds memory addresses, so runs cannot be told apart without it")
    if optimizer_name is not None:
        return optimizer_name, (None if schedule is None else optimizer_name)
    return (optimizer if isinstance(optimizer, str) else repr(optimizer),
            None if schedule is None else repr(schedule))


def resolve(train: Ratings, *, rank, reg, bias_reg, optimizer, learning_rate, epochs, batch_size,
            seed, gradient, sort_by, validation, patience, schedule, init_scale, ensemble,
            checkpoint_dir, checkpoint_every, resume, mesh, table_sharding,
            objective: str = "explicit", solver: str = "optax", options: dict | None = None,
            optimizer_name: str | None = None) -> FitConfig:
    """Check ``fit``'s arguments and resolve them into a :class:`FitConfig`.

    Raises:
        TypeError: ``train`` is not a :class:`mfjax.Ratings`.
        ValueError: naming the first bad argument.
    """
    if not isinstance(train, Ratings):
        raise TypeError(f"train must be an mfjax.Ratings, got {type(train).__name__}")
    rank, reg, epochs, batch_size, learning_rate, init_scale = (
        objective_default(objective, name, v) for name, v in (
            ("rank", rank), ("reg", reg), ("epochs", epochs), ("batch_size", batch_size),
            ("learning_rate", learning_rate), ("init_scale", init_scale)))
    n = len(train)
    if n == 0:
        raise ValueError("fit: the training set is empty")
    rank, epochs = _positive_int("rank", rank), _positive_int("epochs", epochs)
    checkpoint_every = _positive_int("checkpoint_every", checkpoint_every)
    reg = _non_negative("reg", reg)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"fit: seed must be a non-negative integer, got {seed!r}")
    init_scale = _non_negative("init_scale", init_scale)
    if init_scale == 0:
        raise ValueError("fit: init_scale must be > 0 (all-zero factors get zero gradients)")
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, (int, np.integer))):
        raise ValueError(f"fit: patience must be a positive integer or None, got {patience!r}")
    if bias_reg is not None:
        bias_reg = _non_negative("bias_reg", bias_reg)
    if patience is not None and (validation is None or patience < 1):
        raise ValueError("fit: patience needs a validation set and must be >= 1")
    if resume and checkpoint_dir is None:
        raise ValueError("fit: resume=True needs checkpoint_dir")
    if table_sharding not in ("auto", "replicated", "sharded"):
        raise ValueError(f"fit: table_sharding must be 'auto', 'replicated' or 'sharded', "
                         f"got {table_sharding!r}")
    if batch_size is None:
        batch_size = auto_batch_size(n, train.n_users, train.n_items)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"fit: batch_size must be a positive integer, got {batch_size!r}")
    batch_size = int(min(batch_size, n))
    n_batches = -(-n // batch_size)
    opt = make_optimizer(optimizer, learning_rate, schedule)
    opt_name, schedule_name = _optimizer_record(optimizer, schedule, optimizer_name, resume)
    members = E.n_members(rank, ensemble)
    hw = detect_hardware(mesh, n_users=train.n_users, n_items=train.n_items, rank=rank,
                         want_fused=gradient in ("auto", "fused") and n >= AUTO_BLOCKED_MIN_RATINGS
                         or gradient == "fused")
    gradient = resolve_gradient(gradient, n, hw)
    sort_by = resolve_sort_by(sort_by, train, n_batches, gradient, hw)
    if hw.mesh is not None:
        shard = table_sharding == "sharded" or (table_sharding == "auto"
                                                and hw.mesh.shape[distributed.MODEL] > 1)
        table_sharding = "sharded" if shard else "replicated"
    cfg = FitConfig(rank=rank, reg=reg, bias_reg=bias_reg, epochs=epochs, seed=int(seed),
                    init_scale=float(init_scale), members=members, hardware=hw,
                    objective=objective, solver=solver, optimizer=optimizer, opt=opt,
                    learning_rate=learning_rate, schedule=schedule, batch_size=batch_size,
                    n_batches=n_batches, gradient=gradient, sort_by=sort_by,
                    table_sharding=table_sharding, patience=patience,
                    checkpoint_every=checkpoint_every, options=dict(options or {}))
    cfg.record.update(
        rank=rank, reg=reg, bias_reg=bias_reg,
        optimizer=opt_name,
        learning_rate=(OPTIMIZERS[optimizer][1] if isinstance(optimizer, str) and learning_rate is None
                       and schedule is None else None if learning_rate is None else float(learning_rate)),
        schedule=schedule_name,
        epochs=epochs, batch_size=batch_size, seed=int(seed), gradient=gradient,
        sort_by=sort_by, ensemble=members, init_scale=float(init_scale), patience=patience,
        n_ratings=n, n_users=train.n_users, n_items=train.n_items,
        mesh=distributed.describe(hw.mesh), objective=objective, solver=solver,
        options=dict(options or {}),
    )
    if checkpoint_dir is not None:
        cfg.record["data_sha256"] = data_fingerprint(train)
    if hw.mesh is not None:
        cfg.record["table_sharding"] = table_sharding
    return cfg
