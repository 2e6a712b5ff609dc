"""Serving feature-aware iALS: vectors of IDs known only from their features.

A model trained with ``fit(train, ImplicitALS(...), features=F)`` holds a row for every
ID of ``F`` (the feature-only ones were appended at fit and got their prior mean,
:mod:`mfjax.models.implicit_als.priors`). An ID that arrives later with features (a new film,
a new user with a profile) gets the same treatment here, ``x_u = A f_u`` /
``y_i = B g_i``, with the maps the model's own tables imply:

    Wᵀ = (F_sᵀ F_s + λ_A I)⁻¹ F_sᵀ X_s,   s = the rows with interactions and features,

(:func:`mfjax.models.implicit_als.priors.ridge_map` on ``model.features``; the same maps as
the fit's last sweep, up to the CG finalisation's user re-solve). New feature rows must
have the columns of the training features (same names, same order).
"""
from __future__ import annotations

import numpy as np

from .priors import feature_matrix, maps_of

__all__ = ["feature_map", "feature_vectors", "score_features"]

_SIDES = ("users", "items")


def _active(model, side: str) -> np.ndarray:
    """Rows of ``side`` with training interactions [n] (from the model's seen index)."""
    indptr, seen = np.asarray(model.seen_indptr), np.asarray(model.seen_items)
    if side == "users":
        return np.diff(indptr) > 0
    return np.bincount(seen, minlength=len(model.item_ids))[: len(model.item_ids)] > 0


def feature_map(model, side: str) -> np.ndarray | None:
    """The map W [d + 1, k] (features and intercept) of ``side`` of a features model, or
    None when it was trained without features on that side."""
    table = None if model.features is None else model.features.table(side)
    if table is None:
        return None
    ids = model.user_ids if side == "users" else model.item_ids
    X = np.asarray(model.params.user_factors if side == "users" else model.params.item_factors,
                   np.float64)
    F, known = feature_matrix(table, ids)
    return maps_of(X, F, known, _active(model, side), float(model.config.get("feature_reg", 1.0)))


def feature_vectors(model, features, side: str, raw_ids) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors [n, k] float64, known [n])``: ``Wᵀ f`` for the raw IDs that have a row
    in ``features``' table of ``side`` (0 and False for the others).

    Raises:
        ValueError: the table's columns are not the training features' columns.
    """
    k = int(np.asarray(model.params.user_factors).shape[1])
    raw_ids = np.asarray(raw_ids)
    W = feature_map(model, side)
    table = None if features is None else features.table(side)
    if W is None or table is None:
        return np.zeros((len(raw_ids), k)), np.zeros(len(raw_ids), bool)
    trained = model.features.table(side)
    if tuple(table.column_names) != tuple(trained.column_names):
        raise ValueError(f"ImplicitALS: the {side[:-1]} features have columns "
                         f"{list(table.column_names)[:5]}..., the model was trained on "
                         f"{list(trained.column_names)[:5]}... ({trained.n_columns} columns); "
                         "encode new rows with the training columns")
    F, known = feature_matrix(table, raw_ids)
    return F @ W, known


def score_features(model, features, raw_users, raw_items, users, items) -> np.ndarray:
    """Scores [n] of raw-ID pairs: ``<x_u, y_i>`` with a row's own vector when the model
    has it (``users``/``items`` ≥ 0), else its feature vector (:func:`feature_vectors`),
    else 0 (no rows, no features: iALS's fallback score)."""
    vecs = []
    for side, raw, rows in (("users", raw_users, users), ("items", raw_items, items)):
        table = np.asarray(model.params.user_factors if side == "users"
                           else model.params.item_factors, np.float64)
        rows = np.asarray(rows, np.int64)
        out = np.where((rows >= 0)[:, None], table[np.clip(rows, 0, None)], 0.0)
        cold = rows < 0
        if cold.any():
            v, known = feature_vectors(model, features, side, np.asarray(raw, object)[cold])
            out[np.flatnonzero(cold)[known]] = v[known]
        vecs.append(out)
    return np.sum(vecs[0] * vecs[1], axis=1)
