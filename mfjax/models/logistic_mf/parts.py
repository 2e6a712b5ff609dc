""":class:`~mfjax.LogisticMF` as the shared layers see it (:class:`mfjax.models.ModelRecord`).

Logistic MF (Johnson 2014; :mod:`.objective`) by alternating Newton-CG sweeps
(:mod:`.solver`). The parameters are the shared biased-MF
:class:`~mfjax.objectives.explicit.Params` with μ = 0 (b_u, b_i are the model's
biases), so scores, top-N, persistence and the row updates are the shared ones.
Fold-in and partial fits (users or items) run Newton steps on each row's convex
problem (:mod:`.fold_in`).
"""
from __future__ import annotations

from ...objectives import explicit
from ...objectives.explicit import Params
from .fold_in import row_solve
from .objective import OBJECTIVE
from .spec import LogisticMF

__all__ = ["SPEC", "OBJECTIVE", "PARAMS", "make_solver", "resolve", "memory_bytes", "row_solve",
           "row_hyperparameters", "score", "MEMORY_HINT"]

SPEC = LogisticMF
PARAMS = Params
MEMORY_HINT = "rank"
score = explicit.predict  # μ + b_u + b_i + <p_u, q_i>, μ = 0: the logit


def make_solver(spec):
    from .solver import LogisticMFSolver

    return LogisticMFSolver()


def resolve(spec: LogisticMF, train, run) -> LogisticMF:
    """No field is ``"auto"``: the spec as given."""
    return spec


def memory_bytes(spec, *, n_users, n_items, nnz, itemsize, backend) -> int:
    """The tables and their updates, 6 n (k + 1) z, + two chunked layouts with the
    gathered other-side rows, 2 (nnz + 32 n) (13 + (k + 1) z), + one block of the dense
    pass, 3 · 256 · max(n_users, n_items) z. Computed in float32."""
    from .solver import BLOCK, CHUNK

    n, k1, z = n_users + n_items, spec.rank + 1, 4
    slots = nnz + CHUNK * n
    return 6 * n * k1 * z + 2 * slots * (13 + k1 * z) + 3 * BLOCK * max(n_users, n_items) * z


def row_hyperparameters(spec) -> dict:
    """α, λ, λ_b: what :func:`.fold_in.row_solve` reads."""
    return {k: float(getattr(spec, k)) for k in ("alpha", "reg", "bias_reg")}
