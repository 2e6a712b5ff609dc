"""Incremental updates: re-solve or add users (items) against the fixed other side.

:func:`partial_fit` is behind :meth:`mfjax.Model.partial_fit_users` and
:meth:`~mfjax.Model.partial_fit_items`. The rows of the side being fitted that
appear in ``ratings`` (existing or new IDs) are solved in one batched call of
:mod:`mfjax.solvers.rows`, by the row solve of the model's record (its package's
``row_solve``; a model without one refuses partial fits):

- explicit (Optax, ALS): the ridge system of the exact ALS half-step, for
  [p_u; b_u] (users) or [q_i; b_i] (items);
- Bayesian MF (Gibbs): per kept sample, the row's conditional posterior mean given
  that sample's other side and hyperparameters (the record's ``posterior_row_solve``,
  :mod:`mfjax.models.bayesian_mf.refresh`), placed back in the model's concatenated
  layout; a model without the samples' prior hyperparameters (saved before they
  were kept) gets the ridge row of its posterior mean, with a warning;
- iALS: the exact iALS half-step (Cholesky);
- BPR: converged Newton steps on the user's BPR objective (users only).

``ratings`` holds each entity's **full** history: an existing user's vector is
replaced by the solution for exactly the rows given (not the old rows plus
these), and so is its entry in the seen index that :meth:`~mfjax.Model.recommend`
excludes. Every other row of the model is copied bit for bit; new IDs are
appended after the existing ones in the order of ``ratings``' ID table. An explicit model's
``rating_range`` (the clipping range of predictions) widens to cover the new
ratings. Gibbs models keep their per-sample arrays: a solved row's per-sample
biases are its per-sample solutions (the ridge's point estimate in every sample
when the model has no prior hyperparameters).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import jax.numpy as jnp

from ..data import Ratings
from ..data.conventions import STAR_RATINGS_WARNING, looks_like_star_ratings
from ..data.ids import show
from .access import hyperparameters

__all__ = ["partial_fit", "solve_rows", "fold_in_one"]

SIDES = ("users", "items")


def _check(model, ratings, side, where):
    """The model's hyperparameters, once ``ratings`` and ``side`` suit its objective."""
    if side not in SIDES:
        raise ValueError(f"{where}: side must be 'users' or 'items', got {side!r}")
    if not isinstance(ratings, Ratings):
        raise TypeError(f"{where}: ratings must be an mfjax.Ratings (raw IDs), "
                        f"got {type(ratings).__name__}")
    if len(ratings) == 0:
        raise ValueError(f"{where}: ratings is empty; pass at least one interaction")
    if model.record.row_solve is None:
        raise ValueError(f"{where}: {model.record.name} models have no row solve against "
                         "fixed factors; refit instead")
    obj, hp = model.objective, hyperparameters(model)
    if side not in obj.row_sides:
        raise ValueError(f"{where}: {obj.name.upper()} models can only re-solve "
                         f"{' and '.join(obj.row_sides)} (the {side[:-1]} side of the "
                         f"{obj.name} objective does not split into independent rows); "
                         "refit instead")
    if obj.values != "ratings" and (ratings.ratings < 0).any():
        j = int(np.flatnonzero(ratings.ratings < 0)[0])
        raise ValueError(f"{where}: implicit values must be >= 0; ratings.ratings[{j}] = "
                         f"{ratings.ratings[j]}")
    if obj.values == "ones" and not np.all(ratings.ratings == 1):
        raise ValueError(f"{where}: a {obj.name.upper()} model uses only which items a user "
                         "interacted with, but these values are not all 1 (star ratings?); "
                         "binarize first, e.g. ratings.binarize(4)")
    if obj.values == "strengths" and looks_like_star_ratings(ratings):
        warnings.warn(f"{where}: " + STAR_RATINGS_WARNING, UserWarning, stacklevel=3)
    if "reg" in hp and hp["reg"] is None:
        raise ValueError(f"{where}: the model's configuration records no 'reg'")
    return hp


