"""``fit``'s configuration step: the spec from ``fit``'s arguments, every ``"auto"`` resolved.

:func:`spec_for` turns ``fit(train, model, **shorthand)`` into one spec (a registered
model's, :mod:`mfjax.models`); :func:`resolve` checks the run's arguments, decides the
hardware once (:func:`mfjax.solvers.hardware.detect_hardware`: backend, mesh, XLA
options for affected jaxlib versions) and returns the spec with every ``"auto"``
resolved by its model package (the record's ``resolve``) plus a :class:`Run`. Nothing
below asks ``jax.default_backend()`` again, and no solver changes the spec.
"""
from __future__ import annotations

import dataclasses
import hashlib

import jax
import numpy as np

from .. import distributed, models, specs
from ..data import Ratings
from ..solvers import memory
from ..solvers.hardware import (SCATTER_CAS_JAXLIB, Hardware, Run, compiler_options,
                                detect_hardware, jaxlib_version, scatter_add_is_slow)

__all__ = ["SCATTER_CAS_JAXLIB", "Hardware", "Run", "compiler_options", "data_fingerprint",
           "detect_hardware", "jaxlib_version", "resolve", "scatter_add_is_slow", "spec_for",
           "check_memory_of"]


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


def _describe(cls) -> str:
    return f"{cls.__name__} (objective {cls.objective!r})"


def spec_for(train, model, shorthand: dict):
    """The spec ``fit(train, model, **shorthand)`` trains.

    ``model`` is a spec, a spec class or None. ``shorthand`` may name ``objective``
    and ``solver`` (which pick the model when ``model`` is None,
    :func:`mfjax.models.pick_record`) and any field of that spec; with ``model=None``
    and neither, the model is :func:`mfjax.models.default_record`'s, from the data alone.

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
            cls = models.default_record(train).spec
        else:
            cls = models.pick_record(train, objective, solver).spec
        if solver is not None and "solver" in cls.field_names():
            kw.setdefault("solver", solver)
        model = _build(cls, kw)
    else:
        models.record_of(model)
        if objective is not None and models.objective_named(objective).name != model.objective:
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


def resolve(train: Ratings, spec, *, seed, mesh=None, table_sharding="auto", features=None,
            where: str = "fit"):
    """``(resolved spec, Run)`` for ``fit``: every ``"auto"`` decided by the model's record.

    Args:
        features: ``fit``'s ``features`` (an :class:`mfjax.Features` or None), checked
            against the model (:func:`mfjax.models.check_features`) and the
            ratings' IDs (:meth:`mfjax.Features.check_against`), then kept in the Run.

    Raises:
        TypeError, ValueError: naming the bad argument (features for a model that takes
        none: naming the model); RuntimeError: a kernel asked for with ``kernel=True``
        cannot run here.
    """
    seed = _check_seed(seed)
    record = models.record_of(spec)
    models.check_features(record, features, where)
    if features is not None:
        features.check_against(train.user_ids, train.item_ids, where)
    if table_sharding not in ("auto", "replicated", "sharded"):
        raise ValueError(f"fit: table_sharding must be 'auto', 'replicated' or 'sharded', "
                         f"got {table_sharding!r}")
    hw = detect_hardware(mesh, n_users=train.n_users, n_items=train.n_items, rank=spec.rank,
                         want_fused=False)
    if hw.mesh is not None and not record.meshes:
        raise ValueError(f"fit: {type(spec).__name__} (solver {spec.solver!r}) runs on one "
                         "device; pass mesh=None")
    sharding = "replicated"
    if hw.mesh is not None:
        shard = table_sharding == "sharded" or (table_sharding == "auto"
                                                and hw.mesh.shape[distributed.MODEL] > 1)
        sharding = "sharded" if shard else "replicated"
    run = Run(seed, hw, sharding, np.float64 if jax.config.jax_enable_x64 else np.float32,
              features)
    return record.resolve(spec, train, run), run


def check_memory_of(train: Ratings, spec, run: Run) -> None:
    """Refuse a fit of the resolved ``spec`` that cannot fit in memory, with the figure
    (the record's :meth:`~mfjax.models.ModelRecord.memory_bytes`,
    :func:`mfjax.solvers.memory.check_memory`)."""
    record = models.record_of(spec)
    need = record.memory_bytes(spec, n_users=train.n_users, n_items=train.n_items,
                               nnz=len(train), itemsize=np.dtype(run.dtype).itemsize,
                               backend=run.hardware.backend)
    hint = getattr(record.parts, "MEMORY_HINT", "rank")
    memory.check_memory(need, f"fit({record.name}, rank={spec.rank}, {train.n_users:,} users, "
                              f"{train.n_items:,} items, {len(train):,} ratings)",
                        f"reduce {hint}")
