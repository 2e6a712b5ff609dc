"""BPR / WARP with side information, LightFM-style: a vector is the sum of its feature embeddings.

With ``fit(train, mfjax.BPR(...), features=F)`` each side (users, items) has a feature
matrix G [n, d] (the rows of ``F``'s table for the side's IDs; :class:`mfjax.Features`)
and the model's vectors and item biases are linear in the parameters
θ = (e, c, E, β), identity embeddings e [n, k], c [n] and feature embeddings
E [d, k], β [d]:

    v_r = m_r e_r + Σ_f G_rf E_f,       b_r = m_r c_r + Σ_f G_rf β_f     (items only: b)

with the identity mask m_r = 1 when row r has no features, or has interactions and
``identity_features=True``; else 0 (a row known only from features, and every row with
features in the "features only" variant, is its features alone). The pairwise
objective L(V, b) of :mod:`mfjax.models.bpr.objective` or :mod:`mfjax.models.bpr.warp` is
unchanged, now a function of θ through (V, b); by the chain rule

    ∂e = m ⊙ ∂V,   ∂c = m ⊙ ∂b,   ∂E = Gᵀ ∂V,   ∂β = Gᵀ ∂b

(:func:`pull_back`; G sparse, stored padded per row: ``idx``/``val`` [n, t], t the most
features of a row). A side without a feature table has d = 1 and G = 0 (one inert
embedding), so with no features at all θ reduces to BPR's tables. The trained model
holds the composed (V, b) (:func:`compose`), so scoring, recommend and persistence are
BPR's.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .objective import bpr_loss, bpr_manual_grad
from ...objectives.explicit import Params
from .warp import warp_loss, warp_manual_grad

__all__ = ["HybridParams", "SideLayout", "Layout", "side_layout", "layout_of", "compose",
           "pull_back", "pair_terms", "hybrid_terms", "hybrid_objective",
           "default_rank_weights", "init_hybrid"]


class HybridParams(NamedTuple):
    """θ of the module docstring (identity parts first, named like :class:`Params` so the
    gradient checks read them).

    Attributes:
        user_factors: identity embeddings e of the users [n_users, k].
        item_factors: identity embeddings e of the items [n_items, k].
        item_bias: identity biases c of the items [n_items].
        user_feature_factors: E of the user features [d_u, k].
        item_feature_factors: E of the item features [d_i, k].
        item_feature_bias: β of the item features [d_i].
    """

    user_factors: jax.Array
    item_factors: jax.Array
    item_bias: jax.Array
    user_feature_factors: jax.Array
    item_feature_factors: jax.Array
    item_feature_bias: jax.Array


class SideLayout(NamedTuple):
    """One side's G, padded per row, and its identity mask.

    Attributes:
        idx: feature column of each slot, int32 [n, t] (0 in padding).
        val: G's value in each slot [n, t] (0 in padding).
        mask: m [n] (module docstring).
    """

    idx: jax.Array
    val: jax.Array
    mask: jax.Array


class Layout(NamedTuple):
    """Both sides' :class:`SideLayout` (a pytree, a jitted program's argument)."""

    users: SideLayout
    items: SideLayout


def side_layout(table, ids, active, identity: bool, dtype=np.float32) -> tuple[SideLayout, int]:
    """``(layout, d)`` of one side: G from ``table`` (a :class:`mfjax.FeatureTable` or
    None) for the rows' raw ``ids`` [n], ``active`` [n] bool (rows with interactions),
    ``identity`` the spec's ``identity_features``; d the number of feature columns (1,
    inert, when ``table`` is None)."""
    n = len(ids)
    active = np.asarray(active, bool)
    if table is None:
        return SideLayout(np.zeros((n, 1), np.int32), np.zeros((n, 1), dtype),
                          np.ones(n, dtype)), 1
    indptr, indices, values, known = table.rows_for(ids)
    lengths = np.diff(indptr)
    t = max(int(lengths.max(initial=0)), 1)
    idx, val = np.zeros((n, t), np.int32), np.zeros((n, t), dtype)
    rows = np.repeat(np.arange(n), lengths)
    slots = np.arange(len(indices)) - np.repeat(indptr[:-1], lengths)
    idx[rows, slots], val[rows, slots] = indices, values
    mask = ~np.asarray(known, bool) | (identity & active)
    return SideLayout(idx, val, mask.astype(dtype)), max(int(table.n_columns), 1)


def layout_of(features, user_ids, item_ids, user_active, item_active, identity: bool,
              dtype=np.float32) -> tuple[Layout, tuple[int, int]]:
    """``(Layout, (d_u, d_i))`` of a fit: :func:`side_layout` for both sides of
    ``features`` (an :class:`mfjax.Features`)."""
    lu, du = side_layout(features.table("users"), user_ids, user_active, identity, dtype)
    li, di = side_layout(features.table("items"), item_ids, item_active, identity, dtype)
    return Layout(lu, li), (du, di)


def _side(e, E, lay: SideLayout):
    """m ⊙ e + G E for one side: [n, k] (or [n] for biases)."""
    gathered = E[lay.idx]  # [n, t, k] or [n, t]
    val = lay.val if gathered.ndim == 2 else lay.val[:, :, None]
    mask = lay.mask if e.ndim == 1 else lay.mask[:, None]
    return mask * e + jnp.sum(val * gathered, axis=1)


def compose(theta: HybridParams, layout: Layout) -> Params:
    """(V, b) of the module docstring as BPR's :class:`Params` (user and global bias 0)."""
    V_u = _side(theta.user_factors, theta.user_feature_factors, layout.users)
    V_i = _side(theta.item_factors, theta.item_feature_factors, layout.items)
    b_i = _side(theta.item_bias, theta.item_feature_bias, layout.items)
    return Params(V_u, V_i, jnp.zeros(V_u.shape[:1], V_u.dtype), b_i, jnp.zeros((), V_u.dtype))


