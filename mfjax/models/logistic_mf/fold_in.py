"""Fold-in and partial fits: Newton steps on rows of the logistic MF objective, the other side fixed.

For one row (a user; an item is the same with the sides swapped) with confidences
c [m] (α v on its interactions, 0 elsewhere), z = [p; b] [k + 1], F = [Q, 1] [m, k + 1]
and x = F z + b_other + μ:

    f(z) = Σ_i softplus(x_i) + c_i softplus(−x_i) + ½ zᵀ Λ z,   Λ = diag(λ, …, λ, λ_b)
    ∇f = Fᵀ d + Λ z,  d = σ(x) − c σ(−x)
    ∇²f = Fᵀ diag((1 + c) σ(x) σ(−x)) F + Λ

f is strictly convex (λ, λ_b > 0); from z = 0, ``steps`` Newton steps
z ← z − t (∇²f)⁻¹ ∇f, with t the best of 1, ½, …, 1/16 by f (so f never rises),
batched over rows with vmap, in blocks of :data:`ROWS` rows.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ...solvers.rows import checked_rows

__all__ = ["fold_in_rows", "row_solve", "ROWS"]

#: Rows per batched call (each holds a dense [ROWS, m] confidence block).
ROWS = 64
_STEPS = (1.0, 0.5, 0.25, 0.125, 0.0625)


@functools.partial(jax.jit, static_argnames=("steps",))
def fold_in_rows(other_factors, other_bias, mu, confidence, *, reg, bias_reg, steps: int = 20):
    """(p [R, k], b [R]) minimising f of the module docstring for R rows with dense
    confidences ``confidence`` [R, m] against ``other_factors`` [m, k], ``other_bias`` [m]."""
    F = jnp.concatenate([other_factors, jnp.ones_like(other_bias)[:, None]], axis=1)
    k1 = F.shape[1]
    lam = jnp.concatenate([jnp.full((k1 - 1,), reg), jnp.full((1,), bias_reg)]).astype(F.dtype)
    off = other_bias + mu
    ts = jnp.asarray(_STEPS, F.dtype)

    def one(c):
        def f(z):
            x = F @ z + off
            return jnp.sum(jax.nn.softplus(x) + c * jax.nn.softplus(-x)) + 0.5 * jnp.sum(lam * z * z)

        def newton(z, _):
            x = F @ z + off
            g = F.T @ (jax.nn.sigmoid(x) - c * jax.nn.sigmoid(-x)) + lam * z
            w = (1.0 + c) * jax.nn.sigmoid(x) * jax.nn.sigmoid(-x)
            delta = jnp.linalg.solve((F * w[:, None]).T @ F + jnp.diag(lam), g)
            values = jax.vmap(lambda t: f(z - t * delta))(ts)
            return z - ts[jnp.argmin(values)] * delta, None

        z, _ = jax.lax.scan(newton, jnp.zeros((k1,), F.dtype), None, length=steps)
        return z

    z = jax.vmap(one)(confidence)
    return z[:, :-1], z[:, -1]


def row_solve(other_f, other_b, mu, rows, cols, vals, n_rows, hp):
    """The record's row solve (:mod:`mfjax.solvers.rows`' signature): ``(factors [R, k],
    bias [R])`` (NumPy) of ``n_rows`` rows with interactions (``rows`` local in [0, R),
    ``cols`` into the other side, ``vals`` their values), by :func:`fold_in_rows`.

    Raises:
        ValueError: a solved row is not finite (names ``reg``).
    """
    other_f, other_b = jnp.asarray(other_f), jnp.asarray(other_b)
    m, dtype = other_f.shape[0], np.dtype(other_f.dtype)
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    conf = hp["alpha"] * np.asarray(vals, np.float64)
    factors, biases = [], []
    for start in range(0, n_rows, ROWS):
        block = np.zeros((ROWS, m), dtype)  # a fixed shape: one compiled program
        keep = (rows >= start) & (rows < start + ROWS)
        np.add.at(block, (rows[keep] - start, cols[keep]), conf[keep])
        p, b = fold_in_rows(other_f, other_b, jnp.asarray(mu, dtype), jnp.asarray(block),
                            reg=hp["reg"], bias_reg=hp["bias_reg"])
        n = min(ROWS, n_rows - start)
        factors.append(np.asarray(p)[:n]), biases.append(np.asarray(b)[:n])
    f = np.concatenate(factors) if factors else np.zeros((0, other_f.shape[1]), dtype)
    b = np.concatenate(biases) if biases else np.zeros(0, dtype)
    return checked_rows(f, hp, vals), b
