"""Normal-Wishart hyperprior draws for Bayesian PMF (:mod:`mfjax.solvers.gibbs.sampler`).

Λ ~ Wishart(W, ν) by the Bartlett decomposition: with W = L Lᵀ and A lower
triangular, A_jj² ~ χ²(ν − j) (j = 0..D−1) and A_jl ~ N(0, 1) below the diagonal,
Λ = (L A)(L A)ᵀ. The posterior of (μ, Λ) given rows X [N, D] is in
:func:`sample_normal_wishart`. The χ² draws can be passed in (drawn on the host:
``jax.random.gamma`` is a rejection sampler that adds ~1 s to each compile).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["GibbsHyper", "bartlett_chi2_df", "sample_wishart", "sample_normal_wishart"]


class GibbsHyper(NamedTuple):
    """Prior hyperparameters (hashable; a static argument of the sweep).

    Attributes:
        mu0: prior mean of μ_U and μ_V (each coordinate).
        beta0: β0, the scaling of the prior precision of μ_U given Λ_U.
        nu0: ν0, Wishart degrees of freedom; None means D = k+1.
        w0: W0 = w0 · I_D, the Wishart scale.
        tau_shape, tau_rate: a0, b0 of the Gamma prior on the noise precision τ.
    """

    mu0: float = 0.0
    beta0: float = 2.0
    nu0: float | None = None
    w0: float = 1.0
    tau_shape: float = 1.0
    tau_rate: float = 1.0


def bartlett_chi2_df(df, d: int) -> np.ndarray:
    """The degrees of freedom df − j (j = 0..d−1) of the Bartlett diagonal's χ² draws [d]."""
    return np.asarray(df, np.float64) - np.arange(d)


def _bartlett(key, df, d, dtype, chi2=None, normals=None):
    """A lower-triangular A with A Aᵀ ~ Wishart(I_d, df); ``chi2`` [d]: given χ²(df − j) draws;
    ``normals`` [d, d]: given standard normals (their strict lower triangle is used)."""
    if chi2 is None or normals is None:
        kc, kn = jax.random.split(key)
    if chi2 is None:
        chi2 = 2.0 * jax.random.gamma(kc, (df - jnp.arange(d, dtype=dtype)) / 2.0, dtype=dtype)
    if normals is None:
        normals = jax.random.normal(kn, (d, d), dtype)
    A = jnp.tril(jnp.asarray(normals, dtype), -1)
    return A + jnp.diag(jnp.sqrt(chi2))


def sample_wishart(key, scale, df):
    """One draw Λ ~ Wishart(scale, df) (mean df·scale), by the Bartlett decomposition.

    With scale = L Lᵀ and A lower triangular, A_jj² ~ χ²(df − j) (j = 0..D−1)
    and A_jl ~ N(0, 1) below the diagonal, Λ = (L A)(L A)ᵀ.

    Args:
        key: PRNG key.
        scale: SPD [D, D].
        df: degrees of freedom (> D − 1).
    """
    d = scale.shape[-1]
    L = jnp.linalg.cholesky(scale)
    B = L @ _bartlett(key, jnp.asarray(df, scale.dtype), d, scale.dtype)
    return B @ B.T


def sample_normal_wishart(key, X, hyper: GibbsHyper, chi2=None, w0_inv_diag=None, normals=None):
    """Draw (μ, Λ) from the Normal-Wishart posterior given rows X [N, D].

    ``chi2`` [D]: optional χ²(ν* − j) draws for the Bartlett diagonal (ν* = ν0 + N),
    e.g. drawn on the host (:func:`bartlett_chi2_df`); default: drawn here from ``key``.
    ``normals``: optional ``(bartlett [D, D], mean [D])`` standard normals, likewise
    (with both given, ``key`` is unused and may be None).
    ``w0_inv_diag`` [D]: W0⁻¹ as a diagonal (traced), replacing ``I / hyper.w0``
    (:func:`mfjax.solvers.gibbs.sampler.scaled_w0_inv` scales it to the ratings).
    Returns (mean [D], precision [D, D]); formulas in :mod:`mfjax.solvers.gibbs.sampler`.
    """
    N, d = X.shape
    dtype = X.dtype
    nu0 = d if hyper.nu0 is None else hyper.nu0
    mu0 = jnp.full((d,), hyper.mu0, dtype)
    xbar = jnp.mean(X, axis=0)
    Xc = X - xbar[None]
    beta_n = hyper.beta0 + N
    dm = xbar - mu0
    prior = (jnp.eye(d, dtype=dtype) / hyper.w0 if w0_inv_diag is None
             else jnp.diag(jnp.asarray(w0_inv_diag, dtype)))
    W_inv = (prior + Xc.T @ Xc
             + (hyper.beta0 * N / beta_n) * jnp.outer(dm, dm))
    W_inv = 0.5 * (W_inv + W_inv.T)
    mu_n = (hyper.beta0 * mu0 + N * xbar) / beta_n
    kw, kmu = (None, None) if key is None else jax.random.split(key)
    # W* = W_inv⁻¹ = L⁻ᵀ L⁻¹ with W_inv = L Lᵀ, so M = L⁻ᵀ is a square root of W*.
    L = jnp.linalg.cholesky(W_inv)
    A = _bartlett(kw, jnp.asarray(nu0 + N, dtype), d, dtype, chi2,
                  None if normals is None else normals[0])
    B = jax.scipy.linalg.solve_triangular(L.T, A, lower=False)       # M A
    Lam = B @ B.T
    # μ ~ N(μ*, (β* B Bᵀ)⁻¹): μ* + B⁻ᵀ ε / √β*, and B⁻ᵀ = L A⁻ᵀ.
    eps = jax.random.normal(kmu, (d,), dtype) if normals is None else jnp.asarray(normals[1], dtype)
    v = jax.scipy.linalg.solve_triangular(A.T, eps, lower=False)
    mu = mu_n + (L @ v) / jnp.sqrt(beta_n)
    return mu, 0.5 * (Lam + Lam.T)
