"""Implicit-feedback MF by weighted ALS (iALS), as pure JAX functions (issue #12).

The model is the plain dot product ``ŝ(u, i) = <p_u, q_i>``: it reuses
:class:`mfjax.objectives.explicit.Params`, whose biases and global bias stay 0, so
``mfjax.predict``, top-N and saving work unchanged.

Objective (Hu, Koren & Volinsky 2008, with the frequency-scaled regularizer
of Rendle et al. 2021, "Revisiting the Performance of iALS ..."). Over the
observed interactions S = {(u, i, v_ui)} (v: counts or ratings) with
confidence ``c_ui = 1 + α v_ui``::

    L = Σ_(u,i)∈S c_ui (1 − <p_u, q_i>)²
        + α0 Σ_u Σ_i <p_u, q_i>²                              (ALL pairs)
        + λ [ Σ_u λ̃_u ‖p_u‖² + Σ_i λ̃_i ‖q_i‖² ]
    λ̃_u = (|I_u| + α0 n_items)^ν,   λ̃_i = (|U_i| + α0 n_users)^ν

α is ``alpha``, α0 ``unobserved_weight``, λ ``reg``, ν ``nu`` ∈ [0, 1];
|I_u| is the number of interactions of u passed in (with ``weights`` w:
Σ w). ν = 0 is the classic uniform λ, ν = 1 scales with the row's mass. The
all-pairs term includes the observed pairs, exactly as written; it is the
Gramian identity ``Σ_u Σ_i <p_u, q_i>² = <PᵀP, QᵀQ>_F`` (P [n_users, k],
Q [n_items, k]), so nothing of size n_users × n_items is ever formed.

Gradient (P, Q as above; G_P = PᵀP [k, k], G_Q = QᵀQ [k, k])::

    ∂L/∂p_u = Σ_{i∈I_u} −2 w c_ui (1 − <p_u,q_i>) q_i + 2 α0 (P G_Q)_u + 2 λ λ̃_u p_u
    ∂L/∂q_i = Σ_{u∈U_i} −2 w c_ui (1 − <p_u,q_i>) p_u + 2 α0 (Q G_P)_i + 2 λ λ̃_i q_i

and 0 for the three bias fields. :func:`manual_grad` writes the
per-interaction part for one interaction, vmaps it and ``segment_sum``-s it
into rows; no gradient flows through the counts in λ̃.

The exact ALS half-steps that minimise L one side at a time are in
:mod:`mfjax.models.implicit_als.solve`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ...objectives.explicit import Params

__all__ = ["loss", "manual_grad", "row_reg"]


def _counts(idx, w, n):
    return jax.ops.segment_sum(w, idx, num_segments=n)


def _sizes(P, Q, n_users, n_items):
    return (P.shape[0] if n_users is None else n_users, Q.shape[0] if n_items is None else n_items)


def row_reg(counts, n_other, unobserved_weight, nu):
    """λ̃ = (|I_u| + α0 n_other)^ν per row [n]."""
    return jnp.power(counts + unobserved_weight * n_other, nu)


def loss(params: Params, users, items, values, *, alpha, unobserved_weight, reg, nu,
         weights=None, n_users=None, n_items=None) -> jax.Array:
    """The iALS objective L of the module docstring.

    Args:
        params: :class:`Params`; only the factors are read.
        users, items: interaction indices [n] (one entry per pair; use the
            deduplicated arrays of :class:`ImplicitData` to match the solves).
        values: v_ui [n].
        alpha: α in c_ui = 1 + α v_ui.
        unobserved_weight: α0, the weight of the all-pairs term.
        reg: λ.
        nu: ν, the exponent of the frequency-scaled regularizer.
        weights: optional [n]; scales the interaction's term and its count in
            |I_u|, |U_i| (0 marks padding). ``None`` means all 1.
        n_users, n_items: the real row counts when the tables carry zero padding
            rows (a mesh); λ̃ uses them. ``None``: the tables' row counts.

    Returns:
        The scalar loss.
    """
    P, Q = params.user_factors, params.item_factors
    dtype = P.dtype
    w = jnp.ones(users.shape, dtype) if weights is None else weights.astype(dtype)
    c = 1.0 + alpha * values.astype(dtype)
    s = jnp.sum(P[users] * Q[items], axis=-1)
    observed = jnp.sum(w * c * (1.0 - s) ** 2)
    gram = unobserved_weight * jnp.sum((P.T @ P) * (Q.T @ Q))
    n_u, n_i = _sizes(P, Q, n_users, n_items)
    ru = row_reg(_counts(users, w, P.shape[0]), n_i, unobserved_weight, nu)
    ri = row_reg(_counts(items, w, Q.shape[0]), n_u, unobserved_weight, nu)
    penalty = reg * (jnp.sum(ru * jnp.sum(P * P, axis=1)) + jnp.sum(ri * jnp.sum(Q * Q, axis=1)))
    return observed + gram + penalty


def _interaction_grad(p, q, c, w):
    """∂/∂p_u, ∂/∂q_i [k] of w c (1 − <p, q>)² for ONE interaction."""
    e = -2.0 * w * c * (1.0 - jnp.sum(p * q))
    return e * q, e * p


def manual_grad(params: Params, users, items, values, *, alpha, unobserved_weight, reg, nu,
                weights=None, n_users=None, n_items=None) -> Params:
    """The gradient of :func:`loss`, by hand (module docstring); biases get 0.

    Same arguments as :func:`loss`. Returns a :class:`Params` shaped like
    ``params``.
    """
    P, Q = params.user_factors, params.item_factors
    dtype = P.dtype
    nu_, ni = P.shape[0], Q.shape[0]
    w = jnp.ones(users.shape, dtype) if weights is None else weights.astype(dtype)
    c = 1.0 + alpha * values.astype(dtype)
    dp, dq = jax.vmap(_interaction_grad)(P[users], Q[items], c, w)
    n_u, n_i = _sizes(P, Q, n_users, n_items)
    ru = row_reg(_counts(users, w, nu_), n_i, unobserved_weight, nu)
    ri = row_reg(_counts(items, w, ni), n_u, unobserved_weight, nu)
    gP = (jax.ops.segment_sum(dp, users, num_segments=nu_)
          + 2.0 * unobserved_weight * (P @ (Q.T @ Q)) + 2.0 * reg * ru[:, None] * P)
    gQ = (jax.ops.segment_sum(dq, items, num_segments=ni)
          + 2.0 * unobserved_weight * (Q @ (P.T @ P)) + 2.0 * reg * ri[:, None] * Q)
    return Params(gP, gQ, jnp.zeros_like(params.user_bias), jnp.zeros_like(params.item_bias),
                  jnp.zeros_like(params.global_bias))


def _gradient_terms(users, items, ratings, negatives, hyper):
    kw = {k: hyper[k] for k in ("alpha", "unobserved_weight", "reg", "nu")}
    return (lambda p: loss(p, users, items, ratings, **kw),
            lambda p: manual_grad(p, users, items, ratings, **kw))


def _record():
    from ...objectives import Objective

    return Objective(name="ials", ranking=True, biases=False, gradient_terms=_gradient_terms,
                     hyper=("alpha", "unobserved_weight", "reg", "nu"), values="strengths")


#: This objective's record (:class:`mfjax.objectives.Objective`).
OBJECTIVE = _record()
