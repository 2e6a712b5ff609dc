""":class:`~mfjax.MF` as the shared layers see it (:class:`mfjax.models.ModelRecord`).

Explicit biased MF ``r̂ = μ + b_u + b_i + <p_u, q_i>`` (:mod:`mfjax.objectives.explicit`)
trained by Optax minibatches (:mod:`mfjax.solvers.minibatch`); fold-in and partial fits
solve the ridge row of :func:`mfjax.loss` (:func:`mfjax.solvers.rows.ridge_rows`).
"""
from __future__ import annotations

from ...objectives import explicit
from ...objectives.explicit import Params
from ...solvers import memory
from ...solvers.rows import ridge_row_solve, ridge_hyperparameters
from .resolve import resolve
from ..record import legacy_fields
from .spec import MF

__all__ = ["SPEC", "OBJECTIVE", "PARAMS", "make_solver", "resolve", "memory_bytes", "row_solve",
           "row_hyperparameters", "score", "legacy_spec", "MEMORY_HINT"]

SPEC = MF
OBJECTIVE = explicit.OBJECTIVE
PARAMS = Params
#: What to reduce when the memory estimate refuses a fit.
MEMORY_HINT = "rank or ensemble"
score = explicit.predict
row_hyperparameters = ridge_hyperparameters
row_solve = ridge_row_solve


def make_solver(spec):
    from ...solvers.minibatch.solver import OptaxSolver

    return OptaxSolver()


def memory_bytes(spec, *, n_users, n_items, nnz, itemsize, backend) -> int:
    """4 tables of n (k+1) z per ensemble member (parameters, gradient, two Adam
    moments) + the ratings grid. Computed in float32."""
    members = spec.ensemble if isinstance(spec.ensemble, int) else 1
    n, z = n_users + n_items, 4
    return 4 * n * (spec.rank + 1) * z * members + memory.layout_bytes(nnz, z)


def legacy_spec(config: dict, solver: str) -> dict:
    """The spec fields of a config written before specs existed."""
    from ...solvers.minibatch.optimizers import OPTIMIZERS

    old = {**config, **(config.get("options") or {})}
    fields = legacy_fields(config, MF)
    fields["ensemble"] = old.get("ensemble", "auto")
    for k in ("optimizer", "schedule"):
        if k in fields:
            v = fields[k]
            plain = v in (None, "adam") or (k == "optimizer" and isinstance(v, str) and v in OPTIMIZERS)
            fields[k] = v if plain else {"recorded": str(v)}
    return fields
