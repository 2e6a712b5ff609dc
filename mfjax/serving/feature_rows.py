"""Adding IDs known only from features to a model: ``partial_fit_items(features=F)``.

For a model whose record has ``feature_ids`` (:class:`mfjax.models.ModelRecord`), the
IDs of ``F``'s table of one side that the model lacks, and that have no interactions in
the call's ``ratings``, are appended to its ID table with the vectors its package's
``feature_rows(model, features, side, raw_ids) -> [n, k]`` gives them (iALS: the prior
mean ``B g_i`` / ``A f_u`` of :mod:`mfjax.models.implicit_als.features`), bias 0 (or
the biases [n] when the hook returns ``(vectors, biases)``) and no seen interactions.
A model with per-sample arrays (``Model.posterior``, Gibbs) needs the hook to return
``(vectors, biases, sample_biases [S, n])``: the new rows' per-sample biases are put
in the posterior's ``user_bias`` / ``item_bias`` [S, n_rows]. IDs the model has as
rows without training interactions and without features (an ID table entry with no
ratings, e.g. a user a split held out) and that ``F`` has get their rows set the same
way, in place, instead of staying on the fallback;
``model.features`` becomes ``model.features.merged(F)`` (an ID in both takes ``F``'s
row), so the rows are served, saved and loaded like any other.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from .. import models
from ..data.features import Features

__all__ = ["add_feature_rows"]


def add_feature_rows(model, features, side: str, ratings, where: str):
    """The model with ``features``' new IDs of ``side`` appended (module docstring).

    Args:
        model: a trained :class:`mfjax.Model`.
        features: an :class:`mfjax.Features` with a table for ``side``.
        side: ``"users"`` or ``"items"``.
        ratings: the call's :class:`mfjax.Ratings` or None; its IDs of ``side`` are
            left to the row solve.
        where: the caller, for messages.

    Raises:
        TypeError: ``features`` is not a Features.
        ValueError: the model does not serve feature-only IDs, or ``features`` has no
            table for ``side``.
    """
    models.check_features(model.record, features, where)
    hook = getattr(model.record.parts, "feature_rows", None)
    if not model.record.feature_ids or hook is None:
        raise ValueError(f"{where}: {model.record.name} models do not serve IDs known only "
                         "from features; pass ratings instead")
    table = features.table(side)
    if table is None:
        raise ValueError(f"{where}: features has no {side[:-1]} table (pass "
                         f"Features.from_frames({side}=...))")
    old = np.asarray(model.user_ids if side == "users" else model.item_ids)
    taken = set(old.tolist())
    rated = set()
    if ratings is not None:
        own = ratings.user_ids[ratings.users] if side == "users" else ratings.item_ids[ratings.items]
        rated = set(np.asarray(own).tolist())
        taken |= rated
    new = np.asarray([x for x in table.ids.tolist() if x not in taken], dtype=table.ids.dtype)
    merged = features if model.features is None else model.features.merged(features)
    model = _idle_rows_set(model, features, side, rated, hook, where)
    if new.size == 0:
        return dataclasses.replace(model, features=merged)
    out = hook(model, features, side, new)
    out = out if isinstance(out, tuple) else (out, np.zeros(len(new)))
    vectors, biases = out[:2]
    sample_biases = out[2] if len(out) > 2 else None
    return _appended(model, side, new, np.asarray(vectors), merged, where, np.asarray(biases),
                     sample_biases)


def _idle_rows_set(model, features, side: str, rated: set, hook, where: str):
    """The model with its rows that have no training interactions and no features (an
    ID table entry without ratings, e.g. a held-out user) set from ``features`` where
    it has them and ``rated`` (the call's own IDs, left to the row solve) lacks them."""
    from .fallback import cold_items, cold_users

    users = side == "users"
    ids = np.asarray(model.user_ids if users else model.item_ids)
    idle = (cold_users if users else cold_items)(model, np.arange(len(ids)))
    idle &= features.table(side).positions(ids) >= 0
    idle &= ~np.isin(ids, np.asarray(list(rated), dtype=ids.dtype)) if rated else True
    at = np.flatnonzero(idle)
    if at.size == 0:
        return model
    out = hook(model, features, side, ids[at])
    out = out if isinstance(out, tuple) else (out, np.zeros(len(at)))
    p = model.params
    f, b = ("user_factors", "user_bias") if users else ("item_factors", "item_bias")
    vec = jnp.asarray(getattr(p, f)).at[at].set(jnp.asarray(out[0], getattr(p, f).dtype))
    bias = jnp.asarray(getattr(p, b)).at[at].set(jnp.asarray(out[1], getattr(p, b).dtype))
    posterior = model.posterior
    if posterior is not None:
        if len(out) < 3:
            raise ValueError(f"{where}: a model with posterior samples needs per-sample biases "
                             "for its feature rows")
        sb = np.asarray(posterior[b]).copy()
        sb[:, at] = np.asarray(out[2], sb.dtype)
        posterior = {**posterior, b: sb}
    return dataclasses.replace(model, params=p._replace(**{f: vec, b: bias}), posterior=posterior)


def _grown_posterior(posterior, side: str, sample_biases, n_new: int, where: str):
    """``posterior`` with the new rows' per-sample biases [S, n_new] appended to its
    ``user_bias`` / ``item_bias`` [S, n_rows] (None stays None)."""
    if posterior is None:
        return None
    key = "user_bias" if side == "users" else "item_bias"
    old = np.asarray(posterior[key])
    sb = None if sample_biases is None else np.asarray(sample_biases, old.dtype)
    if sb is None or sb.shape != (old.shape[0], n_new):
        raise ValueError(f"{where}: a model with posterior samples needs per-sample biases "
                         f"[{old.shape[0]}, {n_new}] for its feature rows")
    return {**posterior, key: np.concatenate([old, sb], axis=1)}


def _appended(model, side, new, vectors, merged: Features, where, biases, sample_biases=None):
    """The model with rows ``vectors`` [n, k] and biases [n] appended for the raw IDs ``new`` [n]."""
    users = side == "users"
    old = np.asarray(model.user_ids if users else model.item_ids)
    if (old.dtype.kind in "iu") != (new.dtype.kind in "iu"):
        raise TypeError(f"{where}: the model's {side[:-1]} IDs are "
                        f"{'integers' if old.dtype.kind in 'iu' else 'not integers'}; the "
                        f"features' are {new.dtype}")
    dtype = old.dtype if old.dtype.kind in "iu" else object
    ids = np.concatenate([old.astype(dtype), new.astype(dtype)])
    p = model.params
    f, b = (p.user_factors, p.user_bias) if users else (p.item_factors, p.item_bias)
    f = jnp.asarray(np.concatenate([np.asarray(f), vectors.astype(np.asarray(f).dtype)]))
    b = jnp.asarray(np.concatenate([np.asarray(b), biases.astype(np.asarray(b).dtype)]))
    params = p._replace(user_factors=f, user_bias=b) if users else \
        p._replace(item_factors=f, item_bias=b)
    changes = {"user_ids" if users else "item_ids": ids, "params": params, "features": merged}
    if users and model.seen_indptr is not None:
        ptr = np.asarray(model.seen_indptr, np.int64)
        changes["seen_indptr"] = np.concatenate([ptr, np.full(len(new), ptr[-1], np.int64)])
    changes["posterior"] = _grown_posterior(model.posterior, side, sample_biases, len(new), where)
    return dataclasses.replace(model, **changes)
