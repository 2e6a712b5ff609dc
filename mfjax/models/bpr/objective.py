"""BPR (Rendle et al. 2009) for implicit feedback, as pure JAX functions (issue #12).

The model scores ``ŝ(u, i) = b_i + <p_u, q_i>`` with :class:`mfjax.objectives.explicit.Params`:
item biases are learned, the user bias and global bias stay 0 (they cancel in
every pairwise difference, and their gradient here is 0), so
``mfjax.predict`` ranks exactly as BPR does.

Objective over triples T = {(u, i, j)}: u interacted with i (positive) and not
with j (negative); x_uij = <p_u, q_i − q_j> + b_i − b_j::

    L = Σ_(u,i,j)∈T w [ −log σ(x_uij)
                        + ½ λ (‖p_u‖² + ‖q_i‖² + ‖q_j‖²)
                        + ½ λ_b (b_i² + b_j²) ]

λ is ``reg``, λ_b ``bias_reg`` (``None``: λ), w optional per-triple weights
(0 marks padding or a user without negatives). The regularizer is per triple,
like :func:`mfjax.loss`: a row is penalized once per triple it appears in, so
a minibatch's loss is an unbiased slice of the full sum. With
g = −σ(−x_uij) = ∂(−log σ(x))/∂x, one triple's gradient is::

    ∂p_u = w (g (q_i − q_j) + λ p_u)
    ∂q_i = w (g p_u + λ q_i)          ∂b_i = w (g + λ_b b_i)
    ∂q_j = w (−g p_u + λ q_j)         ∂b_j = w (−g + λ_b b_j)

:func:`bpr_manual_grad` vmaps that over the triples and segment-sums into rows
(positives and negatives both into the item table).

Negative sampling (:func:`sample_negatives`) is exact and loop-free: with the
user's seen items sorted, s_0 < … < s_{m−1}, draw r uniform in
[0, n_items − m) and return the r-th unseen item, r + j with
j = #{k : s_k − k ≤ r} (s_k − k, the number of unseen items below s_k, is
non-decreasing in k, so j is found by bisection within the user's CSR
segment). Every unseen item has probability exactly 1 / (n_items − m) and no
seen item can be returned.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from ...objectives.explicit import Params

__all__ = ["bpr_loss", "bpr_manual_grad", "sample_negatives", "sample_triples",
           "triple_gradient"]


def _w(weights, n, dtype):
    return jnp.ones((n,), dtype) if weights is None else weights.astype(dtype)


def bpr_loss(params: Params, users, pos, neg, *, reg: float = 0.0, bias_reg: float | None = None,
             weights=None) -> jax.Array:
    """The BPR objective L of the module docstring.

    Args:
        params: :class:`Params` (user_factors, item_factors, item_bias are read).
        users, pos, neg: triples [n]: user, positive item, negative item.
        reg: λ on the factors; bias_reg: λ_b on the item biases (``None``: λ).
        weights: optional per-triple weights [n]; ``None`` means all 1.

    Returns:
        The scalar loss.
    """
    bias_reg = reg if bias_reg is None else bias_reg
    P, Q, b = params.user_factors, params.item_factors, params.item_bias
    w = _w(weights, users.shape[0], P.dtype)
    p, qi, qj = P[users], Q[pos], Q[neg]
    bi, bj = b[pos], b[neg]
    x = jnp.sum(p * (qi - qj), axis=-1) + bi - bj
    sq = jnp.sum(p * p + qi * qi + qj * qj, axis=-1)
    per = jax.nn.softplus(-x) + 0.5 * reg * sq + 0.5 * bias_reg * (bi * bi + bj * bj)
    return jnp.sum(w * per)


def _triple_grad(p, qi, qj, bi, bj, w, reg, bias_reg):
    """∂ of one triple's weighted term w.r.t. p_u, q_i, q_j [k], b_i, b_j []."""
    g = -jax.nn.sigmoid(-(jnp.sum(p * (qi - qj)) + bi - bj))
    return (w * (g * (qi - qj) + reg * p), w * (g * p + reg * qi), w * (-g * p + reg * qj),
            w * (g + bias_reg * bi), w * (-g + bias_reg * bj))


def bpr_manual_grad(params: Params, users, pos, neg, *, reg: float = 0.0,
                    bias_reg: float | None = None, weights=None) -> Params:
    """The gradient of :func:`bpr_loss`, by hand; user_bias and global_bias get 0.

    Same arguments as :func:`bpr_loss`. Returns a :class:`Params` shaped like
    ``params``.
    """
    bias_reg = reg if bias_reg is None else bias_reg
    P, Q, b = params.user_factors, params.item_factors, params.item_bias
    w = _w(weights, users.shape[0], P.dtype)
    dp, dqi, dqj, dbi, dbj = jax.vmap(_triple_grad, in_axes=(0, 0, 0, 0, 0, 0, None, None))(
        P[users], Q[pos], Q[neg], b[pos], b[neg], w, reg, bias_reg)
    return triple_gradient(params, users, pos, neg, dp, dqi, dqj, dbi, dbj)


