"""Fold-in: Newton steps on one new user's row of the logistic MF objective, items fixed.

For a user with confidences c [n_items] (α r, 0 unobserved) and z = [p; b_u] [k + 1],
F = [Q, 1] [n_items, k + 1], x = F z + b_i:

    f(z) = Σ_i softplus(x_i) + c_i softplus(−x_i) + ½ zᵀ Λ z,   Λ = diag(λ, …, λ, λ_b)
    ∇f = Fᵀ d + Λ z,  d = σ(x) − c σ(−x)
    ∇²f = Fᵀ diag((1 + c) σ(x) σ(−x)) F + Λ

f is convex; ``steps`` Newton steps z ← z − (∇²f)⁻¹ ∇f from z = 0, batched with vmap.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

__all__ = ["fold_in_rows"]


@functools.partial(jax.jit, static_argnames=("steps",))
def fold_in_rows(item_factors, item_bias, confidence, *, reg, bias_reg, steps: int = 20):
    """(p [R, k], b_u [R]) for R users with dense confidences ``confidence`` [R, n_items]."""
    F = jnp.concatenate([item_factors, jnp.ones_like(item_bias)[:, None]], axis=1)
    k1 = F.shape[1]
    lam = jnp.concatenate([jnp.full((k1 - 1,), reg), jnp.full((1,), bias_reg)]).astype(F.dtype)

    def one(c):
        def newton(z, _):
            x = F @ z + item_bias
            d = jax.nn.sigmoid(x) - c * jax.nn.sigmoid(-x)
            w = (1.0 + c) * jax.nn.sigmoid(x) * jax.nn.sigmoid(-x)
            g = F.T @ d + lam * z
            H = (F * w[:, None]).T @ F + jnp.diag(lam)
            return z - jnp.linalg.solve(H, g), None

        z, _ = jax.lax.scan(newton, jnp.zeros((k1,), F.dtype), None, length=steps)
        return z

    z = jax.vmap(one)(confidence)
    return z[:, :-1], z[:, -1]
