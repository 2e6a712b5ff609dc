"""Serving BayesianFM from features: IDs with features and no training ratings.

A sample s of the chain (:mod:`mfjax.models.bayesian_fm.sampler`) gives a row the
prior θˢ = vˢ + Bˢᵀx with vˢ ~ N(μˢ, diag(1/λˢ)), θ = [p; b] of K = k + 1 numbers.
A user (item) without ratings has no likelihood term, so its posterior mean in that
sample is exactly

    E[θˢ | x] = μˢ + Bˢᵀ x      [K],

x [m] its attribute row (its implicit-feedback row is empty: it rated nothing). The
model holds the S kept samples side by side (factors scaled 1/√S,
:func:`mfjax.solvers.gibbs.chain.average_params`), so the row's vector in that layout
is [θ¹[:k], …, θˢ[:k]] / √S [k·S] and its bias mean_s θˢ[k] (:func:`compose_rows`):
⟨row, q_i⟩ is then the posterior mean (1/S) Σ_s ⟨pˢ, qˢ_i⟩ of the FM's cross term,
and ``predict`` / ``recommend`` score it like any row. μˢ, Bˢ are the posterior
fields :data:`~mfjax.models.bayesian_fm.posterior.FEATURE_FIELDS`, kept at ``fit``.
New feature rows must have the training features' columns (same names and order).
"""
from __future__ import annotations

import numpy as np

from ...solvers.feature_scores import side_rows
import scipy.sparse as sp

__all__ = ["compose_rows", "feature_theta_rows", "side_maps", "feature_terms", "feature_vectors",
           "feature_rows", "score_features"]


def feature_theta_rows(X, mean, coef) -> np.ndarray:
    """θ [S, n, K] = μˢ + Bˢᵀ x of n attribute rows X [n, m] (csr or dense) from
    ``mean`` μ [S, K] and ``coef`` B [S, m, K], in float64."""
    X = sp.csr_matrix(X, dtype=np.float64)
    coef = np.asarray(coef, np.float64)
    out = np.stack([X @ coef[s] for s in range(coef.shape[0])]) if coef.shape[0] else \
        np.zeros((0, X.shape[0], coef.shape[-1]))
    return out + np.asarray(mean, np.float64)[:, None, :]


def compose_rows(theta, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(vectors [n, k·S], biases [n], sample_biases [S, n])`` of rows θ [S, n, K] in the
    model's layout of S samples side by side (module docstring)."""
    S, n, _ = theta.shape
    vec = np.transpose(theta[:, :, :k], (1, 0, 2)).reshape(n, S * k) / np.sqrt(S)
    return vec, theta[:, :, k].mean(axis=0), theta[:, :, k]


def side_maps(model, side: str):
    """``(mean [S, K], coef [S, m, K])`` of ``side`` (``"users"``/``"items"``), or None
    when the model keeps none (trained without that side's attributes, or saved
    before the maps were kept)."""
    post, key = model.posterior or {}, side[:-1]
    table = None if model.features is None else model.features.table(side)
    if f"{key}_feature_coef" not in post or table is None:
        return None
    coef = post[f"{key}_feature_coef"]
    if coef.shape[1] != table.n_columns:
        raise ValueError(f"BayesianFM: posterior/{key}_feature_coef has {coef.shape[1]} "
                         f"columns but the model's {key} features {table.n_columns}; the "
                         "posterior arrays belong to another model")
    return post[f"{key}_row_mean"], coef


def _check_columns(model, table, side: str) -> None:
    """Refuse a table whose columns are not the training features' (names, order)."""
    trained = model.features.table(side)
    got, want = tuple(table.column_names), tuple(trained.column_names)
    if got == want:
        return
    unknown = [c for c in got if c not in set(want)]
    lacking = [c for c in want if c not in set(got)]
    what = "; ".join(x for x in (f"unknown columns {unknown[:5]}" if unknown else "",
                                 f"lacks the columns {lacking[:5]}" if lacking else "") if x) \
        or "the training columns in another order"
    raise ValueError(f"BayesianFM: the new {side[:-1]} features: {what} (the model was trained "
                     f"on {len(want)} columns such as {list(want[:3])}); encode new rows with "
                     "the training columns (Features.from_frames on the same categories)")


def feature_terms(model, features, side: str, raw_ids) -> tuple[np.ndarray, np.ndarray]:
    """``(Bˢᵀx [S, n, K], known [n])`` float64 of raw IDs from ``features``' table of
    ``side`` (zeros and False for an ID without a row there, or when the model keeps no
    coefficients of that side).

    Raises:
        ValueError: the table's columns are not the training features' columns.
    """
    raw_ids = np.asarray(raw_ids)
    n = len(raw_ids)
    maps = side_maps(model, side)
    table = None if features is None else features.table(side)
    if maps is None or table is None:
        S = int(np.shape((model.posterior or {}).get("tau", np.zeros(1)))[0])
        K = int(np.asarray(model.params.user_factors).shape[1]) // max(S, 1) + 1
        return np.zeros((S, n, K)), np.zeros(n, bool)
    _check_columns(model, table, side)
    indptr, indices, values, known = table.rows_for(raw_ids)
    X = sp.csr_matrix((np.asarray(values, np.float64), np.asarray(indices), np.asarray(indptr)),
                      shape=(n, table.n_columns))
    coef = maps[1]
    return feature_theta_rows(X, np.zeros((coef.shape[0], coef.shape[2])), coef), \
        np.asarray(known, bool)


def feature_vectors(model, features, side: str, raw_ids):
    """``(vectors [n, k·S], biases [n], sample_biases [S, n], known [n])`` float64 of raw
    IDs from their features, E[θˢ] = μˢ + Bˢᵀx composed (:func:`compose_rows`); 0 and
    False for an ID without features (or a model that keeps no maps of ``side``).

    Raises:
        ValueError: the table's columns are not the training features' columns.
    """
    terms, known = feature_terms(model, features, side, raw_ids)
    S, n, K = terms.shape
    maps = side_maps(model, side)
    if maps is None or not known.any():
        width = int(np.asarray(model.params.user_factors).shape[1])
        return np.zeros((n, width)), np.zeros(n), np.zeros((S, n)), known
    theta = np.where(known[None, :, None], terms + np.asarray(maps[0], np.float64)[:, None], 0.0)
    vec, bias, sample_bias = compose_rows(theta, K - 1)
    return vec, bias, sample_bias, known


def feature_rows(model, features, side: str, raw_ids):
    """``(vectors [n, k·S], biases [n], sample_biases [S, n])`` of new IDs from their
    features (``partial_fit_users/items(features=F)``)."""
    vec, bias, sample_bias, _ = feature_vectors(model, features, side, raw_ids)
    return vec, bias, sample_bias


def score_features(model, features, raw_users, raw_items, users, items) -> np.ndarray:
    """Scores [n] of raw-ID pairs, μ + b_u + b_i + ⟨p_u, q_i⟩: a row's own vector and bias
    when the model has it (``users``/``items`` ≥ 0), else its features'
    (:func:`feature_vectors`), else 0 (the fallback of ``predict``)."""
    p = model.params

    def of(side):
        def vectors(raw):
            v, bb, _, known = feature_vectors(model, features, side, raw)
            return v, bb, known
        return vectors

    pu, bu = side_rows(p.user_factors, p.user_bias, users, raw_users, of("users"))
    qi, bi = side_rows(p.item_factors, p.item_bias, items, raw_items, of("items"))
    return float(p.global_bias) + bu + bi + np.sum(pu * qi, axis=1)
