"""Serving BPR trained with features: vectors of IDs that arrive later, known only from features.

At ``fit`` every ID of ``F`` is a row (the record's ``feature_ids``), and a row known only
from features holds exactly its feature sum ``v = Gᵀ E``, ``b = Gᵀ β``
(:mod:`mfjax.models.bpr.hybrid`). An ID that arrives later with features (a new film)
gets the same sum with the embeddings the model's own tables imply: the model keeps
the composed tables, not E, so E is recovered by least squares

    [E, β] = argmin Σ_{r ∈ s} ‖[v_r, b_r] − [E, β]ᵀ g_r‖²    (minimum norm, float64)

over the rows s whose vectors are their features alone (mask m_r = 0: features and no
identity embedding; :func:`pure_rows`). Exact (``G_new E`` as at fit) whenever the new
rows' features lie in the span of those rows' features, as in the features-only
variant and for a fit that held feature-only items. A model whose rows all kept identity
embeddings (no row is features alone) regresses on every row with features instead,
the map of the warm vectors as feature-aware iALS uses (an approximation).
"""
from __future__ import annotations

import numpy as np

from ...solvers.feature_scores import side_rows

__all__ = ["least_squares_map", "pure_rows", "feature_map", "feature_vectors", "feature_rows", "score_features"]


def least_squares_map(G: np.ndarray, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """W [d, m] = argmin_W Σ_{r ∈ rows} ‖x_r − Wᵀ g_r‖², of minimum norm (``lstsq``), in
    float64; G [n, d], X [n, m], rows bool [n]. Zeros when no row is selected."""
    if not rows.any():
        return np.zeros((G.shape[1], X.shape[1]))
    return np.linalg.lstsq(G[rows], np.asarray(X, np.float64)[rows], rcond=None)[0]


def _active(model, side: str) -> np.ndarray:
    """Rows of ``side`` with training interactions [n] (the model's seen index)."""
    indptr, seen = np.asarray(model.seen_indptr), np.asarray(model.seen_items)
    n = len(model.user_ids if side == "users" else model.item_ids)
    if side == "users":
        return np.concatenate([np.diff(indptr) > 0, np.zeros(n - (len(indptr) - 1), bool)])
    return np.bincount(seen, minlength=n)[:n] > 0


def _matrix(table, raw_ids) -> tuple[np.ndarray, np.ndarray]:
    """(G [n, d] float64, known [n]) of ``raw_ids`` in ``table``."""
    _, _, _, known = table.rows_for(raw_ids)
    return np.asarray(table.dense(raw_ids), np.float64), np.asarray(known, bool)


def pure_rows(model, side: str, known: np.ndarray) -> np.ndarray:
    """The rows [n] bool whose vectors are their features alone (m_r = 0)."""
    return known & ~(bool(model.spec.identity_features) & _active(model, side))


def feature_map(model, side: str) -> np.ndarray | None:
    """[E, β] [d, k + 1] of ``side`` (module docstring), or None without a feature table."""
    table = None if model.features is None else model.features.table(side)
    if table is None:
        return None
    users = side == "users"
    ids = model.user_ids if users else model.item_ids
    p = model.params
    V = np.asarray(p.user_factors if users else p.item_factors, np.float64)
    b = np.zeros(len(V)) if users else np.asarray(p.item_bias, np.float64)
    G, known = _matrix(table, ids)
    rows = pure_rows(model, side, known)
    if not rows.any():
        rows = known
    return least_squares_map(G, np.concatenate([V, b[:, None]], axis=1), rows)


def feature_vectors(model, features, side: str, raw_ids):
    """``(vectors [n, k], biases [n], known [n])`` float64 of raw IDs from ``features``'
    table of ``side`` (0, 0, False for an ID without a row there).

    Raises:
        ValueError: the table's columns are not the training features' columns.
    """
    k = int(np.asarray(model.params.user_factors).shape[1])
    raw_ids = np.asarray(raw_ids)
    W = feature_map(model, side)
    table = None if features is None else features.table(side)
    n = len(raw_ids)
    if W is None or table is None:
        return np.zeros((n, k)), np.zeros(n), np.zeros(n, bool)
    trained = model.features.table(side)
    if tuple(table.column_names) != tuple(trained.column_names):
        raise ValueError(f"BPR: the {side[:-1]} features have columns "
                         f"{list(table.column_names)[:5]}..., the model was trained on "
                         f"{list(trained.column_names)[:5]}... ({trained.n_columns} columns); "
                         "encode new rows with the training columns")
    G, known = _matrix(table, raw_ids)
    out = G @ W
    return out[:, :k], out[:, k] if side == "items" else np.zeros(n), known


def feature_rows(model, features, side: str, raw_ids):
    """``(vectors [n, k], biases [n])`` of new IDs from their features (``partial_fit``)."""
    v, b, _ = feature_vectors(model, features, side, raw_ids)
    return v, b


def score_features(model, features, raw_users, raw_items, users, items) -> np.ndarray:
    """Scores [n] of raw-ID pairs, ``b_i + <v_u, v_i>``: a row's own vector and bias when
    the model has it (``users``/``items`` ≥ 0), else its features' (:func:`feature_vectors`),
    else 0 (no row, no features)."""
    p = model.params
    of = lambda side: lambda raw: feature_vectors(model, features, side, raw)
    pu, _ = side_rows(p.user_factors, np.zeros(p.user_factors.shape[0]), users, raw_users,
                      of("users"))
    qi, bi = side_rows(p.item_factors, p.item_bias, items, raw_items, of("items"))
    return np.sum(pu * qi, axis=1) + bi
