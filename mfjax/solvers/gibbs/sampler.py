"""Bayesian PMF with biases, by Gibbs sampling (Salakhutdinov & Mnih, ICML 2008).

Model. For a rating (u, i, r) with weight w (default 1),

    r ~ N(μ + x_u·z_i', 1/(w τ))   with x_u = [p_u; b_u], z_i' = [q_i; 1]

i.e. r̂ = μ + b_u + b_i + ⟨p_u, q_i⟩ as in :mod:`mfjax.objectives.explicit`. The global mean μ
is *fixed* (at the weighted training mean by :func:`gibbs_init`), not sampled.
Rows are D = k+1 vectors (factors with the bias appended):

    x_u ~ N(μ_U, Λ_U⁻¹),   y_i = [q_i; b_i] ~ N(μ_V, Λ_V⁻¹),
    (μ_U, Λ_U) ~ N(μ_U | μ0, (β0 Λ_U)⁻¹) · Wishart(Λ_U | W0, ν0), items alike,
    τ ~ Gamma(a0, b0)  (shape, rate).

Defaults (:class:`GibbsHyper`): μ0 = 0, β0 = 2, ν0 = D = k+1, W0 = I_D,
a0 = b0 = 1 — the paper's choices, with the bias as one more coordinate.

Rating scale. Those priors suit ratings of unit spread (1-5 stars). For ratings of
spread s (``fit`` passes their standard deviation, :func:`rating_scale`), the sweep
takes ``scale=s`` and uses the priors that the unit-spread model implies for ratings
multiplied by s: with r = s r', p = √s p', b = s b' and τ = τ'/s², i.e. x = D x' with
D = diag(√s, …, √s, s),

    W0 = w0 D⁻² = w0 diag(1/s, …, 1/s, 1/s²),   b0 → b0 s²   (a0, β0, ν0, μ0 = 0 unchanged).

So the posterior of data × c is the posterior of the data, scaled (up to float
rounding and the initial factors): RMSE / s no longer depends on the unit of the
ratings (with W0 = I, ratings × 100 had RMSE/s 0.90 where × 1 had 0.35).

Conditionals (one sweep samples them in this order, all in one jitted call):

* τ | rest ~ Gamma(a0 + ½ Σ w, b0 + ½ Σ w e²), e the residuals.
* (μ_U, Λ_U) | X: with N rows (all of them, rated or not), x̄ their mean and
  S = (1/N) Σ (x − x̄)(x − x̄)ᵀ,
  β* = β0 + N, ν* = ν0 + N, μ* = (β0 μ0 + N x̄)/β*,
  W*⁻¹ = W0⁻¹ + N S + (β0 N/β*)(x̄ − μ0)(x̄ − μ0)ᵀ;
  Λ_U ~ Wishart(W*, ν*), μ_U ~ N(μ*, (β* Λ_U)⁻¹). Same for items.
* x_u | rest ~ N(m_u, P_u⁻¹) with t = r − μ − b_i,
  P_u = Λ_U + τ Σ_{i∈I_u} w z_i zᵢᵀ,  m_u = P_u⁻¹ (Λ_U μ_U + τ Σ w t z_i);
  drawn as m_u + L_u⁻ᵀ ε, P_u = L_u L_uᵀ. Then items given the new users.

The Wishart draw is the Bartlett decomposition (:func:`sample_wishart`).

Rows are processed like :mod:`mfjax.solvers.als.sweep` (chunks of rows, windows of ratings,
``segment_sum`` Gram matrices, one Cholesky per row under ``lax.map`` — see
that module for the jaxlib 0.10 CPU batched-LAPACK deadlock this avoids). The
squared error for τ comes from the item half-step's statistics
(Σ w (t − zᵀy)² = s − 2 yᵀh + yᵀ G y), so a sweep is two passes over the data.

Averaging. The posterior-mean prediction over S samples,
(1/S) Σ_s r̂_s(u, i), is exactly the prediction of one rank k·S model whose
factors are the samples' factors concatenated and scaled by 1/√S, with the
biases and μ averaged: :func:`mfjax.solvers.gibbs.chain.average_params`. :func:`~mfjax.solvers.gibbs.chain.predictive_std` gives the
spread of the S predictions, optionally with the noise 1/τ added.

Memory trade: :func:`mfjax.solvers.gibbs.chain.gibbs_sample` keeps the kept samples on the *host* as a
stacked NumPy :class:`Params` (S·(n_users + n_items)·(k+1) numbers: ML-1M,
k = 32, S = 100: 0.26 GB in float64; ML-20M, k = 64, S = 100: 8.6 GB), which
allows any query (std for arbitrary pairs, a later re-average) afterwards.
When that is too much, pass ``keep=False`` and a ``query`` of (users, items):
then only the running sum of the averaged model's parameters and Welford
moments of the query predictions are kept (O(model + query) memory); the
rank k·S model can then not be rebuilt, but the averaged biases and the mean
prediction of every query pair are exact.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ...kernels import als as als_kernel
from ..als.layout import Layout, SideLayout, squared_error
from ..als.sweep import chunk_stats, default_window, side_stats, solve_spd
from ...objectives.explicit import Params
from .wishart import GibbsHyper, bartlett_chi2_df, sample_normal_wishart, sample_wishart

__all__ = [
    "GibbsHyper",
    "GibbsState",
    "SweepDraws",
    "host_draws",
    "sample_side",
    "side_normals",
    "sample_wishart",
    "sample_normal_wishart",
    "row_conditional",
    "gibbs_init",
    "gibbs_sweep",
    "rating_scale",
    "scaled_w0_inv",
]


class GibbsState(NamedTuple):
    """The chain's state (a pytree).

    Attributes:
        params: current sample (global_bias fixed).
        tau: noise precision τ [].
        sse: Σ w e² at ``params`` [] (carried so τ needs no extra pass).
        user_mean, user_prec: μ_U [D], Λ_U [D, D] (last drawn).
        item_mean, item_prec: μ_V, Λ_V.
    """

    params: Params
    tau: jax.Array
    sse: jax.Array
    user_mean: jax.Array
    user_prec: jax.Array
    item_mean: jax.Array
    item_prec: jax.Array


def row_conditional(side: SideLayout, other_factors, other_bias, mu, tau, prior_mean, prior_prec,
                    *, window: int = 256):
    """The Gaussian conditional of every row of one side (for tests and small problems).

    Returns (means [n, D], precisions [n, D, D]) of x = [p; b] given the other
    side's rows, μ, τ and the prior N(prior_mean, prior_prec⁻¹).
    """
    G, h, _, _ = side_stats(side, other_factors, other_bias, mu, window=window)
    P = prior_prec[None] + tau * G
    rhs = (prior_prec @ prior_mean)[None] + tau * h
    return solve_spd(P, rhs, solver="rowwise"), P


def side_normals(key, side: SideLayout, D: int, dtype):
    """The standard normals ε [n_rows, D] of one half-sweep: chunk c of ``rows_per_chunk``
    rows draws ``normal(fold_in(key, c))``, so both routes draw the same numbers."""
    R, n_chunks = side.rows_per_chunk, side.chunk_lo.shape[0]
    draw = lambda c: jax.random.normal(jax.random.fold_in(key, c), (R, D), dtype)
    return jax.vmap(draw)(jnp.arange(n_chunks)).reshape(n_chunks * R, D)[: side.n_rows]


def sample_side(key, side: SideLayout, other_factors, other_bias, mu, tau, prior_mean, prior_prec,
                 *, window, solver, with_sse, kernel_threads: int = 0, eps=None):
    """Draw every row of one side from its conditional (module docstring).

    Returns ``(factors [n, k], bias [n], sse [])``; sse = Σ w e² at the new rows when
    ``with_sse`` (the kernel always computes it), else 0. ``eps`` [n, D]: the standard
    normals of the draws (default: :func:`side_normals` of ``key``). ``kernel_threads`` > 0
    draws with the C++ kernel (:func:`mfjax.kernels.als.gibbs_call`) from the same normals.
    ``prior_mean`` is [D], or [n, D] for a prior mean per row (a feature prior).
    """
    dtype = other_factors.dtype
    k = other_factors.shape[1]
    D = k + 1
    R = side.rows_per_chunk
    n_chunks = side.chunk_lo.shape[0]
    per_row = jnp.ndim(prior_mean) == 2
    prior_rhs = prior_mean @ prior_prec.T if per_row else prior_prec @ prior_mean
    if eps is None:
        eps = side_normals(key, side, D, dtype)
    eps = jnp.asarray(eps, dtype)
    if kernel_threads:
        return als_kernel.gibbs_call(side, other_factors, other_bias, mu, tau, prior_prec,
                                     prior_rhs, eps, n_threads=kernel_threads)
    by_chunk = lambda a: jnp.pad(a, ((0, n_chunks * R - side.n_rows), (0, 0))).reshape(n_chunks, R, D)
    eps = by_chunk(eps)
    rhs_rows = by_chunk(prior_rhs) if per_row else None

    def draw(args):
        P, rhs, eps = args
        L = jnp.linalg.cholesky(P)
        m = jax.scipy.linalg.cho_solve((L, True), rhs)
        return m + jax.scipy.linalg.solve_triangular(L.T, eps, lower=False)

    def per_chunk(c):
        G, h, _, sq = chunk_stats(side, other_factors, other_bias, mu, c, window, with_sse)
        P = prior_prec[None] + tau * G
        rhs = (rhs_rows[c] if per_row else prior_rhs[None]) + tau * h
        if solver == "rowwise":
            x = lax.map(draw, (P, rhs, eps[c]))
        elif solver == "vmap":
            x = jax.vmap(draw)((P, rhs, eps[c]))
        else:
            raise ValueError(f"solver must be 'rowwise' or 'vmap', got {solver!r}")
        sse = jnp.zeros((), dtype)
        if with_sse:
            rows = c * R + jnp.arange(R)
            live = rows < side.n_rows
            q = jnp.sum(sq - 2 * jnp.sum(x * h, 1) + jnp.einsum("rd,rde,re->r", x, G, x), where=live)
            sse = q
        return x, sse

    x, sse = lax.map(per_chunk, jnp.arange(n_chunks))
    x = x.reshape(n_chunks * R, D)[: side.n_rows]
    return x[:, :k], x[:, k], jnp.sum(sse)


def gibbs_init(params: Params, layout: Layout, *, tau: float = 1.0, mean: float | None = None,
               scale: float = 1.0) -> GibbsState:
    """A chain state starting at ``params`` (e.g. random, or an ALS fit).

    μ is set to ``mean`` or, by default, the weighted training mean, and stays
    fixed. The hyperparameters start at μ = 0, Λ = I (they are drawn first
    thing in each sweep, so these values only matter for inspection). ``scale``:
    the ratings' spread s (as in :func:`gibbs_sweep`); the factors (and biases) are
    multiplied by √s (and s), so a random start has the same size relative to the
    ratings whatever their unit.
    """
    dtype = params.user_factors.dtype
    if scale != 1.0:  # on the host: eager device ops would each compile a program
        root = float(np.sqrt(scale))
        mult = lambda x, c: jax.device_put((np.asarray(x) * c).astype(dtype))
        params = params._replace(user_factors=mult(params.user_factors, root),
                                 item_factors=mult(params.item_factors, root),
                                 user_bias=mult(params.user_bias, scale),
                                 item_bias=mult(params.item_bias, scale))
    if mean is None:
        w = np.asarray(layout.users.weights, np.float64)
        r = np.asarray(layout.users.ratings, np.float64)
        mean = float(np.sum(w * r) / max(np.sum(w), 1e-300))
    params = params._replace(global_bias=jax.device_put(np.asarray(mean, dtype)))
    sse = _squared_error(params, layout)
    d = params.rank + 1
    eye = jax.device_put(np.eye(d, dtype=dtype))
    zero = jax.device_put(np.zeros((d,), dtype))
    return GibbsState(params, jnp.asarray(tau, dtype), sse, zero, eye, zero, eye)


_squared_error = jax.jit(squared_error)


class SweepDraws(NamedTuple):
    """One sweep's random numbers, drawn on the host (:func:`host_draws`).

    Attributes:
        gamma: g ~ Gamma(a0 + ½ Σ w, 1) (then τ = g / (b0 + ½ SSE)) [].
        chi2_users, chi2_items: the Bartlett χ²(ν0 + N − j) draws of each side [D].
        bartlett_users, bartlett_items: standard normals [D, D] (strict lower triangle used).
        mean_users, mean_items: standard normals for μ_U, μ_V [D].
        eps_users [n_users, D], eps_items [n_items, D]: standard normals of the row draws.
    """

    gamma: np.ndarray
    chi2_users: np.ndarray
    chi2_items: np.ndarray
    bartlett_users: np.ndarray
    bartlett_items: np.ndarray
    mean_users: np.ndarray
    mean_items: np.ndarray
    eps_users: np.ndarray
    eps_items: np.ndarray


def host_draws(rng: np.random.Generator, layout: Layout, rank: int,
               hyper: GibbsHyper = GibbsHyper(), n_eff: float | None = None,
               dtype=np.float32) -> SweepDraws:
    """Every random number of one sweep, from ``rng`` on the host (:class:`SweepDraws`).

    Drawing them here keeps the PRNG out of the compiled sweep (``jax.random`` added
    ~0.7 s to its compile on ML-100K, ``jax.random.gamma`` ~2 s more), and the XLA and
    kernel routes draw their rows from the same numbers. ``n_eff``: Σ w if known (else
    read from the layout, a device-to-host copy). Cost: (n_users + n_items)·(k+1)
    normals a sweep (ML-100K, k = 10: 0.3 ms).
    """
    d = rank + 1
    nu0 = d if hyper.nu0 is None else hyper.nu0
    if n_eff is None:
        n_eff = float(np.sum(np.asarray(layout.items.weights, np.float64)))
    dtype = np.dtype(dtype)
    normal = lambda *shape: rng.standard_normal(shape, dtype=dtype)
    g = rng.gamma(hyper.tau_shape + 0.5 * n_eff)
    chi = lambda n: rng.chisquare(bartlett_chi2_df(nu0 + n, d)).astype(dtype)
    chi_u, chi_v = chi(layout.n_users), chi(layout.n_items)
    return SweepDraws(np.asarray(g, dtype), chi_u, chi_v, normal(d, d), normal(d, d), normal(d),
                      normal(d), normal(layout.n_users, d), normal(layout.n_items, d))


def rating_scale(ratings) -> float:
    """s, the spread the priors are scaled to: the ratings' standard deviation (1 when it
    is 0 or not finite, e.g. all ratings equal)."""
    r = np.asarray(ratings, np.float64)
    s = float(np.std(r)) if r.size else 0.0
    return s if np.isfinite(s) and s > 0 else 1.0


def scaled_w0_inv(hyper: GibbsHyper, rank: int, scale, dtype):
    """W0⁻¹ [D] as a diagonal for ratings of spread ``scale`` (module docstring)."""
    s = jnp.asarray(scale, dtype)
    return jnp.concatenate([jnp.full((rank,), s, dtype), s[None] * s]) / hyper.w0


@partial(jax.jit, static_argnames=("hyper", "window", "solver", "kernel_threads"))
def gibbs_sweep(state: GibbsState, layout: Layout, key, sweep, *, hyper: GibbsHyper = GibbsHyper(),
                window: int | None = None, solver: str = "rowwise", draws: SweepDraws | None = None,
                scale=1.0, kernel_threads: int = 0) -> GibbsState:
    """One Gibbs sweep: τ, then (μ_U, Λ_U) and (μ_V, Λ_V), then all users, then all items.

    Args:
        state: from :func:`gibbs_init` or the previous sweep.
        layout: from :func:`mfjax.solvers.als.layout.make_layout`.
        key: the chain's base PRNG key; this sweep uses ``fold_in(key, sweep)``,
            so a chain is reproducible from (key, sweep numbers). Unused (may be None)
            with ``draws``.
        sweep: the sweep number (traced).
        hyper: prior hyperparameters (static).
        window: ratings per Gram window (static); default from the rank.
        solver: "rowwise" (default, safe on jaxlib 0.10 CPU) or "vmap".
        draws: every random number of the sweep, drawn on the host (:func:`host_draws`;
            what ``fit`` does): no PRNG is compiled into the sweep. None: drawn here from
            ``key`` (``jax.random.gamma`` costs ~2 s more compile).
        scale: the ratings' spread s (traced; :func:`rating_scale`): the priors are
            scaled to it (module docstring). 1 gives the unscaled priors.
        kernel_threads: > 0 draws the rows with the C++ kernel on that many threads
            (static; the same normals and draws as XLA, up to rounding); 0: XLA.

    Returns:
        The next :class:`GibbsState`.
    """
    p = state.params
    dtype = p.user_factors.dtype
    if window is None:
        window = default_window(p.rank, itemsize=dtype.itemsize)
    scale = jnp.asarray(scale, dtype)
    rate = hyper.tau_rate * scale * scale + 0.5 * jnp.maximum(state.sse, 0)
    if draws is None:
        kt, ku_h, ki_h, ku, ki = jax.random.split(jax.random.fold_in(key, sweep), 5)
        n_eff = jnp.sum(layout.items.weights.astype(dtype))
        g = jax.random.gamma(kt, hyper.tau_shape + 0.5 * n_eff, dtype=dtype)
        chi_u = chi_v = normals_u = normals_v = eps_u = eps_v = None
    else:
        ku_h = ki_h = ku = ki = None
        d = jax.tree.map(lambda x: jnp.asarray(x, dtype), draws)
        g, chi_u, chi_v, eps_u, eps_v = d.gamma, d.chi2_users, d.chi2_items, d.eps_users, d.eps_items
        normals_u, normals_v = (d.bartlett_users, d.mean_users), (d.bartlett_items, d.mean_items)
    tau = g / rate
    X = jnp.concatenate([p.user_factors, p.user_bias[:, None]], 1)
    Y = jnp.concatenate([p.item_factors, p.item_bias[:, None]], 1)
    w0_inv = scaled_w0_inv(hyper, p.rank, scale, dtype)
    mu_u, lam_u = sample_normal_wishart(ku_h, X, hyper, chi_u, w0_inv, normals_u)
    mu_v, lam_v = sample_normal_wishart(ki_h, Y, hyper, chi_v, w0_inv, normals_v)
    kw = dict(window=window, solver=solver, kernel_threads=kernel_threads)
    P, bu, _ = sample_side(ku, layout.users, p.item_factors, p.item_bias, p.global_bias, tau,
                            mu_u, lam_u, with_sse=False, eps=eps_u, **kw)
    Q, bi, sse = sample_side(ki, layout.items, P, bu, p.global_bias, tau, mu_v, lam_v,
                              with_sse=True, eps=eps_v, **kw)
    return GibbsState(Params(P, Q, bu, bi, p.global_bias), tau, sse, mu_u, lam_u, mu_v, lam_v)
