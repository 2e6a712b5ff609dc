"""Batched row solves against a fixed other side: many users (or items) at once.

The row solves that fold-in and partial fits use; each model package binds its own
(``row_solve`` in its ``parts``) as ``solve(other_factors [n, k], other_bias [n],
global_bias, rows, cols, vals, n_rows, hp) -> (factors [R, k], bias [R])`` (NumPy; ``hp``
from the package's ``row_hyperparameters``). This module holds the solves several
models share; a model's own row solve lives in its package (iALS:
:mod:`mfjax.models.implicit_als.fold_in`, BPR: :mod:`mfjax.models.bpr.fold_in`,
logistic MF: :mod:`mfjax.models.logistic_mf.fold_in`). Rows without a bias (iALS, BPR)
get bias 0; a non-finite implicit solve is a ValueError naming ``reg``
(:func:`checked_rows`).

Every function takes the interactions of R rows as flat arrays ``rows`` [n]
(local row numbers in [0, R)), ``cols`` [n] (indices into the fixed side) and
``vals`` [n], and returns the R solved rows; a row without interactions comes
back 0. Shapes are padded to powers of two so a handful of compiled programs
serve any batch.

- :func:`ridge_rows`: explicit models (ALS, Optax, the posterior mean of Gibbs).
  Row x = [f; b] minimises ``½ Σ_j [(μ + b + b_j + <f, g_j> − r_j)² + λ‖f‖² + λ_b b²]``
  with the other side's (g_j, b_j) fixed, i.e. solves
  ``(Σ_j z_j z_jᵀ + n Λ) x = Σ_j (r_j − μ − b_j) z_j`` with z_j = [g_j; 1] and
  Λ = diag(λ, …, λ, λ_b): exactly the exact-ALS half-step
  (:func:`mfjax.solvers.als.sweep.als_half_step`, reused here).
- :func:`posterior_mean_rows`: Bayesian MF (Gibbs) rows, per kept sample s the mean of
  the row's conditional posterior given that sample's other side and hyperparameters,
  ``(Λˢ + τ_s Σ_j z_j z_jᵀ) x = Λˢ mˢ + τ_s Σ_j (r_j − μ_s − b_jˢ) z_j`` with
  z_j = [g_jˢ; 1]: the sampler's own draw (:func:`mfjax.solvers.gibbs.sampler.sample_side`)
  with its standard normals set to zero.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..plumbing import power_of_two_at_least
from .als.layout import make_layout
from .als.sweep import als_half_step, default_window
from .gibbs.sampler import sample_side

__all__ = ["ridge_rows", "posterior_mean_rows", "ridge_row_solve", "checked_rows",
           "ridge_hyperparameters"]


def _pad_rows(rows, cols, vals, n_rows):
    """Pad R to a power of two (≥ R + 1) and n to a power of two with weight-0
    entries on the last (padding) row; returns (rows, cols, vals, weights, R_pad)."""
    r_pad = power_of_two_at_least(n_rows + 1, 8)
    n = len(rows)
    extra = power_of_two_at_least(n + 1, 16) - n
    w = np.concatenate([np.ones(n), np.zeros(extra)])
    rows = np.concatenate([np.asarray(rows, np.int64), np.full(extra, r_pad - 1)])
    cols = np.concatenate([np.asarray(cols, np.int64), np.zeros(extra, np.int64)])
    vals = np.concatenate([np.asarray(vals, np.float64), np.zeros(extra)])
    return rows, cols, vals, w, r_pad


@partial(jax.jit, static_argnames=("window",))
def _ridge(side, other_factors, other_bias, mu, reg, bias_reg, *, window):
    own = jnp.zeros((side.n_rows, other_factors.shape[1]), other_factors.dtype)
    f, b, _ = als_half_step(side, own, own[:, 0], other_factors, other_bias, mu, reg=reg,
                            bias_reg=bias_reg, window=window)
    return f, b


def ridge_rows(other_factors, other_bias, global_bias, rows, cols, vals, n_rows, *, reg,
               bias_reg):
    """Explicit rows (module docstring): ``(factors [R, k], bias [R])``, NumPy.

    Raises:
        ValueError: a solved row is not finite (λ = 0 with too few ratings).
    """
    dtype = np.asarray(other_factors).dtype
    rows, cols, vals, w, r_pad = _pad_rows(rows, cols, vals, n_rows)
    layout = make_layout(rows, cols, vals, n_users=r_pad, n_items=other_factors.shape[0],
                         weights=w, dtype=dtype)
    window = default_window(other_factors.shape[1], itemsize=np.dtype(dtype).itemsize)
    f, b = _ridge(layout.users, jnp.asarray(other_factors), jnp.asarray(other_bias),
                  jnp.asarray(global_bias), float(reg), float(bias_reg), window=window)
    f, b = np.asarray(f)[:n_rows], np.asarray(b)[:n_rows]
    if not (np.isfinite(f).all() and np.isfinite(b).all()):
        raise ValueError(f"the ridge systems are singular (reg={reg}, bias_reg={bias_reg}); "
                         "use reg > 0")
    return f, b


@partial(jax.jit, static_argnames=("window",))
def _posterior_means(side, other_factors, other_bias, mu, tau, prior_mean, prior_prec, *,
                     window):
    zeros = jnp.zeros((side.n_rows, other_factors.shape[2] + 1), other_factors.dtype)

    def one(sample):  # the draw with ε = 0 is the conditional mean m = P⁻¹ rhs
        F, b, m, t, pm, pp = sample
        f, bias, _ = sample_side(None, side, F, b, m, t, pm, pp, window=window,
                                 solver="rowwise", with_sse=False, eps=zeros)
        return f, bias

    return lax.map(one, (other_factors, other_bias, mu, tau, prior_mean, prior_prec))


def posterior_mean_rows(other_factors, other_bias, global_bias, tau, prior_mean, prior_prec,
                        rows, cols, vals, n_rows):
    """Per-sample conditional posterior means of R rows (module docstring), NumPy.

    For each of S samples, row x = [f; b] (D = k+1) given the sample's other side
    (g_jˢ, b_jˢ), μ_s, τ_s and its row prior N(mˢ, (Λˢ)⁻¹) has the Gaussian conditional
    of :mod:`mfjax.solvers.gibbs.sampler`, whose mean is returned:

        xˢ = (Λˢ + τ_s Σ_j z_j z_jᵀ)⁻¹ (Λˢ mˢ + τ_s Σ_j (r_j − μ_s − b_jˢ) z_j),  z_j = [g_jˢ; 1].

    Args:
        other_factors: the other side's factors of each sample [S, n_other, k].
        other_bias: its biases [S, n_other].
        global_bias, tau: μ_s, τ_s [S].
        prior_mean, prior_prec: this side's mˢ [S, D] (or [S, R, D]: a prior mean per
            row, e.g. a feature prior) and Λˢ [S, D, D].
        rows, cols, vals, n_rows: the interactions, as in :func:`ridge_rows`.

    Returns:
        ``(factors [S, R, k], bias [S, R])``; a row without interactions comes back 0 (as
        in every row solve here: it scores like an unknown ID), not its prior mean.

    Raises:
        ValueError: a solved row is not finite.
    """
    dtype = np.asarray(other_factors).dtype
    rated = np.bincount(np.asarray(rows, np.int64), minlength=n_rows)[:n_rows] > 0
    rows, cols, vals, w, r_pad = _pad_rows(rows, cols, vals, n_rows)
    layout = make_layout(rows, cols, vals, n_users=r_pad, n_items=other_factors.shape[1],
                         weights=w, dtype=dtype)
    window = default_window(other_factors.shape[2], itemsize=np.dtype(dtype).itemsize)
    if np.ndim(prior_mean) == 3:  # per row: padding rows get the prior mean 0
        pm = np.asarray(prior_mean)
        prior_mean = np.concatenate([pm, np.zeros((pm.shape[0], r_pad - pm.shape[1],
                                                   pm.shape[2]), pm.dtype)], axis=1)
    args = (other_factors, other_bias, global_bias, tau, prior_mean, prior_prec)
    f, b = _posterior_means(layout.users, *(jnp.asarray(a, dtype) for a in args), window=window)
    f = np.where(rated[None, :, None], np.asarray(f)[:, :n_rows], 0)
    b = np.where(rated[None], np.asarray(b)[:, :n_rows], 0)
    if not (np.isfinite(f).all() and np.isfinite(b).all()):
        raise ValueError("the per-sample posterior means are not finite (singular prior "
                         "precision or overflowing ratings)")
    return f, b


def checked_rows(f, hp, vals):
    """``f``, or a ValueError naming the cause when an implicit row solve is not finite."""
    f = np.asarray(f)
    if not np.isfinite(f).all():
        top = float(np.max(vals, initial=0.0)) if vals is not None and np.size(vals) else 1.0
        raise ValueError(f"the solve gave a non-finite vector (reg={hp['reg']}, largest value "
                         f"{top:g}); use reg > 0 and smaller values")
    return f


def ridge_row_solve(other_f, other_b, mu, rows, cols, vals, n_rows, hp):
    bias_reg = hp["reg"] if hp["bias_reg"] is None else hp["bias_reg"]
    return ridge_rows(other_f, other_b, mu, rows, cols, vals, n_rows, reg=hp["reg"],
                      bias_reg=bias_reg)


def ridge_hyperparameters(spec) -> dict:
    """λ, λ_b of a spec with ``reg``/``bias_reg`` (``bias_reg`` None: λ, as in training),
    the ``hp`` of :func:`ridge_row_solve` and of BPR's (:mod:`mfjax.models.bpr.fold_in`)."""
    return {"reg": spec.reg, "bias_reg": spec.reg if spec.bias_reg is None else spec.bias_reg}
