"""WARP for :class:`mfjax.BPR` (``loss="warp"``): the weighted approximate-rank pairwise loss.

WARP (Weston, Bengio & Usunier 2011, as LightFM implements it) scores like BPR,
``ŝ(u, i) = b_i + <p_u, q_i>``. For a positive (u, i) it tries negatives j_1, j_2, ...
(uniform over u's unseen items) until one violates the margin, ŝ(u, j) > ŝ(u, i) − 1,
up to ``max_sampled`` tries. If the N-th try violates, the triple (u, i, j_N) gets the
rank weight

    r_N = log max(1, ⌊(n_items − 1) / N⌋)

(few tries: i is ranked low, a large step), else the positive is skipped. Vectorized
(:func:`warp_negatives`): every positive draws a fixed block of ``max_sampled``
negatives at once, the first violator is ``argmax`` of the violation mask, no loop.

Given the chosen negatives and weights, the objective over the triples T is, with
x_uij = <p_u, q_i − q_j> + b_i − b_j,

    L = Σ_(u,i,j)∈T w [ r max(0, 1 − x_uij) + ½ λ (‖p_u‖² + ‖q_i‖² + ‖q_j‖²)
                        + ½ λ_b (b_i² + b_j²) ]

(w: 0 for padding and skipped positives). With g = −r·1[x < 1] = ∂(r max(0, 1 − x))/∂x
one triple's gradient has BPR's form (:mod:`mfjax.models.bpr.objective`)::

    ∂p_u = w (g (q_i − q_j) + λ p_u)
    ∂q_i = w (g p_u + λ q_i)          ∂b_i = w (g + λ_b b_i)
    ∂q_j = w (−g p_u + λ q_j)         ∂b_j = w (−g + λ_b b_j)

:func:`warp_manual_grad` segment-sums it into the tables; the sampling is not
differentiated (the chosen j and r are data of the step).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .objective import sample_negatives, triple_gradient
from ...objectives.explicit import Params

__all__ = ["rank_weight", "warp_negatives", "warp_loss", "warp_manual_grad"]


def rank_weight(tries, n_items: int):
    """r_N = log max(1, ⌊(n_items − 1) / N⌋) for N = ``tries`` [n] (≥ 1), float."""
    n = jnp.floor((n_items - 1) / jnp.maximum(tries, 1).astype(jnp.float32))
    return jnp.log(jnp.maximum(n, 1.0))


def warp_negatives(key, params: Params, users, pos, seen_indptr, seen_items, n_items: int,
                   max_sampled: int):
    """The WARP negative of each positive and its rank weight (module docstring).

    Args:
        key: a PRNG key.
        params: the (composed) tables, :class:`Params`.
        users, pos: the positives [B].
        seen_indptr, seen_items: the users' seen CSR (:func:`sample_negatives`).
        n_items: the number of items (static).
        max_sampled: M, the negatives tried per positive (static).

    Returns:
        ``(neg [B] int32, rank_weights [B], found [B] bool)``: the first violating
        negative (any item where none violates), r_N, and whether one violated.
    """
    B = users.shape[0]
    j, valid = sample_negatives(key, jnp.repeat(users, max_sampled), seen_indptr, seen_items,
                                n_items)
    j, valid = j.reshape(B, max_sampled), valid.reshape(B, max_sampled)
    jj = jnp.maximum(j, 0)
    p = params.user_factors[users]  # [B, k]
    s_pos = jnp.sum(p * params.item_factors[pos], axis=1) + params.item_bias[pos]  # [B]
    s_neg = jnp.einsum("bk,bmk->bm", p, params.item_factors[jj]) + params.item_bias[jj]
    violate = valid & (s_neg > s_pos[:, None] - 1.0)  # [B, M]
    first = jnp.argmax(violate, axis=1)
    found = jnp.any(violate, axis=1)
    neg = jnp.take_along_axis(jj, first[:, None], axis=1)[:, 0]
    return neg.astype(jnp.int32), rank_weight(first + 1, n_items).astype(p.dtype), found


def _w(weights, n, dtype):
    return jnp.ones((n,), dtype) if weights is None else weights.astype(dtype)


def warp_loss(params: Params, users, pos, neg, rank_weights, *, reg: float = 0.0,
              bias_reg: float | None = None, weights=None) -> jax.Array:
    """The WARP objective L of the module docstring (the scalar).

    Args:
        params: :class:`Params` (user_factors, item_factors, item_bias are read).
        users, pos, neg: triples [n].
        rank_weights: r [n] (:func:`rank_weight` of the tries).
        reg, bias_reg: λ, λ_b (``None``: λ).
        weights: w [n] or None (all 1).
    """
    bias_reg = reg if bias_reg is None else bias_reg
    P, Q, b = params.user_factors, params.item_factors, params.item_bias
    w = _w(weights, users.shape[0], P.dtype)
    p, qi, qj, bi, bj = P[users], Q[pos], Q[neg], b[pos], b[neg]
    x = jnp.sum(p * (qi - qj), axis=-1) + bi - bj
    sq = jnp.sum(p * p + qi * qi + qj * qj, axis=-1)
    per = (rank_weights * jax.nn.relu(1.0 - x) + 0.5 * reg * sq
           + 0.5 * bias_reg * (bi * bi + bj * bj))
    return jnp.sum(w * per)


def warp_manual_grad(params: Params, users, pos, neg, rank_weights, *, reg: float = 0.0,
                     bias_reg: float | None = None, weights=None) -> Params:
    """The gradient of :func:`warp_loss` by hand (module docstring); user_bias and
    global_bias get 0. Same arguments; returns :class:`Params` shaped like ``params``."""
    bias_reg = reg if bias_reg is None else bias_reg
    P, Q, b = params.user_factors, params.item_factors, params.item_bias
    w = _w(weights, users.shape[0], P.dtype)
    p, qi, qj, bi, bj = P[users], Q[pos], Q[neg], b[pos], b[neg]
    x = jnp.sum(p * (qi - qj), axis=-1) + bi - bj
    g = -rank_weights * (x < 1.0).astype(P.dtype)  # [n]
    wc = w[:, None]
    dp = wc * (g[:, None] * (qi - qj) + reg * p)
    dqi = wc * (g[:, None] * p + reg * qi)
    dqj = wc * (-g[:, None] * p + reg * qj)
    dbi, dbj = w * (g + bias_reg * bi), w * (-g + bias_reg * bj)
    return triple_gradient(params, users, pos, neg, dp, dqi, dqj, dbi, dbj)