def _pull(g, lay: SideLayout, d: int):
    """(m ⊙ g, Gᵀ g) for one side's gradient g [n, k] or [n]."""
    mask = lay.mask if g.ndim == 1 else lay.mask[:, None]
    val = lay.val if g.ndim == 1 else lay.val[:, :, None]
    spread = val * (g[:, None] if g.ndim == 1 else g[:, None, :])  # [n, t(, k)]
    flat = spread.reshape((-1,) + g.shape[1:])
    return mask * g, jax.ops.segment_sum(flat, lay.idx.reshape(-1), num_segments=d)


def pull_back(g: Params, theta: HybridParams, layout: Layout) -> HybridParams:
    """∂θ from ∂(V, b) (the chain rule of the module docstring); shaped like ``theta``."""
    de_u, dE_u = _pull(g.user_factors, layout.users, theta.user_feature_factors.shape[0])
    de_i, dE_i = _pull(g.item_factors, layout.items, theta.item_feature_factors.shape[0])
    dc, dbeta = _pull(g.item_bias, layout.items, theta.item_feature_bias.shape[0])
    return HybridParams(de_u, de_i, dc, dE_u, dE_i, dbeta)


def pair_terms(loss: str, users, pos, neg, rank_weights, *, reg, bias_reg, weights=None):
    """``(loss(params), grad(params))`` of the pairwise objective on composed tables:
    BPR's (:mod:`mfjax.models.bpr.objective`) or WARP's (:mod:`mfjax.models.bpr.warp`)."""
    kw = dict(reg=reg, bias_reg=bias_reg, weights=weights)
    if loss == "bpr":
        return (lambda p: bpr_loss(p, users, pos, neg, **kw),
                lambda p: bpr_manual_grad(p, users, pos, neg, **kw))
    return (lambda p: warp_loss(p, users, pos, neg, rank_weights, **kw),
            lambda p: warp_manual_grad(p, users, pos, neg, rank_weights, **kw))


def hybrid_terms(layout: Layout, loss: str, users, pos, neg, rank_weights=None, *, reg,
                 bias_reg, weights=None):
    """``(L(θ), ∂L/∂θ by hand)``: the pairwise objective through :func:`compose`, its
    gradient by :func:`pull_back` of the hand-written ∂(V, b)."""
    f, g = pair_terms(loss, users, pos, neg, rank_weights, reg=reg, bias_reg=bias_reg,
                      weights=weights)
    return (lambda th: f(compose(th, layout)),
            lambda th: pull_back(g(compose(th, layout)), th, layout))


def hybrid_objective(base, layout: Layout, loss: str, rank_weights=None):
    """``base`` (an :class:`mfjax.objectives.Objective`) with the gradient terms of
    :func:`hybrid_terms` on ``layout``, for
    :func:`mfjax.evaluation.gradcheck.check_gradient_terms` at a :class:`HybridParams`."""
    def terms(users, items, ratings, negatives, hyper):
        r = rank_weights if rank_weights is not None else default_rank_weights(users.shape[0])
        return hybrid_terms(layout, loss, users, items, negatives, r, reg=hyper["reg"],
                            bias_reg=hyper.get("bias_reg"))
    return dataclasses.replace(base, gradient_terms=terms)


def default_rank_weights(n: int):
    """Rank weights [n] for a gradient check without a sampler: r_N for N = 1, 2, 3, ...
    (cycling), on 100 items: distinct positive values, each triple weighted its own way."""
    from .warp import rank_weight

    return rank_weight(1 + jnp.arange(n) % 7, 100)


def init_hybrid(base: Params, d_users: int, d_items: int, init_scale: float,
                seed: int) -> HybridParams:
    """θ at the start of a fit: the identity parts are BPR's initial tables ``base``
    (the same draw, so zero features train as BPR), the feature embeddings
    N(0, init_scale²) from their own generator, β = 0."""
    rng = np.random.default_rng([seed, 28])
    k = base.user_factors.shape[1]
    dtype = np.asarray(base.user_factors).dtype
    draw = lambda d: jnp.asarray((init_scale * rng.standard_normal((d, k))).astype(dtype))
    return HybridParams(base.user_factors, base.item_factors, base.item_bias, draw(d_users),
                        draw(d_items), jnp.zeros((d_items,), dtype))
