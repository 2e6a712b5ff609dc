""":class:`~mfjax.ImplicitALS` as the shared layers see it (:class:`mfjax.models.ModelRecord`).

iALS (:mod:`mfjax.models.implicit_als.objective`) by alternating exact or conjugate-gradient row
solves (:mod:`mfjax.models.implicit_als.solver`, with the C++ half-steps of :mod:`mfjax.kernels.ials`),
or by full-batch Optax steps (``solver="optax"``, a check). Fold-in and partial fits
solve the exact iALS row; its ALS trials vectorize (:mod:`mfjax.models.implicit_als.trials`).
"""
from __future__ import annotations

import dataclasses

from ...objectives import explicit
from . import objective as ials
from ...objectives.explicit import Params
from ...solvers import memory
from ...solvers.hardware import resolve_kernel
from .fold_in import ials_row_solve
from . import trials
from .features import feature_vectors, score_features
from ..record import legacy_fields
from .spec import ImplicitALS

__all__ = ["SPEC", "OBJECTIVE", "PARAMS", "make_solver", "resolve", "memory_bytes", "row_solve",
           "row_hyperparameters", "score", "score_features", "feature_rows", "trials", "legacy_spec", "MEMORY_HINT",
           "DEFAULT_CG_STEPS_CPU"]

SPEC = ImplicitALS
OBJECTIVE = ials.OBJECTIVE
PARAMS = Params
MEMORY_HINT = "rank"
#: ``cg_steps=None`` on a CPU backend (measured: the exact solve's quality in about half
#: its time; ``benchmarks/RESULTS.md``).
DEFAULT_CG_STEPS_CPU = 3
score = explicit.predict  # <p_u, q_i>: the biases stay 0
row_solve = ials_row_solve


def feature_rows(model, features, side: str, raw_ids):
    """Vectors [n, k] of new IDs from their features (``W^T f``; 0 without a row)."""
    return feature_vectors(model, features, side, raw_ids)[0]


def make_solver(spec):
    from .solver import ALSSolver, IALSOptaxSolver

    return IALSOptaxSolver() if spec.solver == "optax" else ALSSolver()


def resolve(spec: ImplicitALS, train, run) -> ImplicitALS:
    """``solver="optax"``: the optimizer (Adam) and its default rate. ``solver="als"``:
    ``cg_steps`` (3 on a CPU backend, exact elsewhere) and ``kernel`` (the C++
    half-steps on one CPU device when they are built)."""
    if run.features is not None:
        return _resolve_features(spec, run)
    if spec.solver == "optax":
        from ...solvers.minibatch.optimizers import OPTIMIZERS

        opt = spec.optimizer or "adam"
        lr = spec.learning_rate or OPTIMIZERS[opt][1]
        return dataclasses.replace(spec, optimizer=opt, learning_rate=lr, kernel=False)
    from ...kernels import ials as kernel

    steps = spec.cg_steps
    if steps is None:
        steps = min(DEFAULT_CG_STEPS_CPU, spec.rank) if run.hardware.backend == "cpu" else 0
    return dataclasses.replace(spec, cg_steps=steps, kernel=resolve_kernel(spec, kernel, run, "iALS"))


def _resolve_features(spec, run) -> ImplicitALS:
    """With ``features=``: the XLA half-steps (the C++ kernel takes no prior term), so
    ``kernel="auto"`` is False and ``kernel=True`` is refused; ``solver="optax"`` too."""
    if spec.solver == "optax" or spec.kernel is True:
        what = "solver='optax'" if spec.solver == "optax" else "kernel=True"
        raise ValueError(f"fit: ImplicitALS({what}) does not take features= (the feature "
                         "prior runs on the XLA ALS half-steps: solver='als', kernel='auto' "
                         "or False)")
    steps = spec.cg_steps
    if steps is None:
        steps = min(DEFAULT_CG_STEPS_CPU, spec.rank) if run.hardware.backend == "cpu" else 0
    return dataclasses.replace(spec, cg_steps=steps, kernel=False)


def memory_bytes(spec, *, n_users, n_items, nnz, itemsize, backend) -> int:
    """ALS: both tables and their padded copies, 4 n k z, + the row systems (the C++
    kernel's per thread on a CPU, else XLA's chunk of 256 + 32 rows) + the layouts.
    Optax: 4 n k z + 3 nnz (8 + z). Computed in float32."""
    from .solver import ALSSolver

    n, k, z = n_users + n_items, spec.rank, 4
    if spec.solver == "optax":
        return 4 * n * k * z + 3 * nnz * (8 + z)
    rows = ALSSolver.CHUNKS["chunk_rows"] + 32
    return (4 * n * k * z + memory.row_systems_bytes(k, z, backend, rows)
            + memory.layout_bytes(nnz, z))


def row_hyperparameters(spec) -> dict:
    return {k: float(getattr(spec, k)) for k in ("alpha", "unobserved_weight", "reg", "nu")}


def legacy_spec(config: dict, solver: str) -> dict:
    old = {**config, **(config.get("options") or {})}
    fields = legacy_fields(config, ImplicitALS)
    fields["solver"] = solver
    fields.pop("optimizer", None), fields.pop("learning_rate", None)
    if solver == "als":
        fields["cg_steps"] = old.get("cg_steps", 0) if old.get("als_method") == "cg" else 0
    return fields