def solve_rows(model, hp, side, rows, cols, vals, n_rows, *, posterior: bool = True,
               features=None, raw_ids=None):
    """Solved ``(factors [R, k], bias [R], sample_bias [S, R] or None)`` for R rows of
    ``side`` (NumPy), by the row solve of the model's record: its
    :attr:`~mfjax.models.ModelRecord.posterior_row_solve` where it has one and
    ``posterior`` is true, else :attr:`~mfjax.models.ModelRecord.row_solve`
    (``sample_bias`` None).

    ``rows`` [n] are local row numbers in [0, R), ``cols`` [n] indices into the
    other side, ``vals`` [n] the ratings (implicit: interaction values). With
    ``features`` (and the rows' raw IDs [R]), a record's
    :attr:`~mfjax.models.ModelRecord.feature_row_solve` solves instead, its prior
    reading the rows' features.
    """
    p = model.params
    by_features = model.record.feature_row_solve
    if posterior and features is not None and raw_ids is not None and by_features is not None:
        return by_features(model, features, side, raw_ids, rows, cols, vals, n_rows, hp)
    bayes = model.record.posterior_row_solve
    if posterior and bayes is not None:
        return bayes(p, model.posterior, side, rows, cols, vals, n_rows, hp)
    other_f = p.item_factors if side == "users" else p.user_factors
    other_b = p.item_bias if side == "users" else p.user_bias
    solve = model.record.row_solve
    if solve is None:
        raise ValueError(f"{model.record.name} models have no row solve; refit instead")
    f, b = solve(other_f, other_b, p.global_bias, rows, cols, vals, n_rows, hp)
    return f, b, None


def _own_and_other(model, ratings, side, missing, where):
    """Rows of ``ratings`` mapped to model indices: (own raw IDs [R], own model index [R]
    (-1: new), local row [n], other model index [n], values [n])."""
    users_side = side == "users"
    own_local, other_local = (ratings.users, ratings.items) if users_side else \
        (ratings.items, ratings.users)
    own_table, other_table = (ratings.user_ids, ratings.item_ids) if users_side else \
        (ratings.item_ids, ratings.user_ids)
    other_lookup = model.index_items if users_side else model.index_users
    other_idx = np.asarray(other_lookup(other_table, missing="ignore"), np.int64)[other_local]
    vals = ratings.ratings
    unknown = other_idx < 0
    if unknown.any():
        if missing == "raise":
            bad = other_table[other_local[unknown]]
            names = ", ".join(repr(show(x)) for x in bad[:5])
            what = "item" if users_side else "user"
            raise KeyError(f"{where}: unknown {what} IDs {names} ({int(unknown.sum())} "
                           f"rows); pass missing='ignore' to drop them")
        keep = ~unknown
        own_local, other_idx, vals = own_local[keep], other_idx[keep], vals[keep]
        if own_local.size == 0:
            raise ValueError(f"{where}: no interaction left after dropping unknown IDs")
    present, local = np.unique(own_local, return_inverse=True)
    raw = own_table[present]
    own_lookup = model.index_users if users_side else model.index_items
    try:
        own_idx = np.asarray(own_lookup(raw, missing="ignore"), np.int64).reshape(-1)
    except TypeError as e:
        raise TypeError(f"{where}: the {side[:-1]} IDs of ratings do not match the model's "
                        f"ID type ({e})") from None
    return raw, own_idx, local.reshape(-1), other_idx, vals


def partial_fit(model, ratings: Ratings | None, side: str, *, missing: str = "raise",
                features=None):
    """A new Model with the ``side`` rows of ``ratings`` solved (module docstring).

    Args:
        model: the trained model (unchanged).
        ratings: the full histories of the users (``side="users"``) or items to
            solve, raw IDs; the other side's IDs must be known to the model.
        side: ``"users"`` or ``"items"``.
        missing: ``"raise"``: an unknown other-side ID raises KeyError;
            ``"ignore"``: its rows are dropped.
        features: an :class:`mfjax.Features` or None: its new IDs of ``side`` without
            rows in ``ratings`` are added from their features
            (:func:`mfjax.serving.feature_rows.add_feature_rows`; models that serve
            feature-only IDs); ``ratings`` may then be None. The rows solved from
            ``ratings`` read these features (else the model's) where the record has a
            ``feature_row_solve`` (e.g. a prior mean from the row's features).

    Returns:
        The updated :class:`mfjax.Model`.
    """
    where = f"partial_fit_{side}" if side in SIDES else "partial_fit"
    if features is not None and side in SIDES:
        from .feature_rows import add_feature_rows

        model = add_feature_rows(model, features, side, ratings, where)
        if ratings is None:
            return model
    if ratings is None:
        raise ValueError(f"{where}: ratings is None; pass ratings, or features= with the "
                         "new IDs' features")
    hp = _check(model, ratings, side, where)
    if missing not in ("raise", "ignore"):
        raise ValueError(f"{where}: missing must be 'raise' or 'ignore', got {missing!r}")
    raw, own_idx, local, other_idx, vals = _own_and_other(model, ratings, side, missing, where)
    from .features import features_for

    f, b, sample_b = solve_rows(model, hp, side, local, other_idx, vals, len(raw),
                                features=features_for(model, features, where), raw_ids=raw)
    new = own_idx < 0
    ids_name = "user_ids" if side == "users" else "item_ids"
    old_ids = np.asarray(getattr(model, ids_name))
    if new.any():
        added = np.asarray(raw[new])
        old_int, added_int = old_ids.dtype.kind in "iu", added.dtype.kind in "iu"
        if old_int != added_int:
            raise TypeError(f"{where}: the model's {side[:-1]} IDs are "
                            f"{'integers' if old_int else 'not integers'}; got "
                            f"{show(added[0])!r}")
        dtype = old_ids.dtype if old_int else object  # never truncate fixed-width strings
        ids = np.concatenate([old_ids.astype(dtype), added.astype(dtype)])
    else:
        ids = old_ids
    n_old = len(old_ids)
    target = np.where(new, n_old + np.cumsum(new) - 1, own_idx)
    params = _set_rows(model.params, side, target, len(ids), f, b)
    changes = {ids_name: ids, "params": params,
               "posterior": _posterior(model.posterior, side, target, len(ids),
                                       b if sample_b is None else sample_b)}
    if not model.objective.ranking:  # ratings: predictions are clipped to their range
        lo, hi = model.rating_range
        changes["rating_range"] = (min(lo, float(vals.min())), max(hi, float(vals.max())))
    if model.seen_indptr is not None and model.seen_items is not None:
        changes["seen_indptr"], changes["seen_items"] = _seen(model, side, target, local,
                                                             other_idx, len(ids))
    return dataclasses.replace(model, **changes)


