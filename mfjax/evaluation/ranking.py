"""Ranking metrics of top-k recommendations against held-out ratings.

For each evaluated user u, let ``L_u`` be the model's top-k list (scores
``μ + b_u + b_i + <p_u, q_i>``, see :mod:`mfjax.serving.recommend`) over the candidate
items, i.e. every item of the model except the ones u rated in ``train``, and
let ``Rel_u`` be u's relevant items: the distinct items u rated ≥ threshold in
``test``. With ``rel_j = 1`` if the j-th item of ``L_u`` (j = 1..k) is in
``Rel_u``, else 0, and ``h_u = Σ_j rel_j`` the number of hits:

    precision@k = h_u / k
    recall@k    = h_u / min(k, |Rel_u|)
    hit_rate@k  = 1 if h_u > 0 else 0
    ndcg@k      = DCG / IDCG,   DCG = Σ_{j=1..k} rel_j / log2(j + 1),
                                IDCG = Σ_{j=1..min(k, |Rel_u|)} 1 / log2(j + 1)
    map@k       = AP@k = (1 / min(k, |Rel_u|)) Σ_{j=1..k} rel_j · (Σ_{l≤j} rel_l) / j

Each is averaged over the evaluated users (users with |Rel_u| ≥ 1), so every
user weighs the same. ``recall@k`` has one meaning everywhere in mfjax (this
function, ``fit``'s ``val_recall@20``, the CLI, the README and the benchmarks):
it divides by min(k, |Rel_u|), as LensKit and the implicit-feedback literature
do (Liang et al. 2018, "Recall@R"; Steck's and Rendle's iALS papers), so a
perfect list scores 1 even when |Rel_u| > k. (Some libraries call h_u / |Rel_u|
recall; mfjax does not report that quantity, which a perfect list of k < |Rel_u|
items cannot push to 1.) Precision always divides by k (even if fewer than k
candidates remain), NDCG uses binary gains, and AP@k normalizes by
min(k, |Rel_u|), as in ``ml_metrics.apk`` and RecBole's MAP@k. ``coverage`` is a
catalogue measure: the share of the model's items (of the candidates, when given)
that appear in at least one evaluated user's top-k list. ``auc`` (on request) is the
ROC AUC of each user's full ranking (:mod:`mfjax.evaluation.auc`).

``candidates`` restricts every list to a set of items (cold-start tests rank within
the cold items, :func:`mfjax.split.cold_items`); Rel_u is then the relevant items
among the candidates.

Users without training interactions (unknown IDs, or IDs without rows in the
model's training data) get the lists :meth:`mfjax.Model.recommend` serves them
(:mod:`mfjax.serving.fallback`: the most popular items for iALS/BPR, ``μ + b_i``
for explicit models), so these metrics score exactly what ``recommend`` returns.
"""


from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..data import Ratings
from ..data.ids import same_ids, show
from ..plumbing import check_positive_int
from ..serving.access import hyperparameters
from ..serving.fallback import cold_users, ranking_fallback
from ..serving.model import Model
from ..serving.partial_fit import solve_rows
from ..serving.recommend import recommend_indices
from .auc import rank_auc

__all__ = ["evaluate_ranking", "evaluate_fold_in", "check_threshold"]


