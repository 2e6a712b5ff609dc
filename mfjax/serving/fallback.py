"""One fallback for users (and items) without training interactions.

A user is **cold** when the model has no training interaction for it: either
its ID is unknown, or it is in the ID table (splits keep the full user table)
but has no row in the model's seen index. Both get the same treatment:

- **implicit models** (iALS, BPR): the most popular training items (most
  training interactions; ties: the item first in ``item_ids``), with score 0 in
  :meth:`mfjax.Model.recommend`;
- **explicit models**: ``μ + b_i`` (p_u = 0, b_u = 0), the best items by item
  bias; :meth:`mfjax.Model.predict` gives ``μ + b_i`` for a cold user and
  ``μ + b_u`` for a cold item.

:meth:`mfjax.Model.predict`, :meth:`~mfjax.Model.recommend`,
:func:`mfjax.evaluate_ranking` and :func:`mfjax.evaluate_fold_in` all use it,
so evaluation scores exactly the lists ``recommend`` serves. Models without a
seen index (not made by ``fit``) only know unknown IDs as cold; their implicit
fallback is not available (popularity needs the training interactions) and
they rank cold users by ``μ + b_i``.

A model whose record has ``feature_ids`` (:class:`mfjax.models.ModelRecord`) holds
a row for each ID of its features (the feature-only ones from their features): a row
that has features in ``model.features`` is not cold, so it is served by its own row.
"""

from __future__ import annotations

import numpy as np


__all__ = ["cold_users", "cold_items", "fallback_indices", "popularity", "ranking_fallback"]


def _counts(indices, n) -> np.ndarray:
    return np.bincount(np.asarray(indices, np.int64), minlength=n)


def cold_users(model, users) -> np.ndarray:
    """bool [b]: the user index is -1 (unknown) or the user has no training interaction."""
    users = np.asarray(users, np.int64)
    cold = users < 0
    if model.seen_indptr is not None:
        rows = np.asarray(model.seen_indptr, np.int64)
        count = np.diff(rows)[np.maximum(users, 0)]
        cold |= (count == 0) & ~_feature_rows(model, "users", users)
    return cold


def cold_items(model, items) -> np.ndarray:
    """bool [b]: the item index is -1 (unknown) or the item has no training interaction."""
    items = np.asarray(items, np.int64)
    cold = items < 0
    if model.seen_items is not None:
        cold |= ((_counts(model.seen_items, model.n_items)[np.maximum(items, 0)] == 0)
                 & ~_feature_rows(model, "items", items))
    return cold


def _feature_rows(model, side: str, rows) -> np.ndarray:
    """bool [b]: the rows (≥ 0) whose IDs have features, for a model that serves
    feature-only IDs by their rows (record ``feature_ids``); all False otherwise."""
    rows = np.asarray(rows, np.int64)
    table = None if model.features is None else model.features.table(side)
    if table is None or not model.record.feature_ids:
        return np.zeros(rows.shape, bool)
    ids = model.user_ids if side == "users" else model.item_ids
    return (rows >= 0) & (table.positions(ids[np.maximum(rows, 0)]) >= 0)


def fallback_indices(model, users, items) -> tuple[np.ndarray, np.ndarray]:
    """Row indices [n] with every cold user and item set to -1 (the index
    :func:`mfjax.objectives.explicit.predict_with_fallback` reads as "use the fallback")."""
    users, items = np.asarray(users), np.asarray(items)
    return (np.where(cold_users(model, users), -1, users).astype(users.dtype),
            np.where(cold_items(model, items), -1, items).astype(items.dtype))


def popularity(model) -> np.ndarray | None:
    """Training interactions per item [n_items] (float), or None without a seen index."""
    if model.seen_items is None:
        return None
    return _counts(model.seen_items, model.n_items).astype(np.float64)


def ranking_fallback(model) -> np.ndarray | None:
    """The scores a cold user ranks items by, [n_items], or None for ``μ + b_i``.

    Popularity for implicit objectives (when the model has a seen index), else None.
    """
    if not model.objective.biases:
        return popularity(model)
    return None
