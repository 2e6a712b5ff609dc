""":class:`~mfjax.BPR` as the shared layers see it (:class:`mfjax.models.ModelRecord`).

Bayesian personalized ranking (:mod:`mfjax.models.bpr.objective`) by Optax minibatches of
sampled triples (:mod:`mfjax.models.bpr`). Fold-in and partial fits of users run
Newton steps on each user's BPR objective with the items fixed (items do not split into
independent rows), at the λ that reproduces the trained users (:func:`calibrate_rows`).

``loss="warp"`` (:mod:`mfjax.models.bpr.warp`) and ``fit(..., features=F)``
(:mod:`mfjax.models.bpr.hybrid`, LightFM-style feature embeddings) train with
:class:`mfjax.models.bpr.hybrid_solver.HybridSolver`; the model holds the composed
tables, so it scores, recommends and saves as BPR. IDs known only from features are rows
(the record's ``feature_ids``); later ones get their vectors from
:mod:`mfjax.models.bpr.serving` (``feature_rows``, ``score_features``).
"""
from __future__ import annotations

import numpy as np

from ...objectives import explicit
from ...objectives.explicit import Params
from ...solvers.rows import ridge_hyperparameters
from .fold_in import bpr_fold_in_reg, bpr_row_solve
from ..record import legacy_fields
from .losses import OBJECTIVE, gradient_hyperparameters
from .serving import feature_rows, score_features
from .spec import BPR

__all__ = ["SPEC", "OBJECTIVE", "PARAMS", "make_solver", "resolve", "memory_bytes", "row_solve",
           "row_hyperparameters", "calibrate_rows", "score", "score_features", "feature_rows",
           "gradient_hyperparameters",
           "legacy_spec", "MEMORY_HINT"]

SPEC = BPR
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
    """Plain BPR's solver, or the WARP / features one (chosen at ``init``, which sees
    ``run.features``: :func:`mfjax.models.bpr.hybrid_solver.make_solver`)."""
    from .hybrid_solver import make_solver as pick

    return pick(spec)


def resolve(spec: BPR, train, run) -> BPR:
    """``learning_rate``: :attr:`BPR.DEFAULT_LEARNING_RATE` for a named optimizer;
    ``max_sampled``: 10 for ``loss="warp"``.

    Raises:
        ValueError: ``identity_features=False`` without ``features=``; a mesh with
            ``loss="warp"`` or ``features=`` (they train on one device).
    """
    import dataclasses

    if not spec.identity_features and run.features is None:
        raise ValueError("fit: BPR(identity_features=False) asks for vectors from features "
                         "alone; pass features= (or drop identity_features=False)")
    if run.mesh is not None and (spec.loss != "bpr" or run.features is not None):
        raise ValueError("fit: BPR with loss='warp' or features= trains on one device; drop "
                         "mesh= (plain BPR takes it)")
    lr = spec.learning_rate
    if lr is None and isinstance(spec.optimizer, str) and spec.schedule is None:
        lr = spec.DEFAULT_LEARNING_RATE
    sampled = spec.max_sampled
    if spec.loss == "warp" and sampled is None:
        sampled = DEFAULT_MAX_SAMPLED
    return dataclasses.replace(spec, learning_rate=lr, max_sampled=sampled)


#: ``max_sampled`` of ``loss="warp"`` when none is given (LightFM's default).
DEFAULT_MAX_SAMPLED = 10


def memory_bytes(spec, *, n_users, n_items, nnz, itemsize, backend) -> int:
    """4 n k z (tables, gradient, two Adam moments) + 3 nnz (8 + z); WARP adds a block of
    M negatives and their scores per triple of a minibatch, B M (k + 3) z. Computed in
    float32 (the feature embeddings are counted with the rows they serve)."""
    base = 4 * (n_users + n_items) * spec.rank * 4 + 3 * nnz * 12
    if spec.loss == "warp":
        m = spec.max_sampled or DEFAULT_MAX_SAMPLED
        base += min(spec.batch_size, nnz) * m * (spec.rank + 3) * 4
    return base


def legacy_spec(config: dict, solver: str) -> dict:
    return legacy_fields(config, BPR)