def sample_negatives(key, users, seen_indptr, seen_items, n_items: int):
    """Uniform negatives: for each user, an item it has NOT interacted with.

    Exact and loop-free (module docstring): one uniform draw per user and a
    bisection of ``n_items.bit_length() + 1`` fixed steps within the user's
    segment. Jittable with ``n_items`` static.

    Args:
        key: a PRNG key.
        users: [n] user indices.
        seen_indptr: [n_users + 1] CSR row pointers of the seen lists.
        seen_items: [nnz] items, sorted and distinct within each user's segment
            (``ImplicitData.user_indptr``/``user_items`` are exactly this).
        n_items: the number of items.

    Returns:
        ``(neg [n] int32, valid [n] bool)``. A user who has interacted with
        every item has no negative: ``valid`` is False and ``neg`` is −1 (use
        ``valid`` as the triple's weight; −1 is dropped by ``segment_sum``).
        Every valid ``neg`` is unseen by its user, each unseen item with
        probability 1 / (n_items − |I_u|).
    """
    users = users.astype(seen_indptr.dtype)
    lo0, hi0 = seen_indptr[users], seen_indptr[users + 1]
    n_free = n_items - (hi0 - lo0)
    r = jax.random.randint(key, users.shape, 0, jnp.maximum(n_free, 1), dtype=seen_indptr.dtype)
    if seen_items.shape[0] == 0:
        return jnp.where(n_free > 0, r, -1).astype(jnp.int32), n_free > 0
    last = seen_items.shape[0] - 1

    def step(_, lohi):  # first position e in [lo, hi) with s_e − (e − lo0) > r
        lo, hi = lohi
        mid = (lo + hi) // 2
        d = seen_items[jnp.minimum(mid, last)] - (mid - lo0)
        go_right = (mid < hi) & (d <= r)
        return jnp.where(go_right, mid + 1, lo), jnp.where(go_right, hi, mid)

    lo, _ = lax.fori_loop(0, int(n_items).bit_length() + 1, step, (lo0, hi0))
    valid = n_free > 0
    return jnp.where(valid, r + (lo - lo0), -1).astype(jnp.int32), valid


def sample_triples(key, data, n: int):
    """``n`` BPR triples: positives uniform over the interactions, negatives by
    :func:`sample_negatives`.

    Args:
        key: a PRNG key.
        data: an :class:`mfjax.data.interactions.ImplicitData` (at least one interaction).
        n: the number of triples (static).

    Returns:
        ``(users, pos, neg, weights)`` [n]; weights are 0 where the user has
        no negative.
    """
    kp, kn = jax.random.split(key)
    e = jax.random.randint(kp, (n,), 0, data.user_items.shape[0])
    users, pos = data.user_rows[e], data.user_items[e]
    neg, valid = sample_negatives(kn, users, data.user_indptr, data.user_items, data.n_items)
    return users, pos, neg, valid.astype(data.user_values.dtype)


def _gradient_terms(users, items, ratings, negatives, hyper):
    kw = dict(reg=hyper["reg"], bias_reg=hyper.get("bias_reg"))
    return (lambda p: bpr_loss(p, users, items, negatives, **kw),
            lambda p: bpr_manual_grad(p, users, items, negatives, **kw))


def _record():
    from ...objectives import Objective

    return Objective(name="bpr", ranking=True, biases=False, gradient_terms=_gradient_terms,
                     hyper=("reg", "bias_reg"), negatives=True, row_sides=("users",),
                     values="ones")


#: This objective's record (:class:`mfjax.objectives.Objective`).
OBJECTIVE = _record()


def triple_gradient(params: Params, users, pos, neg, dp, dqi, dqj, dbi, dbj) -> Params:
    """The gradient pytree of a triple loss from its per-triple terms, summed per row:
    ``dp`` [n, k] onto ``users``, ``dqi``/``dbi`` onto ``pos`` and ``dqj``/``dbj`` onto
    ``neg`` (each [n, k] / [n]); the user and global biases get zero."""
    P, Q = params.user_factors, params.item_factors
    items = jnp.concatenate([pos, neg])
    n_items = Q.shape[0]
    return Params(
        user_factors=jax.ops.segment_sum(dp, users, num_segments=P.shape[0]),
        item_factors=jax.ops.segment_sum(jnp.concatenate([dqi, dqj]), items, num_segments=n_items),
        user_bias=jnp.zeros_like(params.user_bias),
        item_bias=jax.ops.segment_sum(jnp.concatenate([dbi, dbj]), items, num_segments=n_items),
        global_bias=jnp.zeros_like(params.global_bias),
    )
