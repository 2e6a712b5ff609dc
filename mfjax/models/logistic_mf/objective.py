"""The logistic MF objective (Johnson 2014) over all (u, i) pairs and its hand-written gradient.

The score is the shared biased-MF prediction (:class:`mfjax.objectives.explicit.Params`),
x_ui = μ + b_u + b_i + <p_u, q_i>, the logit of "u likes i". An interaction (u, i, v)
gives the confidence c_ui = α v (summed over repeated pairs; 0 where u never
interacted with i). The objective is the negative log-likelihood of Johnson's model,
p(l_ui) = σ(x_ui), each interaction counted c_ui times as a like and every pair once
as a dislike, plus a ridge penalty on the tables (μ is not penalized; the LogisticMF
solver keeps it 0, as in Johnson's model):

    L = Σ_u Σ_i softplus(x_ui) + Σ_(u,i)∈S c_ui softplus(−x_ui)
        + ½ λ (‖P‖² + ‖Q‖²) + ½ λ_b (‖b_u‖² + ‖b_i‖²)

(softplus(x) = log(1 + eˣ) = −log σ(−x); the first sum is over every pair, dense,
O(n_users n_items)). With the dense D = σ(X) [n_users, n_items] and the sparse
e_ui = −c_ui σ(−x_ui) on the interactions, ∂L/∂x = D + E and

    ∂L/∂P = (D + E) Q + λ P          ∂L/∂Q = (D + E)ᵀ P + λ Q
    ∂L/∂b_u = (D + E) 1 + λ_b b_u    ∂L/∂b_i = (D + E)ᵀ 1 + λ_b b_i
    ∂L/∂μ = 1ᵀ (D + E) 1

Shapes: P [n_users, k], Q [n_items, k], b_u [n_users], b_i [n_items]; the
interactions ``users``, ``items``, ``conf`` [n] (conf = α v).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ...objectives.explicit import Params

__all__ = ["logits", "loss", "manual_grad", "OBJECTIVE"]


def logits(params: Params) -> jax.Array:
    """X [n_users, n_items] = μ + b_u 1ᵀ + 1 b_iᵀ + P Qᵀ."""
    return (params.user_factors @ params.item_factors.T + params.user_bias[:, None]
            + params.item_bias[None, :] + params.global_bias)


def _pair_logits(params: Params, users, items) -> jax.Array:
    return (jnp.sum(params.user_factors[users] * params.item_factors[items], axis=-1)
            + params.user_bias[users] + params.item_bias[items] + params.global_bias)


def _penalty(params: Params, reg, bias_reg) -> jax.Array:
    return (0.5 * reg * (jnp.sum(params.user_factors ** 2) + jnp.sum(params.item_factors ** 2))
            + 0.5 * bias_reg * (jnp.sum(params.user_bias ** 2) + jnp.sum(params.item_bias ** 2)))


def loss(params: Params, users, items, conf, *, reg: float, bias_reg: float) -> jax.Array:
    """L of the module docstring.

    Args:
        params: the model (:class:`~mfjax.objectives.explicit.Params`).
        users, items: the interactions [n] (repeats allowed: their confidences add).
        conf: c = α v per interaction [n].
        reg, bias_reg: λ, λ_b.
    """
    dense = jnp.sum(jax.nn.softplus(logits(params)))
    sparse = jnp.sum(conf * jax.nn.softplus(-_pair_logits(params, users, items)))
    return dense + sparse + _penalty(params, reg, bias_reg)


def manual_grad(params: Params, users, items, conf, *, reg: float, bias_reg: float) -> Params:
    """∂L/∂params by the formulas of the module docstring (no autodiff); same arguments
    as :func:`loss`."""
    P, Q = params.user_factors, params.item_factors
    d = jax.nn.sigmoid(logits(params))
    e = -conf * jax.nn.sigmoid(-_pair_logits(params, users, items))
    nu, ni = P.shape[0], Q.shape[0]
    return Params(
        user_factors=d @ Q + jax.ops.segment_sum(e[:, None] * Q[items], users, nu) + reg * P,
        item_factors=d.T @ P + jax.ops.segment_sum(e[:, None] * P[users], items, ni) + reg * Q,
        user_bias=jnp.sum(d, axis=1) + jax.ops.segment_sum(e, users, nu)
        + bias_reg * params.user_bias,
        item_bias=jnp.sum(d, axis=0) + jax.ops.segment_sum(e, items, ni)
        + bias_reg * params.item_bias,
        global_bias=jnp.sum(d) + jnp.sum(e))


def _gradient_terms(users, items, ratings, negatives, hyper):
    conf = hyper["alpha"] * ratings
    kw = dict(reg=hyper["reg"], bias_reg=hyper["bias_reg"])
    return (lambda p: loss(p, users, items, conf, **kw),
            lambda p: manual_grad(p, users, items, conf, **kw))


def _record():
    from ...objectives import Objective

    return Objective(name="logistic", ranking=True, biases=False,
                     gradient_terms=_gradient_terms, hyper=("alpha", "reg", "bias_reg"),
                     values="strengths")


#: This objective's record (:class:`mfjax.objectives.Objective`).
OBJECTIVE = _record()
