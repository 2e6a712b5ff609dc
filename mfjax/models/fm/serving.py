"""Serving FM with features: rows for IDs that arrive after ``fit``, known only from features.

At ``fit`` every ID of ``F`` is a row (the record's ``feature_ids``), and a row with
features but no training ratings is its features alone (identity mask 0,
:mod:`mfjax.models.fm.objective`): P_u = Σ_f x_uf V_f, c_u = Σ_f x_uf w_f. The model
keeps the composed tables, not (V, w), so an ID that arrives later gets the map the
tables imply, by least squares over the rows that are their features alone

    [V, w] = argmin Σ_{r ∈ s} ‖[P_r, c_r] − [V, w]ᵀ g_r‖²     (minimum norm, float64)

g_r the row's attribute features (the implicit block of such a row is empty). Exact
whenever the new rows' features lie in the span of those rows' features. A model with no
such row (every ID with features had ratings) regresses on every row with features
instead: the map of the trained rows, an approximation.
"""
from __future__ import annotations

import numpy as np

from ...solvers.feature_scores import side_rows

__all__ = ["feature_map", "feature_vectors", "feature_rows", "score_features"]


def _active(model, side: str, n: int) -> np.ndarray:
    """Rows of ``side`` with training ratings [n] bool (the model's seen index)."""
    indptr, seen = np.asarray(model.seen_indptr, np.int64), np.asarray(model.seen_items)
    if side == "users":
        return np.concatenate([np.diff(indptr) > 0, np.zeros(n - (len(indptr) - 1), bool)])
    return np.bincount(seen, minlength=n)[:n] > 0


def feature_map(model, side: str) -> np.ndarray | None:
    """[V, w] [d, k + 1] of ``side`` (module docstring), or None without a feature table."""
    table = None if model.features is None else model.features.table(side)
    if table is None or not table.n_columns:
        return None
    users = side == "users"
    ids = model.user_ids if users else model.item_ids
    p = model.params
    V = np.asarray(p.user_factors if users else p.item_factors, np.float64)
    b = np.asarray(p.user_bias if users else p.item_bias, np.float64)
    G = np.asarray(table.dense(ids), np.float64)
    known = np.asarray(table.rows_for(ids)[3], bool)
    rows = known & ~_active(model, side, len(ids)) if model.seen_indptr is not None else known
    if not rows.any():
        rows = known
    if not rows.any():
        return None
    return np.linalg.lstsq(G[rows], np.concatenate([V, b[:, None]], axis=1)[rows], rcond=None)[0]


def feature_vectors(model, features, side: str, raw_ids):
    """``(vectors [n, k], biases [n], known [n])`` float64 of raw IDs from ``features``'
    table of ``side`` (0, 0, False for an ID without a row there).

    Raises:
        ValueError: the table's columns are not the training features' columns.
    """
    k = int(np.asarray(model.params.user_factors).shape[1])
    n = len(raw_ids)
    W = feature_map(model, side)
    table = None if features is None else features.table(side)
    if W is None or table is None:
        return np.zeros((n, k)), np.zeros(n), np.zeros(n, bool)
    trained = model.features.table(side)
    if tuple(table.column_names) != tuple(trained.column_names):
        raise ValueError(f"FM: the {side[:-1]} features have columns "
                         f"{list(table.column_names)[:5]}..., the model was trained on "
                         f"{list(trained.column_names)[:5]}... ({trained.n_columns} columns); "
                         "encode new rows with the training columns")
    raw_ids = np.asarray(raw_ids, object)
    out = np.asarray(table.dense(raw_ids), np.float64) @ W
    return out[:, :k], out[:, k], np.asarray(table.rows_for(raw_ids)[3], bool)


def feature_rows(model, features, side: str, raw_ids):
    """``(vectors [n, k], biases [n])`` of new IDs from their features (``partial_fit``)."""
    v, b, _ = feature_vectors(model, features, side, raw_ids)
    return v, b


def score_features(model, features, raw_users, raw_items, users, items) -> np.ndarray:
    """Scores [n] of raw-ID pairs, μ + c_u + c_i + ⟨P_u, Q_i⟩: a row's own vector and
    bias when the model has it (``users``/``items`` ≥ 0), else its features'
    (:func:`feature_vectors`), else the ID fallback's zero vector and bias."""
    p = model.params
    of = lambda side: lambda raw: feature_vectors(model, features, side, raw)
    P, bu = side_rows(p.user_factors, p.user_bias, users, raw_users, of("users"))
    Q, bi = side_rows(p.item_factors, p.item_bias, items, raw_items, of("items"))
    return float(np.asarray(p.global_bias)) + bu + bi + np.sum(P * Q, axis=1)
