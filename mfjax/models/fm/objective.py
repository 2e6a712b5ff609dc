"""The factorization machine's objective over relation blocks, and its hand-written gradient.

Parameters θ (:class:`FMParams`): ID rows v_u, v_i [n, k] and biases b_u, b_i [n], the
global bias μ, and per side the feature factors V [D, k] and linear weights w [D]. Each
side's feature rows are a sparse X [n, D] (:class:`SideRows`: attribute columns, and
optionally the implicit-feedback block), with an identity mask m [n] (0 for a row that
is its features alone: features and no training ratings). The relation-block trick
composes every distinct row once per minibatch, O(nnz(X) k), never a design matrix:

    P_u = m_u v_u + Σ_f x_uf V_f,      c_u = m_u b_u + Σ_f x_uf w_f      (items: Q_i, c_i)
    ŷ(u,i) = μ + c_u + c_i + ⟨P_u, Q_i⟩

This is the FM ŷ(x) = w0 + Σ_j w_j x_j + Σ_{j<l} ⟨v_j, v_l⟩ x_j x_l of the design row
x = [e_u | x_u | e_i | x_i] with only the pairs across the user and item blocks (the
pairs inside a side depend on the row alone; the row bias plays their part, as in
:class:`mfjax.BayesianFM`). The loss over a minibatch B with weights ω (0 on padding):

    L = ½ Σ_B ω e² + ½ λ [Σ_u n_u ‖v_u‖² + Σ_f n_f ‖V_f‖²] + ½ λ_b [Σ_u n_u b_u² + Σ_f n_f w_f²]
        (+ the same for items),   e = ŷ − r,  n_u = Σ_{B∋u} ω,  n_f = Σ_u |x_uf| n_u

so, like :func:`mfjax.loss`, each rating pays for the parameters it uses. The gradient
is the FM identity ∂ŷ/∂v_j = x_j (Σ_l v_l x_l − v_j x_j) restricted to the cross pairs,
whose inner sum is the other side's composed row: for a user-side feature f,
∂ŷ/∂V_f = x_uf Q_i. With the composed-table gradients

    ∂P = Σ_B ω e Q_i (per user),  ∂Q = Σ_B ω e P_u,  ∂c_u = Σ_B ω e,  ∂μ = Σ_B ω e

(O(|B| k)), the chain rule pulls them back through X in O(nnz(X) k):

    ∂v = m ⊙ ∂P + λ n ⊙ v,   ∂V = Xᵀ ∂P + λ n_f ⊙ V,
    ∂b = m ⊙ ∂c + λ_b n ⊙ b, ∂w = Xᵀ ∂c + λ_b n_f ⊙ w.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ...objectives.explicit import Params
from ...solvers.fm_blocks import implicit_block

__all__ = ["FMParams", "SideRows", "Layout", "side_rows", "implicit_layout", "compose", "loss",
           "manual_grad", "value_and_manual_grad", "composed_error_grad", "OBJECTIVE"]


class FMParams(NamedTuple):
    """θ of the module docstring (ID parts first, named like :class:`mfjax.Params`).

    Attributes:
        user_factors, item_factors: v [n_users, k], [n_items, k].
        user_bias, item_bias: b [n_users], [n_items].
        global_bias: μ [].
        user_feature_factors, item_feature_factors: V [D_U, k], [D_I, k].
        user_feature_weights, item_feature_weights: w [D_U], [D_I].
    """

    user_factors: jax.Array
    item_factors: jax.Array
    user_bias: jax.Array
    item_bias: jax.Array
    global_bias: jax.Array
    user_feature_factors: jax.Array
    item_feature_factors: jax.Array
    user_feature_weights: jax.Array
    item_feature_weights: jax.Array


class SideRows(NamedTuple):
    """One side's feature rows X [n, D] as COO, and its identity mask.

    Attributes:
        rows, cols: int32 [nnz]; vals: X's entries [nnz].
        mask: m [n] (module docstring).
    """

    rows: jax.Array
    cols: jax.Array
    vals: jax.Array
    mask: jax.Array


class Layout(NamedTuple):
    """Both sides' :class:`SideRows` (a pytree: a jitted program's argument)."""

    users: SideRows
    items: SideRows


def side_rows(X, mask, dtype) -> SideRows:
    """:class:`SideRows` of a scipy matrix X [n, D] (D ≥ 1) and a mask [n], on the host."""
    coo = X.tocoo()
    return SideRows(coo.row.astype(np.int32), coo.col.astype(np.int32),
                    coo.data.astype(dtype), np.asarray(mask, dtype))


def implicit_layout(users, items, n_users: int, n_items: int, dtype) -> Layout:
    """The layout whose only features are the implicit-feedback blocks of (users, items)
    (each user's items and each item's users, scaled 1/√n), every mask 1: the feature
    path :func:`mfjax.verify_gradients` checks (it has no :class:`mfjax.Features`)."""
    users, items = np.asarray(users), np.asarray(items)
    return Layout(side_rows(implicit_block(users, items, n_users, n_items), np.ones(n_users), dtype),
                  side_rows(implicit_block(items, users, n_items, n_users), np.ones(n_items), dtype))


def _segment(x, idx, n: int):
    return jax.ops.segment_sum(x, idx, num_segments=n)


def _side(e, b, E, w, lay: SideRows):
    """(P [n, k], c [n]) = (m ⊙ e + X E, m ⊙ b + X w) of one side."""
    n = lay.mask.shape[0]
    P = lay.mask[:, None] * e + _segment(lay.vals[:, None] * E[lay.cols], lay.rows, n)
    c = lay.mask * b + _segment(lay.vals * w[lay.cols], lay.rows, n)
    return P, c


def compose(theta: FMParams, layout: Layout) -> Params:
    """The composed tables (P, Q, c_u, c_i, μ) as a biased-MF :class:`mfjax.Params`:
    ``mfjax.predict`` of them is ŷ (module docstring)."""
    P, cu = _side(theta.user_factors, theta.user_bias, theta.user_feature_factors,
                  theta.user_feature_weights, layout.users)
    Q, ci = _side(theta.item_factors, theta.item_bias, theta.item_feature_factors,
                  theta.item_feature_weights, layout.items)
    return Params(P, Q, cu, ci, theta.global_bias)


def _counts(theta: FMParams, layout: Layout, users, items, w):
    """(n_u [n_users], n_i [n_items], n_f user [D_U], n_f item [D_I]): the weighted uses."""
    nu = _segment(w, users, theta.user_factors.shape[0])
    ni = _segment(w, items, theta.item_factors.shape[0])
    fu = _segment(jnp.abs(layout.users.vals) * nu[layout.users.rows], layout.users.cols,
                  theta.user_feature_factors.shape[0])
    fi = _segment(jnp.abs(layout.items.vals) * ni[layout.items.rows], layout.items.cols,
                  theta.item_feature_factors.shape[0])
    return nu, ni, fu, fi


def _weights(weights, ratings):
    return jnp.ones_like(ratings) if weights is None else weights.astype(ratings.dtype)


def loss(theta: FMParams, layout: Layout, users, items, ratings, *, reg: float,
         bias_reg: float | None = None, weights=None):
    """L of the module docstring (a scalar) over ratings (users [n], items [n], ratings [n])
    with optional weights ω [n]; ``bias_reg`` None: ``reg``."""
    lb = reg if bias_reg is None else bias_reg
    w = _weights(weights, ratings)
    p = compose(theta, layout)
    e = (p.global_bias + p.user_bias[users] + p.item_bias[items]
         + jnp.sum(p.user_factors[users] * p.item_factors[items], axis=1) - ratings)
    counts = jax.lax.stop_gradient(_counts(theta, layout, users, items, w))
    return 0.5 * (jnp.sum(w * e * e) + _penalty(theta, counts, reg, lb))


def _penalty(t: FMParams, counts, reg, lb):
    """λ [Σ n_u ‖v_u‖² + Σ n_f ‖V_f‖²] + λ_b [Σ n_u b_u² + Σ n_f w_f²], both sides."""
    nu, ni, fu, fi = counts
    sq = lambda x: jnp.sum(x * x, axis=tuple(range(1, x.ndim)))
    return (reg * (nu @ sq(t.user_factors) + ni @ sq(t.item_factors)
                   + fu @ sq(t.user_feature_factors) + fi @ sq(t.item_feature_factors))
            + lb * (nu @ sq(t.user_bias) + ni @ sq(t.item_bias)
                    + fu @ sq(t.user_feature_weights) + fi @ sq(t.item_feature_weights)))


def composed_error_grad(p: Params, users, items, ratings, w):
    """(∂P, ∂Q, ∂c_u, ∂c_i, ∂μ) of ½ Σ ω e² at the composed tables ``p`` (by hand)."""
    we = w * (p.global_bias + p.user_bias[users] + p.item_bias[items]
              + jnp.sum(p.user_factors[users] * p.item_factors[items], axis=1) - ratings)
    return _error_grad(p, users, items, we)


def _error_grad(p: Params, users, items, we):
    """The composed-table gradients of ½ Σ ω e² from the weighted residuals ωe [n]."""
    P, Q = p.user_factors, p.item_factors
    return (_segment(we[:, None] * Q[items], users, P.shape[0]),
            _segment(we[:, None] * P[users], items, Q.shape[0]),
            _segment(we, users, P.shape[0]), _segment(we, items, Q.shape[0]), jnp.sum(we))


def _pull(g, lay: SideRows, d: int):
    """Xᵀ g [d, k] (or [d]) for a composed-row gradient g [n, k] (or [n])."""
    vals = lay.vals if g.ndim == 1 else lay.vals[:, None]
    return _segment(vals * g[lay.rows], lay.cols, d)


def manual_grad(theta: FMParams, layout: Layout, users, items, ratings, *, reg: float,
                bias_reg: float | None = None, weights=None) -> FMParams:
    """∂L/∂θ by hand (module docstring: the composed gradients pulled back through X),
    shaped like ``theta``; no autodiff."""
    return value_and_manual_grad(theta, layout, users, items, ratings, reg=reg,
                                 bias_reg=bias_reg, weights=weights)[1]


def value_and_manual_grad(theta: FMParams, layout: Layout, users, items, ratings, *,
                          reg: float, bias_reg: float | None = None, weights=None):
    """``(L, ∂L/∂θ)``: :func:`loss` and :func:`manual_grad` from one composition and one
    residual per rating (what a training step runs)."""
    lb = reg if bias_reg is None else bias_reg
    w = _weights(weights, ratings)
    p = compose(theta, layout)
    e = (p.global_bias + p.user_bias[users] + p.item_bias[items]
         + jnp.sum(p.user_factors[users] * p.item_factors[items], axis=1) - ratings)
    dP, dQ, dcu, dci, dmu = _error_grad(p, users, items, w * e)
    nu, ni, fu, fi = _counts(theta, layout, users, items, w)
    mu, mi = layout.users.mask, layout.items.mask
    t = theta
    grad = FMParams(
        user_factors=mu[:, None] * dP + reg * nu[:, None] * t.user_factors,
        item_factors=mi[:, None] * dQ + reg * ni[:, None] * t.item_factors,
        user_bias=mu * dcu + lb * nu * t.user_bias,
        item_bias=mi * dci + lb * ni * t.item_bias,
        global_bias=dmu,
        user_feature_factors=(_pull(dP, layout.users, t.user_feature_factors.shape[0])
                              + reg * fu[:, None] * t.user_feature_factors),
        item_feature_factors=(_pull(dQ, layout.items, t.item_feature_factors.shape[0])
                              + reg * fi[:, None] * t.item_feature_factors),
        user_feature_weights=(_pull(dcu, layout.users, t.user_feature_weights.shape[0])
                              + lb * fu * t.user_feature_weights),
        item_feature_weights=(_pull(dci, layout.items, t.item_feature_weights.shape[0])
                              + lb * fi * t.item_feature_weights))
    return 0.5 * (jnp.sum(w * e * e) + _penalty(t, (nu, ni, fu, fi), reg, lb)), grad


def gradient_terms(users, items, ratings, negatives, hyper):
    """``(L(θ), ∂L/∂θ by hand)`` for :func:`mfjax.verify_gradients`, on the implicit-feedback
    layout of the checked ratings (:func:`implicit_layout`, sized by θ's tables)."""
    dtype = np.asarray(ratings).dtype
    kw = dict(reg=hyper["reg"], bias_reg=hyper.get("bias_reg"))

    def layout_for(th):
        shape = (th.user_factors.shape[0], th.item_factors.shape[0])
        return jax.tree.map(jnp.asarray, implicit_layout(users, items, *shape, dtype))

    return (lambda th: loss(th, layout_for(th), users, items, ratings, **kw),
            lambda th: manual_grad(th, layout_for(th), users, items, ratings, **kw))


def _record():
    from ...objectives import Objective

    return Objective(name="fm", ranking=False, biases=True, gradient_terms=gradient_terms,
                     hyper=("reg", "bias_reg"))


#: This objective's record (:class:`mfjax.objectives.Objective`).
OBJECTIVE = _record()
