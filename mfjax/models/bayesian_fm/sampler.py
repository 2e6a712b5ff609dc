"""Bayesian factorization machine over relation blocks, by block Gibbs sampling.

Model. A rating (u, i, r) with the feature rows x_u [D_U], x_i [D_I]
(:mod:`mfjax.solvers.fm_blocks`) and K = k + 1 (factors, then the bias):

    r ~ N(w0 + b_u + b_i + ⟨p_u, q_i⟩, 1/τ),    θ_u = [p_u; b_u],  θ_i = [q_i; b_i],
    θ_u = v_u + B_Uᵀ x_u,    θ_i = v_i + B_Iᵀ x_i,

i.e. the FM y = w0 + Σ_j w_j x_j + Σ_{j<l} ⟨v_j, v_l⟩ x_j x_l on the design row
[e_u | x_u | e_i | x_i] whose pairs are the user-side × item-side ones (the rows
of B_U, B_I are the features' [v_j; w_j]; v_u, v_i the ID one-hots'). The pairs
inside one side would only add a per-row constant, which the row's own bias b_u
already is (:func:`mfjax.models.bayesian_fm.fm.block_predict`). Without features it
is biased Bayesian PMF with a diagonal (per-dimension) prior.

Priors (grouped, as in myFM; per dimension d = 0..k):

    v_u,d ~ N(μ_U,d, 1/λ_U,d),   B_jd ~ N(μ_gd, 1/α_gd)  (g the group of feature j),
    (μ, λ) ~ NormalGamma(μ0, β0, a0, b0) for each of them, τ ~ Gamma(a0_τ, b0_τ).

Blocking (Macau, Simm et al. 2015): θ and B are sampled, not v. Conditionals:

* τ ~ Gamma(a0_τ + n/2, b0_τ + ½ Σ e²).
* (μ, λ) of a set of n values x: λ ~ Gamma(a0 + n/2, b0 + ½ Σ (x − x̄)² +
  β0 n (x̄ − μ0)² / (2(β0 + n))), μ ~ N((β0 μ0 + n x̄)/(β0 + n), 1/((β0 + n) λ)).
  The ID prior uses x = v = θ − Bᵀx, a group's uses its rows of B.
* B | θ is a regression of E = θ − μ_U on X with noise precision λ_U,d per
  dimension; chunk c of columns (one group g) given the others is Gaussian with

      precision  H_cd = λ_d G_cc + α_gd I,     G_cc = X_cᵀ X_c = U diag(s) Uᵀ,
      H_cd m_cd = λ_d (X_cᵀ F_d + G_cc B_cd) + α_gd μ_gd,   F = E − X B (cached),

  drawn as B_cd = U (Uᵀ H m / h + ε / √h), h = λ_d s + α_gd, ε ~ N(0, I); F is then
  updated by the chunk's change (myFM's residual caching, per chunk of columns).
* θ_u | B: N(m_u, P_u⁻¹) with P_u = Λ_U + τ Σ_i z_i z_iᵀ, z_i = [q_i; 1],
  m_u = P_u⁻¹ (Λ_U (μ_U + B_Uᵀ x_u) + τ Σ_i (r − w0 − b_i) z_i): Bayesian PMF's row
  draw with a prior mean per row (:func:`mfjax.solvers.gibbs.sampler.sample_side`, or
  its C++ kernel), so no per-rating array is formed. Items alike.

A sweep: τ, then the users' (μ, λ), group priors, B_U, rows; then the items'. w0
is fixed at the training mean. Every random number comes from the host
(:class:`FMDraws`), so nothing is drawn inside the compiled sweep.
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ...objectives.explicit import Params
from ...solvers.als.layout import Layout
from ...solvers.gibbs.sampler import sample_side
from ...solvers.fm_blocks import SideBlocks

__all__ = ["FMHyper", "FMChain", "FMDraws", "normal_gamma", "row_features", "chunk_draw",
           "draw_coefficients", "fm_sweep", "fm_draws", "fm_init"]


class FMHyper(NamedTuple):
    """Hyperprior constants (static): NormalGamma(mu0, beta0, a0, b0) for every (μ, λ)
    and Gamma(tau_shape, tau_rate) for τ (myFM's defaults)."""

    mu0: float = 0.0
    beta0: float = 1.0
    a0: float = 1.0
    b0: float = 1.0
    tau_shape: float = 1.0
    tau_rate: float = 1.0


class FMChain(NamedTuple):
    """The chain (a pytree). ``params`` holds θ (the rows' full vectors).

    Attributes:
        params: current sample (global_bias w0 fixed).
        tau, sse: noise precision, Σ e² at ``params``.
        user_coef, item_coef: B_U [D_U, K], B_I [D_I, K] (D = 0 without features).
        user_rows, item_rows: m = X B [n, K], the rows' feature terms ([0, K] without).
        user_mean, user_prec, item_mean, item_prec: the ID priors' μ, λ [K].
        user_group_mean, user_group_prec: [G_U, K] ([0, K] without features); items alike.
    """

    params: Params
    tau: jax.Array
    sse: jax.Array
    user_coef: jax.Array
    item_coef: jax.Array
    user_rows: jax.Array
    item_rows: jax.Array
    user_mean: jax.Array
    user_prec: jax.Array
    item_mean: jax.Array
    item_prec: jax.Array
    user_group_mean: jax.Array
    user_group_prec: jax.Array
    item_group_mean: jax.Array
    item_group_prec: jax.Array


class FMDraws(NamedTuple):
    """One sweep's random numbers (:func:`fm_draws`): ``tau`` ~ Gamma(a0_τ + n/2, 1);
    per side ``gamma_*`` ~ Gamma(a0 + n/2, 1) [K] and ``normal_*`` [K] for the ID prior,
    ``group_gamma_*`` / ``group_normal_*`` [G, K] for the group priors, ``coef_*`` [D, K]
    and ``eps_*`` [n, K] standard normals for B and the rows."""

    tau: np.ndarray
    gamma_users: np.ndarray
    normal_users: np.ndarray
    group_gamma_users: np.ndarray
    group_normal_users: np.ndarray
    coef_users: np.ndarray
    eps_users: np.ndarray
    gamma_items: np.ndarray
    normal_items: np.ndarray
    group_gamma_items: np.ndarray
    group_normal_items: np.ndarray
    coef_items: np.ndarray
    eps_items: np.ndarray


def fm_draws(rng: np.random.Generator, n_ratings: int, n_users: int, n_items: int, K: int,
             user_groups, item_groups, hyper: FMHyper = FMHyper(), dtype=np.float32) -> FMDraws:
    """Every random number of one sweep, from ``rng`` on the host.

    Args:
        user_groups, item_groups: ``(sizes int [G], D)`` of each side's blocks (the real
            columns of each group and the padded column count; ``([], 0)`` without).
    """
    normal = lambda *s: rng.standard_normal(s).astype(dtype)
    gam = lambda n: rng.gamma(hyper.a0 + 0.5 * np.asarray(n, np.float64)).astype(dtype)

    def side(n, groups):
        sizes, D = np.asarray(groups[0], np.float64), int(groups[1])
        return (gam(np.full(K, n)), normal(K), gam(np.repeat(sizes[:, None], K, 1)),
                normal(len(sizes), K), normal(D, K), normal(n, K))

    tau = np.asarray(rng.gamma(hyper.tau_shape + 0.5 * n_ratings), dtype)
    return FMDraws(tau, *side(n_users, user_groups), *side(n_items, item_groups))


def normal_gamma(x, seg, weight, n_seg: int, gamma, normal, hyper: FMHyper):
    """Draw (μ [S, K], λ [S, K]) of S segments of rows of ``x`` [n, K] (module docstring).

    Args:
        seg: int [n], the segment of each row; weight: [n], 1 for a member, 0 to ignore.
        gamma: Gamma(a0 + n_s/2, 1) draws [S, K] (n_s the segment's members);
            normal: standard normals [S, K].
    """
    ss = partial(jax.ops.segment_sum, segment_ids=seg, num_segments=n_seg)
    n = ss(weight)[:, None]
    xbar = ss(weight[:, None] * x) / jnp.maximum(n, 1)
    dev = ss(weight[:, None] * (x - xbar[seg]) ** 2)
    beta_n = hyper.beta0 + n
    rate = hyper.b0 + 0.5 * dev + 0.5 * hyper.beta0 * n * (xbar - hyper.mu0) ** 2 / beta_n
    prec = gamma / rate
    mean = (hyper.beta0 * hyper.mu0 + n * xbar) / beta_n + normal / jnp.sqrt(beta_n * prec)
    return mean, prec


def row_features(blocks: SideBlocks, coef):
    """m = X B [n_rows, K], each distinct row once (the relation-block evaluation)."""
    return jax.ops.segment_sum(blocks.vals[:, None] * coef[blocks.cols], blocks.rows,
                               num_segments=blocks.n_rows, indices_are_sorted=True)


def _windows(blocks: SideBlocks, c, body, init):
    """Fold ``body(acc, rows, local, vals)`` over chunk c's CSC entries, ``window`` at a time
    (entries past the chunk have value 0 and the last local column, so ``local`` is sorted)."""
    lo, hi, W = blocks.chunk_lo[c], blocks.chunk_hi[c], blocks.window
    nnz = blocks.c_rows.shape[0]

    def step(j, acc):
        pos = lo + j * W + jnp.arange(W, dtype=lo.dtype)
        live = pos < hi
        pos = jnp.minimum(pos, nnz - 1)
        vals = jnp.where(live, blocks.c_vals[pos], 0)
        local = jnp.where(live, blocks.c_local[pos], blocks.chunk - 1)   # stays sorted
        return body(acc, blocks.c_rows[pos], local, vals)

    return lax.fori_loop(0, (hi - lo + W - 1) // W, step, init)


def chunk_draw(U, s, rhs_data, coef_c, prec, group_mean, group_prec, eps):
    """Chunk c's draw of B_c [chunk, K] given the rest (module docstring).

    Args:
        U [chunk, chunk], s [chunk]: G_cc's eigendecomposition.
        rhs_data: X_cᵀ F [chunk, K] (F the regression residuals at the current B).
        coef_c: the current B_c [chunk, K]; prec: λ [K]; group_mean, group_prec: μ_g, α_g [K].
        eps: standard normals [chunk, K] (zeros give the conditional mean).
    """
    G_b = U @ (s[:, None] * (U.T @ coef_c))
    rhs = prec[None] * (rhs_data + G_b) + (group_prec * group_mean)[None]
    h = prec[None] * s[:, None] + group_prec[None]
    return U @ ((U.T @ rhs) / h + eps / jnp.sqrt(h))


def draw_coefficients(blocks: SideBlocks, theta, mean, prec, coef, m, group_mean, group_prec,
                      eps):
    """B | θ, chunk after chunk (one Gibbs pass over the chunks; module docstring).

    Args:
        theta [n_rows, K]; mean, prec: the ID prior's μ, λ [K]; coef: B [D, K];
        m: X B [n_rows, K] at the current B; group_mean, group_prec [G, K];
        eps [D, K] standard normals.

    Returns:
        ``(B [D, K], m [n_rows, K])`` at the new B (padding columns 0); m = θ − μ − F
        from the cached residuals, so it costs no extra pass over X.
    """
    C, K = blocks.chunk, theta.shape[1]
    F = theta - mean[None] - m

    def per_chunk(c, carry):
        F, coef = carry
        xtf = _windows(blocks, c, lambda acc, r, l, v: acc + jax.ops.segment_sum(
            v[:, None] * F[r], l, num_segments=C, indices_are_sorted=True),
            jnp.zeros((C, K), F.dtype))
        old = lax.dynamic_slice_in_dim(coef, c * C, C)
        g = blocks.chunk_group[c]
        new = chunk_draw(blocks.basis[c], blocks.spectrum[c], xtf, old, prec, group_mean[g],
                         group_prec[g], lax.dynamic_slice_in_dim(eps, c * C, C))
        new = new * lax.dynamic_slice_in_dim(blocks.column_mask, c * C, C)[:, None]
        delta = new - old
        F = _windows(blocks, c, lambda acc, r, l, v: acc.at[r].add(-v[:, None] * delta[l]), F)
        return F, lax.dynamic_update_slice_in_dim(coef, new, c * C, 0)

    F, coef = lax.fori_loop(0, blocks.chunk_lo.shape[0], per_chunk, (F, coef))
    return coef, theta - mean[None] - F


def _draw_side(side, blocks, theta, coef, m, gmean, gprec, other_F, other_b, mu, tau,
               gamma, normal, g_gamma, g_normal, coef_eps, eps, *, hyper, window, kernel_threads,
               with_sse):
    """One side's half-sweep: (μ, λ), group priors, B, then the rows (m = X B carried in
    the chain). Returns (θ [n, K], B, m, μ, λ, group μ, group λ, sse)."""
    n, K = theta.shape
    one = jnp.ones((n,), theta.dtype)
    zero = jnp.zeros((n,), jnp.int32)
    resid = theta if blocks is None else theta - m
    mean, prec = normal_gamma(resid, zero, one, 1, gamma[None], normal[None], hyper)
    mean, prec = mean[0], prec[0]
    prior = mean
    if blocks is not None:
        gmean, gprec = normal_gamma(coef, blocks.column_group, blocks.column_mask,
                                    blocks.n_groups, g_gamma, g_normal, hyper)
        coef, m = draw_coefficients(blocks, theta, mean, prec, coef, m, gmean, gprec, coef_eps)
        prior = mean[None] + m                      # θ_u ~ N(μ + B_Uᵀx_u, Λ⁻¹) a priori
    F, b, sse = sample_side(None, side, other_F, other_b, mu, tau, prior, jnp.diag(prec),
                            window=window, solver="rowwise", with_sse=with_sse,
                            kernel_threads=kernel_threads, eps=eps)
    return jnp.concatenate([F, b[:, None]], 1), coef, m, mean, prec, gmean, gprec, sse


@partial(jax.jit, static_argnames=("hyper", "window", "kernel_threads"))
def fm_sweep(chain: FMChain, layout: Layout, user_blocks: SideBlocks | None,
             item_blocks: SideBlocks | None, draws: FMDraws, *, hyper: FMHyper = FMHyper(),
             window: int = 256, kernel_threads: int = 0) -> FMChain:
    """One sweep (module docstring); ``kernel_threads`` > 0 draws the rows with the C++
    kernel of Bayesian PMF (same normals)."""
    p = chain.params
    dtype = p.user_factors.dtype
    d = jax.tree.map(lambda x: jnp.asarray(x, dtype), draws)
    tau = d.tau / (hyper.tau_rate + 0.5 * jnp.maximum(chain.sse, 0))
    kw = dict(hyper=hyper, window=window, kernel_threads=kernel_threads)
    th_u = jnp.concatenate([p.user_factors, p.user_bias[:, None]], 1)
    th_i = jnp.concatenate([p.item_factors, p.item_bias[:, None]], 1)
    th_u, cu, mr_u, mu_u, lu, gmu_u, glu, _ = _draw_side(
        layout.users, user_blocks, th_u, chain.user_coef, chain.user_rows, chain.user_group_mean,
        chain.user_group_prec, p.item_factors, p.item_bias, p.global_bias, tau, d.gamma_users,
        d.normal_users, d.group_gamma_users, d.group_normal_users, d.coef_users, d.eps_users,
        with_sse=False, **kw)
    k = p.rank
    th_i, ci, mr_i, mu_i, li, gmu_i, gli, sse = _draw_side(
        layout.items, item_blocks, th_i, chain.item_coef, chain.item_rows, chain.item_group_mean,
        chain.item_group_prec, th_u[:, :k], th_u[:, k], p.global_bias, tau, d.gamma_items,
        d.normal_items, d.group_gamma_items, d.group_normal_items, d.coef_items, d.eps_items,
        with_sse=True, **kw)
    params = Params(th_u[:, :k], th_i[:, :k], th_u[:, k], th_i[:, k], p.global_bias)
    return FMChain(params, tau, sse, cu, ci, mr_u, mr_i, mu_u, lu, mu_i, li, gmu_u, glu, gmu_i,
                   gli)


def fm_init(params: Params, sse, user_blocks: SideBlocks | None,
            item_blocks: SideBlocks | None) -> FMChain:
    """A chain at ``params`` (θ) with B = 0 (so m = 0), μ = 0, λ = 1, τ = 1 (host arrays
    placed)."""
    dtype = np.dtype(params.user_factors.dtype)
    K = params.rank + 1
    put = lambda *s, v=0.0: jax.device_put(np.full(s, v, dtype))
    D = lambda b: 0 if b is None else b.n_columns
    G = lambda b: 0 if b is None else b.n_groups
    rows = lambda b, n: put(0 if b is None else n, K)
    return FMChain(params, put(v=1.0), sse, put(D(user_blocks), K), put(D(item_blocks), K),
                   rows(user_blocks, params.user_factors.shape[0]),
                   rows(item_blocks, params.item_factors.shape[0]),
                   put(K), put(K, v=1.0), put(K), put(K, v=1.0),
                   put(G(user_blocks), K), put(G(user_blocks), K, v=1.0),
                   put(G(item_blocks), K), put(G(item_blocks), K, v=1.0))
