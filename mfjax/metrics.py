"""Ranking metrics of top-k recommendations against held-out ratings.

For each evaluated user u, let ``L_u`` be the model's top-k list (scores
``μ + b_u + b_i + <p_u, q_i>``, see :mod:`mfjax.recommend`) over the candidate
items, i.e. every item of the model except the ones u rated in ``train``, and
let ``Rel_u`` be u's relevant items: the distinct items u rated ≥ threshold in
``test``. With ``rel_j = 1`` if the j-th item of ``L_u`` (j = 1..k) is in
``Rel_u``, else 0, and ``h_u = Σ_j rel_j`` the number of hits:

    precision@k = h_u / k
    recall@k    = h_u / |Rel_u|
    hit_rate@k  = 1 if h_u > 0 else 0
    ndcg@k      = DCG / IDCG,   DCG = Σ_{j=1..k} rel_j / log2(j + 1),
                                IDCG = Σ_{j=1..min(k, |Rel_u|)} 1 / log2(j + 1)
    map@k       = AP@k = (1 / min(k, |Rel_u|)) Σ_{j=1..k} rel_j · (Σ_{l≤j} rel_l) / j

Each is averaged over the evaluated users (users with |Rel_u| ≥ 1), so every
user weighs the same. These are the usual definitions: recall divides by
|Rel_u| (not min(k, |Rel_u|), which some libraries call "normalized recall"),
precision always divides by k (even if fewer than k candidates remain), NDCG
uses binary gains, and AP@k normalizes by min(k, |Rel_u|), as in
``ml_metrics.apk`` and RecBole's MAP@k. ``coverage`` is a catalogue measure:
the share of the model's items that appear in at least one evaluated user's
top-k list.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

import jax
import jax.numpy as jnp

from .core import Params, predict_with_fallback
from .data import Ratings
from .model import Model, model_indices, same_ids
from .plumbing import check_positive_int
from .recommend import recommend_indices

__all__ = ["evaluate", "error_sums", "evaluate_ranking"]


@jax.jit
def error_sums(params: Params, users, items, ratings, lo, hi):
    """``(Σ e², Σ |e|)`` of clipped predictions, e = clip(r̂, lo, hi) − r, in chunks.

    The one RMSE/MAE kernel: :func:`evaluate` and ``fit``'s validation pass both
    use it. Index -1 marks an unknown user or item (the fallbacks of
    :func:`mfjax.core.predict_with_fallback`). Chunks of 2^16 ratings bound memory.

    Args:
        params: a plain model.
        users, items: indices [n] (-1 = unknown).
        ratings: the observed ratings [n].
        lo, hi: the rating range predictions are clipped to.
    """
    chunk = 1 << 16
    pad = (-users.shape[0]) % chunk
    valid = jnp.pad(jnp.ones(users.shape, ratings.dtype), (0, pad)).reshape(-1, chunk)
    u, i, r = (jnp.pad(x, (0, pad)).reshape(-1, chunk) for x in (users, items, ratings))

    def body(acc, x):
        uu, ii, rr, vv = x
        e = jnp.clip(predict_with_fallback(params, uu, ii), lo, hi) - rr
        return (acc[0] + jnp.sum(vv * e * e), acc[1] + jnp.sum(vv * jnp.abs(e))), None

    zero = jnp.zeros((), ratings.dtype)
    (sq, ab), _ = jax.lax.scan(body, (zero, zero), (u, i, r, valid))
    return sq, ab


def evaluate(model: Model, test: Ratings, *, batch_size: int = 1 << 20) -> dict:
    """RMSE and MAE of clipped predictions on held-out ratings.

    ``RMSE = sqrt(mean e²)``, ``MAE = mean |e|`` with ``e = clip(r̂, lo, hi) − r``
    and (lo, hi) the training rating range. ``test`` may share the model's ID
    space (a split of the same data) or have its own (e.g. loaded from another
    file): raw IDs are matched either way. Unknown users/items use the fallbacks
    of :meth:`Model.predict` and are counted.

    Args:
        model: a trained model.
        test: the held-out ratings.
        batch_size: ratings sent to the device at a time.

    Returns:
        ``{"rmse", "mae", "n", "n_unknown_users", "n_unknown_items"}``.
    """
    if not isinstance(model, Model):
        raise TypeError(f"evaluate: model must be an mfjax.Model, got {type(model).__name__}")
    if not isinstance(test, Ratings):
        raise TypeError(f"evaluate: test must be an mfjax.Ratings, got {type(test).__name__}")
    if len(test) == 0:
        raise ValueError("evaluate: the test set is empty")
    batch_size = check_positive_int(batch_size, "evaluate: batch_size")
    u, i = model_indices(model, test)
    lo, hi = model.rating_range
    sq = ab = 0.0
    for s in range(0, len(u), batch_size):
        a, b = error_sums(model.params, jnp.asarray(u[s:s + batch_size]), jnp.asarray(i[s:s + batch_size]),
                          jnp.asarray(test.ratings[s:s + batch_size], model.params.global_bias.dtype),
                          lo, hi)
        sq, ab = sq + float(a), ab + float(b)
    n = len(test)
    return {
        "rmse": math.sqrt(sq / n),
        "mae": ab / n,
        "n": int(n),
        "n_unknown_users": int(np.sum(u < 0)),
        "n_unknown_items": int(np.sum(i < 0)),
    }


def evaluate_ranking(model: Model, train: Ratings, test: Ratings, *, k: int = 10,
                     threshold: float = 4.0, batch_size: int | None = None) -> dict:
    """Precision, recall, NDCG, MAP and hit rate at k, and catalogue coverage.

    Definitions are in the module docstring. The top-k lists of all evaluated
    users are computed in batched chunks on the device
    (:func:`mfjax.recommend.recommend_indices`), excluding each user's ``train``
    items.

    ``train`` and ``test`` may share the model's ID space (splits of the data
    it was trained on) or have their own raw IDs; users and items are matched
    by raw ID. Details:

    - A test user with no test rating ≥ ``threshold`` is skipped (counted in
      ``n_skipped``).
    - A test user the model does not know is evaluated with the unknown-user
      list (best items by ``μ + b_i``), counted in ``n_unknown_users``.
    - A relevant test item the model does not know stays in |Rel_u| (it is a
      miss the model cannot avoid); ``train`` items the model does not know
      need no exclusion.
    - A user with fewer than k candidates gets a shorter list; its missing
      positions count as misses.

    Args:
        model: the trained model.
        train: the ratings whose items are excluded per user (normally the
            model's training data).
        test: held-out ratings.
        k: list length (≥ 1).
        threshold: a test rating ≥ threshold is relevant.
        batch_size: users per chunk (``None``: see
            :func:`mfjax.recommend.auto_batch_size`).

    Returns:
        ``{"precision@k", "recall@k", "ndcg@k", "map@k", "hit_rate@k",
        "coverage", "n_users", "n_skipped", "n_unknown_users"}`` with the
        actual k in the names (e.g. ``"ndcg@10"``). With no evaluable user the
        metrics are NaN and ``n_users`` is 0.

    Raises:
        TypeError: ``model`` is not a Model, or ``train``/``test`` not a :class:`~mfjax.Ratings`.
        ValueError: ``test`` is empty, or ``k``/``threshold`` is invalid.
    """
    if not isinstance(model, Model):
        raise TypeError(f"evaluate_ranking: model must be an mfjax.Model, got {type(model).__name__}")
    for name, r in (("train", train), ("test", test)):
        if not isinstance(r, Ratings):
            raise TypeError(f"evaluate_ranking: {name} must be an mfjax.Ratings, "
                            f"got {type(r).__name__}")
    if len(test) == 0:
        raise ValueError("evaluate_ranking: the test set is empty")
    k = check_positive_int(k, "evaluate_ranking: k")
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "evaluate_ranking: batch_size")
    if (not isinstance(threshold, (int, float, np.integer, np.floating))
            or isinstance(threshold, (bool, np.bool_)) or not math.isfinite(threshold)):
        raise ValueError(f"evaluate_ranking: threshold must be a finite number, got {threshold!r}")

    # Evaluated users, as test-space user indices, and their position 0..U-1.
    relevant = test.ratings >= threshold
    test_users = np.unique(test.users)
    users = np.unique(test.users[relevant])
    n_eval, n_skipped = len(users), len(test_users) - len(users)
    pos_of_test_user = np.full(test.n_users, -1, np.int64)
    pos_of_test_user[users] = np.arange(n_eval)
    names = [f"{m}@{k}" for m in ("precision", "recall", "ndcg", "map", "hit_rate")]
    if n_eval == 0:
        return {**dict.fromkeys(names, math.nan), "coverage": math.nan, "n_users": 0,
                "n_skipped": n_skipped, "n_unknown_users": 0}
    raw_users = test.user_ids[users]
    model_users = _to_model(model.index_users, model.user_ids, raw_users, users, test.user_ids)
    n_items = model.n_items

    # Relevant items: |Rel_u| over distinct test items, hits matched on model indices.
    ru, ri = pos_of_test_user[test.users[relevant]], test.items[relevant].astype(np.int64)
    n_rel = np.bincount(np.unique(ru * test.n_items + ri) // test.n_items, minlength=n_eval)
    rel_model_items = _items_to_model(model, test)[ri]
    known = rel_model_items >= 0
    rel_keys = np.unique(ru[known] * n_items + rel_model_items[known])

    # Each evaluated user's train items (model indices), as a CSR over positions.
    if same_ids(train.user_ids, test.user_ids):
        train_pos = pos_of_test_user[train.users]
    else:
        train_pos = pd.Index(raw_users).get_indexer(train.user_ids)[train.users]
    train_items = _items_to_model(model, train)[train.items]
    keep = (train_pos >= 0) & (train_items >= 0)
    tp, ti = train_pos[keep], train_items[keep]
    order = np.argsort(tp, kind="stable")
    indptr = np.zeros(n_eval + 1, np.int64)
    np.cumsum(np.bincount(tp, minlength=n_eval), out=indptr[1:])

    top, _ = recommend_indices(model.params, model_users, k, exclude=(indptr, ti[order]),
                               batch_size=batch_size)
    rows = np.arange(n_eval, dtype=np.int64)[:, None]
    hits = (top >= 0) & np.isin(rows * n_items + top, rel_keys)  # [U, k'], k' = min(k, n_items)
    hits = hits.astype(np.float64)

    h = hits.sum(axis=1)
    discount = 1.0 / np.log2(np.arange(2, k + 2))  # 1 / log2(j + 1), j = 1..k
    dcg = hits @ discount[: hits.shape[1]]
    idcg = np.cumsum(discount)[np.minimum(n_rel, k) - 1]
    precision_at_j = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    ap = (precision_at_j * hits).sum(axis=1) / np.minimum(n_rel, k)
    listed = np.unique(top[top >= 0])
    values = [h / k, h / n_rel, dcg / idcg, ap, (h > 0).astype(np.float64)]
    return {
        **{name: float(np.mean(v)) for name, v in zip(names, values)},
        "coverage": len(listed) / n_items,
        "n_users": int(n_eval),
        "n_skipped": int(n_skipped),
        "n_unknown_users": int(np.sum(model_users < 0)),
    }


def _to_model(index, model_ids, raw, local, local_ids) -> np.ndarray:
    """Model row indices (-1 where unknown) of IDs given as local indices and raw IDs."""
    if same_ids(local_ids, model_ids):
        return np.asarray(local, np.int64)
    return np.asarray(index(raw, missing="ignore"), np.int64).reshape(-1)


def _items_to_model(model: Model, r: Ratings) -> np.ndarray:
    """Model item index of each of ``r``'s item IDs [r.n_items], -1 where unknown."""
    if same_ids(r.item_ids, model.item_ids):
        return np.arange(r.n_items, dtype=np.int64)
    return np.asarray(model.index_items(r.item_ids, missing="ignore"), np.int64).reshape(-1)