def _grow(a, n_total, rows, values):
    a = np.asarray(a)
    out = np.concatenate([a, np.zeros((n_total - a.shape[0],) + a.shape[1:], a.dtype)])
    out[rows] = np.asarray(values, a.dtype)
    return out


def _set_rows(params, side, target, n_total, f, b):
    if side == "users":
        return params._replace(user_factors=jnp.asarray(_grow(params.user_factors, n_total, target, f)),
                               user_bias=jnp.asarray(_grow(params.user_bias, n_total, target, b)))
    return params._replace(item_factors=jnp.asarray(_grow(params.item_factors, n_total, target, f)),
                           item_bias=jnp.asarray(_grow(params.item_bias, n_total, target, b)))


def _posterior(posterior, side, target, n_total, b):
    """Gibbs per-sample biases with the solved rows' ``b`` [S, R] put in, or, for a point
    estimate b [R], b in every sample (their spread is then that of the fixed side only)."""
    if posterior is None:
        return None
    key = "user_bias" if side == "users" else "item_bias"
    s_b = np.asarray(posterior[key])  # [S, n]
    grown = np.concatenate([s_b, np.zeros((s_b.shape[0], n_total - s_b.shape[1]), s_b.dtype)],
                           axis=1)
    b = np.asarray(b, s_b.dtype)
    grown[:, target] = b if b.ndim == 2 else b[None, :]
    return {**posterior, key: grown}


def _seen(model, side, target, local, other_idx, n_total):
    """The seen CSR (user -> items) with the solved rows' interactions replaced.

    O(nnz) without a global sort: kept entries keep their order within each
    user's row, and the new (user, item) pairs (sorted by item) go after them.
    """
    indptr, items = np.asarray(model.seen_indptr, np.int64), np.asarray(model.seen_items)
    n_users_old = len(indptr) - 1
    counts_old = np.diff(indptr)
    users = np.repeat(np.arange(n_users_old), counts_old)
    if side == "users":
        gone = np.zeros(n_users_old, bool)
        gone[target[target < n_users_old]] = True
        keep = ~gone[users]
        n_users, nu, ni = n_total, target[local], other_idx
    else:
        gone = np.zeros(n_total, bool)
        gone[target] = True
        keep = ~gone[items]
        n_users, nu, ni = n_users_old, other_idx, target[local]
    width = n_total if side == "items" else model.n_items  # item indices lie below it
    pairs = np.unique(nu.astype(np.int64) * width + ni)  # distinct, by (user, item)
    nu, ni = pairs // width, pairs % width
    kept_count = np.bincount(users[keep], minlength=n_users)
    new_count = np.bincount(nu, minlength=n_users)
    new_ptr = np.zeros(n_users + 1, np.int64)
    np.cumsum(kept_count + new_count, out=new_ptr[1:])
    out = np.empty(new_ptr[-1], np.int32)
    ku = users[keep]
    # Rank of each kept entry within its row: its position among the kept entries
    # minus the number of kept entries of earlier rows.
    kept_start = np.concatenate([[0], np.cumsum(kept_count)])[:-1]
    out[new_ptr[ku] + np.arange(len(ku)) - kept_start[ku]] = items[keep]
    new_start = np.concatenate([[0], np.cumsum(new_count)])[:-1]
    out[new_ptr[nu] + kept_count[nu] + np.arange(len(nu)) - new_start[nu]] = ni
    return new_ptr, out


