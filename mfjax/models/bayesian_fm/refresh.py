"""Partial fits and fold-in of a BayesianFM: per-sample posterior means with feature priors.

As for Bayesian MF (:mod:`mfjax.models.bayesian_mf.refresh`), a row is re-solved per
kept sample s as the mean of the conditional the sampler draws it from, given that
sample's other side (q_iˢ, b_iˢ), μ_s, τ_s and the row's prior (users shown):

    θ_uˢ = (Λˢ + τ_s Σ_i a_i a_iᵀ)⁻¹ (Λˢ mˢ_u + τ_s Σ_i a_i y_i),
    a_i = [q_iˢ; 1],  y_i = r_ui − μ_s − b_iˢ,  Λˢ = diag(λ_Uˢ),         [K, K] [K] = [K]
    mˢ_u = μ_Uˢ + B_Uˢᵀ x_u      (x_u the user's attribute row; μ_Uˢ without one),

(:func:`mfjax.solvers.rows.posterior_mean_rows`), so a user with few ratings leans on
their features. The prior leaves out the implicit-feedback term (its coefficients are
not kept: the row's ratings enter through the likelihood instead), so a training
user refreshed from their own history gets back their row up to that term. The rows
go back into the model's layout (block s = pˢ/√S, bias the mean of the bˢ, each bˢ
into ``posterior``). A model without the row priors (a file saved before they were
kept) is refreshed with the ridge of :mod:`mfjax.models.bayesian_fm.parts`, with a
warning.
"""
from __future__ import annotations

import warnings

import numpy as np

from ...solvers.rows import posterior_mean_rows, ridge_row_solve
from .posterior import has_row_priors
from .serving import feature_terms

__all__ = ["posterior_row_solve", "feature_row_solve", "NO_PRIORS_WARNING"]

#: The start of the warning a refresh with the ridge gives.
NO_PRIORS_WARNING = "this BayesianFM model is refreshed with the ridge row solve"


def _ridge(params, side, rows, cols, vals, n_rows, hp):
    warnings.warn(f"{NO_PRIORS_WARNING} (λ = {hp['reg']:g}) instead of the per-sample "
                  "posterior means, because its posterior keeps no row priors (a model file "
                  "saved before mfjax kept them); refit to get them", UserWarning, stacklevel=5)
    other = "item" if side == "users" else "user"
    f, b = ridge_row_solve(getattr(params, f"{other}_factors"), getattr(params, f"{other}_bias"),
                           params.global_bias, rows, cols, vals, n_rows, hp)
    return f, b, None


def posterior_row_solve(params, posterior, side, rows, cols, vals, n_rows, hp, prior_rows=None):
    """R rows of ``side`` re-solved per sample (module docstring).

    Args:
        params: the model's Params (S samples side by side).
        posterior: ``Model.posterior`` (:mod:`mfjax.models.bayesian_fm.posterior`) or None.
        side: ``"users"`` or ``"items"``.
        rows, cols, vals, n_rows: the interactions (:func:`mfjax.solvers.rows.ridge_rows`).
        hp: the ridge's ``reg``/``bias_reg`` (only without row priors).
        prior_rows: None, or ``(B x [S, R, K], known [R])``: the rows' feature terms
            (added to μˢ where ``known``).

    Returns:
        ``(factors [R, S·k], bias [R], sample_bias [S, R] or None)``.
    """
    own, other = ("user", "item") if side == "users" else ("item", "user")
    if not has_row_priors(posterior, own):
        return _ridge(params, side, rows, cols, vals, n_rows, hp)
    S = int(np.shape(posterior["tau"])[0])
    F = np.asarray(getattr(params, f"{other}_factors"))
    n_other, k = F.shape[0], F.shape[1] // S
    root = np.sqrt(S).astype(F.dtype)
    per_sample = F.reshape(n_other, S, k).transpose(1, 0, 2) * root  # [S, n_other, k]
    mean = np.asarray(posterior[f"{own}_row_mean"], np.float64)    # [S, K]
    prec = np.asarray(posterior[f"{own}_row_prec"], np.float64)
    if prior_rows is not None:
        terms, known = prior_rows
        mean = mean[:, None, :] + np.where(np.asarray(known)[None, :, None], terms, 0.0)
    eye = np.eye(k + 1)
    f, b = posterior_mean_rows(per_sample, posterior[f"{other}_bias"], posterior["global_bias"],
                               posterior["tau"], mean.astype(F.dtype),
                               (prec[:, :, None] * eye).astype(F.dtype), rows, cols, vals, n_rows)
    factors = f.transpose(1, 0, 2).reshape(n_rows, S * k) / root
    return factors.astype(F.dtype), b.mean(0).astype(F.dtype), b.astype(F.dtype)


def feature_row_solve(model, features, side, raw_ids, rows, cols, vals, n_rows, hp):
    """:func:`posterior_row_solve` with each row's prior mean μˢ + Bˢᵀx from its features
    in ``features`` (the call's or the model's; a row without features: μˢ).

    Raises:
        ValueError: the features' columns are not the training features'.
    """
    terms, known = feature_terms(model, features, side, raw_ids)
    prior = (terms, known) if known.any() else None
    return posterior_row_solve(model.params, model.posterior, side, rows, cols, vals, n_rows,
                               hp, prior_rows=prior)
