""":class:`~mfjax.BPR` as the shared layers see it (:class:`mfjax.models.ModelRecord`).

Bayesian personalized ranking (:mod:`mfjax.models.bpr.objective`) by Optax minibatches of
sampled triples (:mod:`mfjax.models.bpr`). Fold-in and partial fits of users run
Newton steps on each user's BPR objective with the items fixed (items do not split into
independent rows), at the λ that reproduces the trained users (:func:`calibrate_rows`).
"""
from __future__ import annotations

import numpy as np

from ...objectives import explicit
from . import objective as bpr
from ...objectives.explicit import Params
from ...solvers.rows import ridge_hyperparameters
from .fold_in import bpr_fold_in_reg, bpr_row_solve
from ..record import legacy_fields
from .spec import BPR

__all__ = ["SPEC", "OBJECTIVE", "PARAMS", "make_solver", "resolve", "memory_bytes", "row_solve",
           "row_hyperparameters", "calibrate_rows", "score", "legacy_spec", "MEMORY_HINT"]

SPEC = BPR
OBJECTIVE = bpr.OBJECTIVE
PARAMS = Params
MEMORY_HINT = "rank"
score = explicit.predict  # b_i + <p_u, q_i>: user and global bias stay 0
row_hyperparameters = ridge_hyperparameters
row_solve = bpr_row_solve


def calibrate_rows(model, hp: dict) -> dict:
    """``hp`` with ``reg`` the fold-in λ of :func:`mfjax.models.bpr.fold_in.bpr_fold_in_reg`.

    Computed from the model's training users and seen index on the first fold-in or
    partial fit, then kept in ``model.config["fold_in_reg"]`` (saved with the model).
    A model without a seen index solves at the spec's ``reg`` and says so.
    """
    reg = model.config.get("fold_in_reg")
    if reg is None:
        if model.seen_indptr is None or model.seen_items is None:
            import warnings

            warnings.warn("BPR fold-in: the model has no seen index to calibrate its fold-in "
                          f"reg on; solving at the spec's reg={hp['reg']}", stacklevel=3)
            return hp
        p = model.params
        reg = bpr_fold_in_reg(np.asarray(p.item_factors), np.asarray(p.item_bias),
                              np.asarray(p.user_factors), model.seen_indptr, model.seen_items,
                              hp["reg"], seed=int(model.config.get("seed") or 0))
        model.config["fold_in_reg"] = reg
    return {**hp, "reg": float(reg)}


def make_solver(spec):
    from .solver import BPRSolver

    return BPRSolver()


def resolve(spec: BPR, train, run) -> BPR:
    """``learning_rate``: :attr:`BPR.DEFAULT_LEARNING_RATE` for a named optimizer."""
    import dataclasses

    lr = spec.learning_rate
    if lr is None and isinstance(spec.optimizer, str) and spec.schedule is None:
        lr = spec.DEFAULT_LEARNING_RATE
    return dataclasses.replace(spec, learning_rate=lr)


def memory_bytes(spec, *, n_users, n_items, nnz, itemsize, backend) -> int:
    """4 n k z (tables, gradient, two Adam moments) + 3 nnz (8 + z). Computed in float32."""
    return 4 * (n_users + n_items) * spec.rank * 4 + 3 * nnz * 12


def legacy_spec(config: dict, solver: str) -> dict:
    return legacy_fields(config, BPR)
