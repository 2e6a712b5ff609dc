""":class:`~mfjax.FM` as the shared layers see it (:class:`mfjax.models.ModelRecord`).

A factorization machine over relation blocks (:mod:`mfjax.models.fm.objective`)
trained by Optax minibatches (:mod:`mfjax.models.fm.solver`). The model holds the
composed tables (P, Q, c_u, c_i, μ) as a biased-MF :class:`mfjax.Params`, so scoring,
recommend, persistence, fold-in and partial fits are the shared ones of biased MF
(fold-in solves the ridge row at the spec's λ, λ_b against the fixed composed other
side, from ratings). IDs known only from features are rows at ``fit`` (the record's
``feature_ids``); later ones are scored from their features
(:mod:`mfjax.models.fm.serving`).
"""
from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from ...objectives import explicit
from ...objectives.explicit import Params
from ...solvers.rows import ridge_hyperparameters, ridge_row_solve
from .objective import OBJECTIVE, FMParams
from .serving import feature_rows, score_features
from .spec import FM

__all__ = ["SPEC", "OBJECTIVE", "PARAMS", "make_solver", "resolve", "memory_bytes", "row_solve",
           "row_hyperparameters", "score", "score_features", "feature_rows", "gradient_point",
           "gradient_hyperparameters", "auto_batch_size", "MEMORY_HINT"]

SPEC = FM
PARAMS = Params
MEMORY_HINT = "rank or implicit_features"
score = explicit.predict
row_hyperparameters = ridge_hyperparameters
row_solve = ridge_row_solve


def make_solver(spec):
    from .solver import FMSolver

    return FMSolver()


def auto_batch_size(n_ratings: int) -> int:
    """About 1/20 of the data, at least 1024 and at most 2^18 ratings, a power of two
    (each step also composes both sides' rows, O(nnz(X) k), so steps stay large)."""
    target = max(1024, min(n_ratings // 20, 1 << 18))
    return min(1 << int(round(math.log2(target))), max(n_ratings, 1))


def resolve(spec: FM, train, run) -> FM:
    """``batch_size``: :func:`auto_batch_size`; ``learning_rate``: the optimizer's default.

    Raises:
        ValueError: row-sharded tables on a mesh (FM replicates them).
    """
    from ...solvers.minibatch.optimizers import OPTIMIZERS

    if run.mesh is not None and run.table_sharding == "sharded":
        raise ValueError("fit: FM replicates its tables on a mesh (the minibatches are split "
                         "over 'data'); use table_sharding='replicated'")
    batch = int(min(spec.batch_size or auto_batch_size(len(train)), max(len(train), 1)))
    lr = spec.learning_rate
    if lr is None and isinstance(spec.optimizer, str) and spec.schedule is None:
        lr = OPTIMIZERS[spec.optimizer][1]
    return dataclasses.replace(spec, batch_size=batch, learning_rate=lr)


def memory_bytes(spec, *, n_users, n_items, nnz, itemsize, backend) -> int:
    """Peak bytes: θ with its gradient and two Adam moments (4 copies of n (k + 1), n the
    users and items, plus the implicit blocks' D = n rows when ``implicit_features``),
    the composed tables and their gradients (2 n (k + 1)), the implicit blocks' COO
    (3 nnz per side), the ratings (3 nnz) and a minibatch's gathers (4 B k). The
    attribute blocks are not counted (their size is not known here; a few per row)."""
    n, k = n_users + n_items, spec.rank + 1
    d = n if spec.implicit_features else 0
    batch = min(spec.batch_size or auto_batch_size(nnz), max(nnz, 1))
    blocks = 2 * 3 * nnz if spec.implicit_features else 0
    return itemsize * (4 * (n + d) * k + 2 * n * k + blocks + 3 * nnz + 4 * batch * k)


def gradient_point(key, n_users: int, n_items: int, spec: FM, dtype) -> FMParams:
    """A random θ for :func:`mfjax.verify_gradients`, with feature tables shaped for the
    implicit-feedback blocks it checks (D_U = n_items, D_I = n_users); every entry,
    biases and weights included, drawn N(0, 0.3²) so no term of the gradient is 0."""
    shapes = [(n_users, spec.rank), (n_items, spec.rank), (n_users,), (n_items,), (),
              (n_items, spec.rank), (n_users, spec.rank), (n_items,), (n_users,)]
    keys = jax.random.split(key, len(shapes))
    return FMParams(*(0.3 * jax.random.normal(k, s, dtype) for k, s in zip(keys, shapes)))


def gradient_hyperparameters(spec: FM) -> dict:
    """λ and λ_b of the loss :func:`mfjax.verify_gradients` checks."""
    return {"reg": spec.reg, "bias_reg": spec.bias_reg}
