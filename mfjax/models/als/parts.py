""":class:`~mfjax.ALS` as the shared layers see it (:class:`mfjax.models.ModelRecord`).

Explicit biased MF (:mod:`mfjax.objectives.explicit`) by exact alternating least squares
(:mod:`mfjax.solvers.als`, with the C++ half-step of :mod:`mfjax.kernels.als`); fold-in
and partial fits solve the same ridge row as its sweeps; its trials vectorize
(:mod:`mfjax.models.als.trials`).
"""
from __future__ import annotations

import dataclasses

from ...objectives import explicit
from ...objectives.explicit import Params
from ...solvers.als.solver import sweep_bytes
from ...solvers.hardware import resolve_kernel
from ...solvers.rows import ridge_row_solve, ridge_hyperparameters
from . import trials
from ..record import legacy_fields
from .spec import ALS

__all__ = ["SPEC", "OBJECTIVE", "PARAMS", "make_solver", "resolve", "memory_bytes", "row_solve",
           "row_hyperparameters", "score", "trials", "legacy_spec", "MEMORY_HINT"]

SPEC = ALS
OBJECTIVE = explicit.OBJECTIVE
PARAMS = Params
MEMORY_HINT = "rank"
score = explicit.predict
row_hyperparameters = ridge_hyperparameters
row_solve = ridge_row_solve


def make_solver(spec):
    from .solver import ALSSolver

    return ALSSolver()


def resolve(spec: ALS, train, run) -> ALS:
    """``kernel``: the C++ half-step on one CPU device when it is built."""
    from ...kernels import als as kernel

    return dataclasses.replace(spec, kernel=resolve_kernel(spec, kernel, run, "explicit ALS/Gibbs"))


def memory_bytes(spec, *, n_users, n_items, nnz, itemsize, backend) -> int:
    """Both tables, the row systems and the two CSR layouts (:func:`~mfjax.solvers.als.solver.sweep_bytes`)."""
    return sweep_bytes(spec.rank, n_users=n_users, n_items=n_items, nnz=nnz,
                              itemsize=itemsize, backend=backend)


def legacy_spec(config: dict, solver: str) -> dict:
    return legacy_fields(config, ALS)