def evaluate_ranking(model: Model, train: Ratings, test: Ratings, *, k: int = 10,
                     threshold: float | None = 4.0, batch_size: int | None = None,
                     vectors: dict | None = None, candidates=None, auc: bool = False) -> dict:
    """Precision, recall, NDCG, MAP and hit rate at k, and catalogue coverage.

    Definitions are in the module docstring. The top-k lists of all evaluated
    users are computed in batched chunks on the device
    (:func:`mfjax.serving.recommend.recommend_indices`), excluding each user's ``train``
    items.

    ``train`` and ``test`` may share the model's ID space (splits of the data
    it was trained on) or have their own raw IDs; users and items are matched
    by raw ID. Details:

    - A test user with no test rating ≥ ``threshold`` is skipped (counted in
      ``n_skipped``).
    - A test user without training interactions (unknown to the model, or
      known without rows) is evaluated with the fallback list of
      :meth:`mfjax.Model.recommend` (module docstring), counted in
      ``n_unknown_users``.
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
        threshold: a test rating ≥ threshold is relevant; ``None``: every test
            interaction is (implicit feedback).
        batch_size: users per chunk (``None``: see
            :func:`mfjax.serving.rows.auto_batch_size`).
        vectors: ``{"user_factors": [U, k], "user_bias": [U]}`` for the evaluated
            users in the order of their test-space indices (as
            :func:`evaluate_fold_in` passes them), instead of the model's rows,
            optionally with ``"cold"`` [U] (bool): users that take the fallback.
        candidates: raw item IDs to rank within (each known to the model, distinct),
            or None for every item.
        auc: also compute ``"auc"`` (a full ranking of the candidates per user).

    Returns:
        ``{"precision@k", "recall@k", "ndcg@k", "map@k", "hit_rate@k",
        "coverage", "n_users", "n_skipped", "n_unknown_users"}`` (and ``"auc"``) with the
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
    check_threshold(threshold, "evaluate_ranking")
    if threshold is not None and threshold == -math.inf:
        threshold = None
    if not isinstance(auc, (bool, np.bool_)):
        raise ValueError(f"evaluate_ranking: auc must be True or False, got {auc!r}")
    cand = None if candidates is None else _candidates(model, candidates)

    # Evaluated users, as test-space user indices, and their position 0..U-1.
    relevant = np.ones(len(test), bool) if threshold is None else test.ratings >= threshold
    if cand is not None:  # relevance within the candidates only
        relevant &= np.isin(_items_to_model(model, test)[test.items], cand)
    test_users = np.unique(test.users)
    users = np.unique(test.users[relevant])
    n_eval, n_skipped = len(users), len(test_users) - len(users)
    pos_of_test_user = np.full(test.n_users, -1, np.int64)
    pos_of_test_user[users] = np.arange(n_eval)
    names = [f"{m}@{k}" for m in ("precision", "recall", "ndcg", "map", "hit_rate")]
    if auc:
        names.append("auc")
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

    vectors = dict(vectors or {})
    cold = vectors.pop("cold", None)
    if cold is None:
        cold = cold_users(model, model_users) if not vectors else np.zeros(n_eval, bool)
    def ranked(n, rows=slice(None)):
        sub = {name: v[rows] for name, v in vectors.items()}
        lo, hi = rows.start or 0, rows.stop if rows.stop is not None else n_eval
        exclude = (indptr[lo:hi + 1] - indptr[lo], ti[order][indptr[lo]:indptr[hi]])
        return recommend_indices(model.params, model_users[rows], n, exclude=exclude,
                                 batch_size=batch_size, cold=cold[rows], candidates=cand,
                                 fallback=ranking_fallback(model), **sub)[0]

    top = ranked(k)
    rows = np.arange(n_eval, dtype=np.int64)[:, None]
    hits = (top >= 0) & np.isin(rows * n_items + top, rel_keys)  # [U, k'], k' = min(k, n_items)
    hits = hits.astype(np.float64)

    h = hits.sum(axis=1)
    # 1 / log2(j + 1) for j = 1..depth: as deep as a list or an IDCG reaches, not k
    # (k = 10**9 on a 25-item catalogue must not allocate 10**9 floats).
    depth = min(k, max(hits.shape[1], int(n_rel.max())))
    discount = 1.0 / np.log2(np.arange(2, depth + 2))
    dcg = hits @ discount[: hits.shape[1]]
    idcg = np.cumsum(discount)[np.minimum(n_rel, k) - 1]
    precision_at_j = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    ap = (precision_at_j * hits).sum(axis=1) / np.minimum(n_rel, k)
    listed = np.unique(top[top >= 0])
    values = [h / k, h / np.minimum(n_rel, k), dcg / idcg, ap, (h > 0).astype(np.float64)]
    result = {name: float(np.mean(v)) for name, v in zip(names, values)}
    if auc:
        m = n_items if cand is None else len(cand)
        result["auc"] = rank_auc(lambda s, e: ranked(m, slice(s, e)), n_eval, m, rel_keys,
                                 n_items)
    return {
        **result,
        "coverage": len(listed) / (n_items if cand is None else len(cand)),
        "n_users": int(n_eval),
        "n_skipped": int(n_skipped),
        "n_unknown_users": int(np.sum(cold)),
    }


def _candidates(model: Model, raw) -> np.ndarray:
    """Model item indices of the raw candidate IDs; every one known, no repeats."""
    raw = np.asarray(raw, dtype=object) if isinstance(raw, str) else np.asarray(raw)
    if raw.ndim != 1 or raw.size == 0:
        raise ValueError(f"evaluate_ranking: candidates must be a non-empty 1-D list of item "
                         f"IDs, got shape {raw.shape}")
    idx = np.asarray(model.index_items(raw, missing="ignore"), np.int64).reshape(-1)
    if (idx < 0).any():
        raise KeyError(f"evaluate_ranking: candidate item {show(raw[np.argmax(idx < 0)])!r} is not "
                       "known to the model")
    if len(np.unique(idx)) != len(idx):
        raise ValueError("evaluate_ranking: candidates repeat an item ID")
    return idx


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


def check_threshold(threshold, where):
    if threshold is None:
        return
    if (not isinstance(threshold, (int, float, np.integer, np.floating))
            or isinstance(threshold, (bool, np.bool_)) or math.isnan(threshold)
            or threshold == math.inf):
        raise ValueError(f"{where}: threshold must be a finite number or None, got {threshold!r}")


def evaluate_fold_in(model: Model, fold_in: Ratings, test: Ratings, *, k: int = 10,
                     threshold: float | None = None, batch_size: int | None = None) -> dict:
    """Ranking metrics for users the model never saw (strong generalization).

    The users of ``test`` are folded in from their interactions in ``fold_in``,
    all in one batched solve (:meth:`mfjax.Model.partial_fit_users`' solve: the
    iALS row solve, BPR Newton steps, the explicit ridge solve or Bayesian MF's
    per-sample posterior means, by the model's record; items the model does not know
    are dropped), their top-k list ranks every model item except their fold-in
    items, and the metrics are those of :func:`evaluate_ranking` (same names,
    same definitions), against their ``test`` interactions. Made for
    :func:`mfjax.split.users`' ``(train, fold_in, test)``.

    Args:
        model: the trained model.
        fold_in: the given interactions of the evaluated users (raw IDs as in ``test``).
        test: their held-out interactions.
        k, threshold, batch_size: as in :func:`evaluate_ranking` (``threshold``
            None: every test interaction is relevant).

    Returns:
        As :func:`evaluate_ranking`; ``n_unknown_users`` counts evaluated users
        with no fold-in interaction on an item the model knows: they get the
        fallback list (:mod:`mfjax.serving.fallback`).
    """
    for name, r in (("fold_in", fold_in), ("test", test)):
        if not isinstance(r, Ratings):
            raise TypeError(f"evaluate_fold_in: {name} must be an mfjax.Ratings, "
                            f"got {type(r).__name__}")
    if len(test) == 0:
        raise ValueError("evaluate_fold_in: the test set is empty")
    check_threshold(threshold, "evaluate_fold_in")
    relevant = np.ones(len(test), bool) if threshold is None else test.ratings >= threshold
    users = np.unique(test.users[relevant])  # the evaluated users, in evaluate_ranking's order
    raw_users = test.user_ids[users]
    # Every evaluated user's fold-in rows, solved in one batched call.
    pos = pd.Index(raw_users).get_indexer(fold_in.user_ids)[fold_in.users]
    cols = _items_to_model(model, fold_in)[fold_in.items]
    keep = (pos >= 0) & (cols >= 0)
    n_eval = len(users)
    dtype = model.params.item_factors.dtype
    factors = np.zeros((n_eval, model.params.rank), dtype)
    bias = np.zeros(n_eval, dtype)
    if keep.any():
        factors, bias, _ = solve_rows(model, hyperparameters(model), "users", pos[keep],
                                      cols[keep], fold_in.ratings[keep], n_eval)
    cold = np.bincount(pos[keep], minlength=n_eval) == 0
    vectors = {"user_factors": jnp.asarray(factors, dtype), "user_bias": jnp.asarray(bias, dtype),
               "cold": cold}
    out = evaluate_ranking(model, fold_in, test, k=k, threshold=threshold,
                           batch_size=batch_size, vectors=vectors)
    out["n_unknown_users"] = int(np.sum(cold))
    return out