def fold_in_one(model, raw_item_ids, ratings, reg, bias_reg, missing, where):
    """One user's ``(factor [k], bias, item indices [n])`` from raw item IDs and values:
    :meth:`mfjax.Model.fold_in`'s checks, then :func:`solve_rows` with one row."""
    if missing not in ("raise", "ignore"):
        raise ValueError(f"{where}: missing must be 'raise' or 'ignore', got {missing!r}")
    raw = np.asarray(raw_item_ids, dtype=object) if isinstance(raw_item_ids, str) \
        else np.asarray(raw_item_ids)
    r = np.ones(len(raw)) if ratings is None else np.asarray(ratings)
    if raw.ndim != 1 or r.ndim != 1 or len(raw) != len(r):
        raise ValueError(f"{where}: raw_item_ids and ratings must be 1-D and of equal length, "
                         f"got shapes {raw.shape} and {r.shape}")
    if r.size and r.dtype.kind not in "iuf":
        bad = next((j for j, x in enumerate(r) if not _real(x)), 0)
        raise ValueError(f"{where}: ratings must be real numbers (not bool, str or complex); "
                         f"ratings[{bad}] = {_plain(r[bad])!r} has dtype {r.dtype}")
    if r.size and not np.isfinite(r).all():
        bad = int(np.flatnonzero(~np.isfinite(r))[0])
        raise ValueError(f"{where}: ratings[{bad}] = {_plain(r[bad])!r} is not a finite number")
    try:
        idx = np.asarray(model.index_items(raw, missing="ignore"), np.int64).reshape(-1)
    except TypeError as e:
        raise TypeError(f"{where}: raw_item_ids must be raw item IDs (a hashable scalar or a "
                        f"1-D list), got {type(raw_item_ids).__name__} ({e})") from None
    unknown = idx < 0
    if unknown.any() and missing == "raise":
        names = ", ".join(repr(_plain(x)) for x in raw[unknown][:5])
        more = f" and {unknown.sum() - 5} more" if unknown.sum() > 5 else ""
        raise KeyError(f"{where}: unknown item IDs {names}{more}; pass missing='ignore' "
                       "to drop their ratings")
    idx, r = idx[~unknown], r[~unknown]
    hp = hyperparameters(model)
    if model.objective.ranking:  # implicit (iALS, BPR): no user bias
        if r.size and (r < 0).any():
            raise ValueError(f"{where}: implicit values must be >= 0")
        if bias_reg is not None:
            raise ValueError(f"{where}: bias_reg is for explicit models; an implicit model "
                             "(iALS, BPR) folds in no user bias")
        hp["reg"] = _check_reg("reg", hp["reg"] if reg is None else reg, where)
    else:
        hp["reg"], hp["bias_reg"] = _fold_in_regs(model, reg, bias_reg, where)
    # An explicit reg= or bias_reg= asks for the ridge, also where the record has a
    # posterior row solve (Bayesian MF).
    posterior = reg is None and bias_reg is None
    try:
        p, b, _ = solve_rows(model, hp, "users", np.zeros(len(idx), np.int64), idx, r, 1,
                             posterior=posterior)
    except ValueError as e:
        raise ValueError(f"{where}: {e} ({len(idx)} ratings)") from None
    return jnp.asarray(p[0]), float(b[0]), idx


def _fold_in_regs(model, reg, bias_reg, where):
    if reg is None:
        reg = hyperparameters(model)["reg"]
        if reg is None:
            raise ValueError(f"{where}: the model's config records no 'reg'; pass reg=")
    if bias_reg is None:
        bias_reg = hyperparameters(model)["bias_reg"]
        bias_reg = reg if bias_reg is None else bias_reg
    return _check_reg("reg", reg, where), _check_reg("bias_reg", bias_reg, where)


def _check_reg(name, v, where) -> float:
    """A regularization weight: a finite real number >= 0 (not bool, str or complex)."""
    if (isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating))
            or not np.isfinite(v) or v < 0):
        raise ValueError(f"{where}: {name} must be a finite number >= 0, got {v!r}")
    return float(v)


def _real(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _plain(x):
    return x.item() if isinstance(x, np.generic) else x
