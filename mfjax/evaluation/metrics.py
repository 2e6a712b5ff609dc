"""Error metrics of rating predictions (RMSE, MAE), and the ranking metrics'
import path (:mod:`mfjax.evaluation.ranking`).
"""
from __future__ import annotations

import math

import numpy as np

import jax
import jax.numpy as jnp

from ..objectives.explicit import Params, predict_with_fallback
from ..data import Ratings
from ..data.ids import model_indices
from ..serving.model import Model
from ..plumbing import check_positive_int
from ..serving.fallback import fallback_indices
from ..serving.features import feature_scores, features_for
from .ranking import evaluate_fold_in, evaluate_ranking

__all__ = ["evaluate", "error_sums", "prediction_error_sums", "evaluate_ranking", "evaluate_fold_in"]


@jax.jit
def error_sums(params: Params, users, items, ratings, lo, hi):
    """``(Σ e², Σ |e|)`` of clipped predictions, e = clip(r̂, lo, hi) − r, in chunks.

    The one RMSE/MAE kernel: :func:`evaluate` and ``fit``'s validation pass both
    use it. Index -1 marks an unknown user or item (the fallbacks of
    :func:`mfjax.objectives.explicit.predict_with_fallback`). Chunks of 2^13 ratings bound
    memory, and pad little (20,000 ratings in chunks of 2^16 computed 65,536 predictions).

    Args:
        params: a plain model.
        users, items: indices [n] (-1 = unknown).
        ratings: the observed ratings [n].
        lo, hi: the rating range predictions are clipped to.
    """
    chunk = 1 << 13
    ratings = ratings.astype(params.global_bias.dtype)  # the model's dtype (x64 or not)
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


def evaluate(model: Model, test: Ratings, *, batch_size: int = 1 << 20, features=None) -> dict:
    """RMSE and MAE of clipped predictions on held-out ratings.

    ``RMSE = sqrt(mean e²)``, ``MAE = mean |e|`` with ``e = clip(r̂, lo, hi) − r``
    and (lo, hi) the training rating range. ``test`` may share the model's ID
    space (a split of the same data) or have its own (e.g. loaded from another
    file): raw IDs are matched either way. Users/items without training
    interactions (unknown, or in the tables without rows) use the fallbacks of
    :meth:`Model.predict` and are counted.

    Args:
        model: a trained model.
        test: the held-out ratings.
        batch_size: ratings sent to the device at a time.
        features: side information to score with instead of ``model.features`` (e.g.
            with rows for test users unseen in training); only for a model that takes
            features (else ValueError naming it). A features model scores through its
            package's ``score_features`` (:mod:`mfjax.serving.features`).

    Returns:
        ``{"rmse", "mae", "n", "n_unknown_users", "n_unknown_items"}``; the unknown counts
        are the test ratings whose user (item) has no training ratings, scored by the
        fallback or, for a features model, from its features.

    Raises:
        ValueError: ``model`` is implicit (iALS, BPR: use :func:`evaluate_ranking`), or
            ``test`` is empty.
    """
    if not isinstance(model, Model):
        raise TypeError(f"evaluate: model must be an mfjax.Model, got {type(model).__name__}")
    if not isinstance(test, Ratings):
        raise TypeError(f"evaluate: test must be an mfjax.Ratings, got {type(test).__name__}")
    if model.objective.ranking:
        raise ValueError(f"evaluate: RMSE/MAE compare predicted with true ratings, but this model "
                         f"was trained on implicit feedback (objective "
                         f"{model.objective.name!r}) and scores preferences, not ratings; "
                         "use evaluate_ranking(model, train, test) for its top-k quality")
    if len(test) == 0:
        raise ValueError("evaluate: the test set is empty")
    batch_size = check_positive_int(batch_size, "evaluate: batch_size")
    u, i = fallback_indices(model, *model_indices(model, test))
    lo, hi = model.rating_range
    sq = ab = 0.0
    by_features = (features_for(model, features, "evaluate") is not None
                   and model.record.score_features is not None)
    if by_features:  # the model's own scoring of raw-ID pairs, features and all
        pred = feature_scores(model, features, test.user_ids[test.users],
                              test.item_ids[test.items], u, i, "evaluate")
        e = np.clip(pred, lo, hi) - np.asarray(test.ratings, np.float64)
        sq, ab = float(np.sum(e * e)), float(np.sum(np.abs(e)))
    for s in range(0, 0 if by_features else len(u), batch_size):
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


@jax.jit
def prediction_error_sums(predictions, ratings, lo, hi):
    """``(Σ e², Σ |e|)`` with e = clip(prediction, lo, hi) − r (as
    :func:`error_sums`, from predictions [n])."""
    e = jnp.clip(predictions, lo, hi) - ratings.astype(predictions.dtype)
    return jnp.sum(e * e), jnp.sum(jnp.abs(e))
