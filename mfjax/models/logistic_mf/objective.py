"""The logistic MF objective (Johnson 2014) over all (u, i) pairs and its hand-written gradient.

Score x_ui = <p_u, q_i> + b_u + b_i. With confidence c_ui = α r_ui (0 where unobserved),
the negative log-likelihood plus ridge penalty is

    L = Σ_u Σ_i [softplus(x_ui) + c_ui softplus(−x_ui)]
        + ½ λ (‖P‖² + ‖Q‖²) + ½ λ_b (‖b_u‖² + ‖b_i‖²).

With d_ui = ∂L/∂x_ui = σ(x_ui) − c_ui σ(−x_ui) [n_users, n_items]:

    ∂L/∂P = D Q + λ P      ∂L/∂Q = Dᵀ P + λ Q
    ∂L/∂b_u = D 1 + λ_b b_u      ∂L/∂b_i = Dᵀ 1 + λ_b b_i

Shapes: P [n_users, k], Q [n_items, k], b_u [n_users], b_i [n_items], C [n_users, n_items]
(dense here; O(n_users n_items) memory).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["LogisticParams", "score", "loss", "manual_grad"]


class LogisticParams(NamedTuple):
    """Parameters of logistic MF (a pytree).

    Attributes:
        user_factors: P [n_users, k].
        item_factors: Q [n_items, k].
        user_bias: b_u [n_users].
        item_bias: b_i [n_items].
    """

    user_factors: jax.Array
    item_factors: jax.Array
    user_bias: jax.Array
    item_bias: jax.Array


def score(params: LogisticParams) -> jax.Array:
    """x [n_users, n_items] = P Qᵀ + b_u 1ᵀ + 1 b_iᵀ (logits of a like)."""
    return (params.user_factors @ params.item_factors.T + params.user_bias[:, None]
            + params.item_bias[None, :])


def loss(params: LogisticParams, confidence, *, reg: float, bias_reg: float) -> jax.Array:
    """L of the module docstring; ``confidence`` C [n_users, n_items] (α r, 0 unobserved)."""
    x = score(params)
    nll = jnp.sum(jax.nn.softplus(x) + confidence * jax.nn.softplus(-x))
    penalty = 0.5 * reg * (jnp.sum(params.user_factors ** 2) + jnp.sum(params.item_factors ** 2))
    penalty += 0.5 * bias_reg * (jnp.sum(params.user_bias ** 2) + jnp.sum(params.item_bias ** 2))
    return nll + penalty


def manual_grad(params: LogisticParams, confidence, *, reg: float,
                bias_reg: float) -> LogisticParams:
    """∂L/∂params by the formulas of the module docstring (no autodiff)."""
    x = score(params)
    d = jax.nn.sigmoid(x) - confidence * jax.nn.sigmoid(-x)
    P, Q = params.user_factors, params.item_factors
    return LogisticParams(d @ Q + reg * P, d.T @ P + reg * Q,
                          jnp.sum(d, axis=1) + bias_reg * params.user_bias,
                          jnp.sum(d, axis=0) + bias_reg * params.item_bias)
