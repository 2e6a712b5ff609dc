"""Fold-in and partial fits of a Bayesian MF model: per-sample conditional posterior means.

A Gibbs model is S kept samples side by side (:mod:`mfjax.solvers.gibbs.posterior`):
block s of a factor row, times √S, is sample s's p_uˢ, and ``Model.posterior`` holds each
sample's biases, μ_s, τ_s and the row priors of the sweep that drew it. A row is
re-solved (users shown; items alike with the sides swapped) as, for every sample s, the
mean of the conditional the sampler draws x_u = [p_u; b_u] from (D = k+1),

    x_uˢ = (Λ_Uˢ + τ_s Σ_i a_i a_iᵀ)⁻¹ (Λ_Uˢ μ_Uˢ + τ_s Σ_i a_i y_i),
    a_i = [q_iˢ; 1],   y_i = r_ui − μ_s − b_iˢ                              [D, D] [D] = [D]

(:func:`mfjax.solvers.rows.posterior_mean_rows`, the sampler's own draw with zero
normals), given that sample's fixed other side (q_iˢ, b_iˢ) and hyperparameters
(μ_Uˢ, Λ_Uˢ, τ_s). The row's factors go back into the concatenated layout, block s =
p_uˢ/√S, so a prediction stays the mean of the S samples' predictions; its bias in the
averaged model is the mean of the b_uˢ, and each b_uˢ goes into ``posterior`` (so
``predict(return_std=True)`` has the refreshed row's spread over the samples). A training
user refreshed from its own history gets back the Rao-Blackwellized form of its trained
row: the mean of each sample's conditional instead of one draw from it.

A model without the samples' prior hyperparameters (:func:`has_priors`: a file saved
before they were kept, or a model whose ``posterior`` is None) is refreshed with the ridge
row of the averaged model, λ = λ_b = ``hp["reg"]``, ``hp["bias_reg"]``
(:func:`mfjax.solvers.rows.ridge_row_solve`), and says so with a :data:`NO_PRIORS_WARNING`.
"""
from __future__ import annotations

import warnings

import numpy as np

from ...solvers.rows import posterior_mean_rows, ridge_row_solve
from ...solvers.gibbs.posterior import has_priors

__all__ = ["posterior_row_solve", "NO_PRIORS_WARNING"]

#: The start of the warning a refresh with the ridge gives (the reason follows it).
NO_PRIORS_WARNING = "this Bayesian MF model is refreshed with the ridge row solve"


def posterior_row_solve(params, posterior, side, rows, cols, vals, n_rows, hp):
    """R rows of ``side`` re-solved against the fixed other side (module docstring).

    Args:
        params: the model's :class:`~mfjax.Params` (the S samples side by side).
        posterior: ``Model.posterior`` (:data:`mfjax.solvers.gibbs.posterior.POSTERIOR_FIELDS`),
            or None.
        side: ``"users"`` or ``"items"``.
        rows, cols, vals, n_rows: the interactions, as in :func:`mfjax.solvers.rows.ridge_rows`.
        hp: the ridge's ``reg``/``bias_reg``, used only without prior hyperparameters.

    Returns:
        ``(factors [R, S·k], bias [R], sample_bias [S, R])``; ``sample_bias`` is None
        for the ridge (without prior hyperparameters, with a warning).
    """
    if not has_priors(posterior):
        why = ("it has no posterior samples" if posterior is None else
               "its posterior has no prior hyperparameters (a model file saved before "
               "mfjax kept them)")
        lam = hp["reg"]
        lam_b = lam if hp.get("bias_reg") is None else hp["bias_reg"]
        warnings.warn(f"{NO_PRIORS_WARNING} (λ = {lam:g}, λ_b = {lam_b:g}) instead of the "
                      f"per-sample posterior means, because {why}; refit to get them",
                      UserWarning, stacklevel=5)  # the caller of Model.partial_fit_users
        other = "item" if side == "users" else "user"
        f, b = ridge_row_solve(getattr(params, f"{other}_factors"),
                               getattr(params, f"{other}_bias"), params.global_bias, rows, cols,
                               vals, n_rows, hp)
        return f, b, None
    own, other = ("user", "item") if side == "users" else ("item", "user")
    S = int(np.shape(posterior["tau"])[0])
    F = np.asarray(getattr(params, f"{other}_factors"))
    n_other, k = F.shape[0], F.shape[1] // S
    root = np.sqrt(S).astype(F.dtype)
    per_sample = F.reshape(n_other, S, k).transpose(1, 0, 2) * root  # [S, n_other, k]
    f, b = posterior_mean_rows(per_sample, posterior[f"{other}_bias"], posterior["global_bias"],
                               posterior["tau"], posterior[f"{own}_prior_mean"],
                               posterior[f"{own}_prior_prec"], rows, cols, vals, n_rows)
    factors = f.transpose(1, 0, 2).reshape(n_rows, S * k) / root
    return factors.astype(F.dtype), b.mean(0).astype(F.dtype), b.astype(F.dtype)
