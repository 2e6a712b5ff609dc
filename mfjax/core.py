"""The matrix-factorization model: parameters, prediction, objective and its gradient.

The model (biased MF, as in Koren et al. and Surprise's ``SVD``) predicts

    r̂(u, i) = μ + b_u + b_i + <p_u, q_i>

with a global bias μ, user and item biases ``b``, and user and item factors
``p_u, q_i ∈ R^k``. Over a set of observed ratings ``D = {(u, i, r)}`` it minimizes

    L = ½ Σ_(u,i,r)∈D (r̂(u,i) − r)²
        + ½ Σ_(u,i,r)∈D [ λ (‖p_u‖² + ‖q_i‖²) + λ_b (b_u² + b_i²) ]

where λ is ``reg`` and λ_b is ``bias_reg`` (equal to ``reg`` unless given). The
regularizer sits inside the sum over ratings, so a row is penalized once per
rating it appears in (the form of Surprise's SVD and of ALS-WR). That makes the
loss of a minibatch an unbiased slice of the full objective. μ is not
regularized.

For one rating with residual e = r̂(u,i) − r the gradient is

    ∂/∂p_u = e q_i + λ p_u      ∂/∂q_i = e p_u + λ q_i
    ∂/∂b_u = e + λ_b b_u        ∂/∂b_i = e + λ_b b_i      ∂/∂μ = e

and the full gradient is the sum of these per-rating terms, accumulated into
the rows they touch. :func:`manual_grad` computes exactly that, by hand, with
``jax.vmap`` over ratings and ``segment_sum`` per row (the λ p_u terms of a
row's ratings are added at once, as λ c_u p_u with c_u its rating count).

Note on the seed notebook: it wrote the regularizer as ``reg * np.sum(U) / 2``
(a typo for the squared norm, whose gradient would be a constant, not
``reg * U``), and its hand-written gradient ignored ``reg``. mfjax uses the
squared norm throughout.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Params",
    "init_params",
    "predict",
    "loss",
    "manual_grad",
    "make_blocks",
    "blocked_value_and_grad",
    "validate_ratings",
]


class Params(NamedTuple):
    """Parameters of a biased MF model (a pytree).

    Attributes:
        user_factors: ``p`` [n_users, k].
        item_factors: ``q`` [n_items, k].
        user_bias: ``b_u`` [n_users].
        item_bias: ``b_i`` [n_items].
        global_bias: ``μ`` [] (a scalar array).

    K independent models of the same tables ("members", as ``fit``'s
    ``ensemble`` trains) can share one Params with a member axis after the
    row axis: factors [n, K, k], biases [n, K], global bias [K]. :func:`loss`,
    :func:`manual_grad` and :func:`blocked_value_and_grad` then treat each
    member as its own model and sum the members' objectives.
    """

    user_factors: jax.Array
    item_factors: jax.Array
    user_bias: jax.Array
    item_bias: jax.Array
    global_bias: jax.Array

    @property
    def n_users(self) -> int:
        return self.user_factors.shape[0]

    @property
    def n_items(self) -> int:
        return self.item_factors.shape[0]

    @property
    def rank(self) -> int:
        return self.user_factors.shape[1]


def init_params(
    key: jax.Array,
    n_users: int,
    n_items: int,
    rank: int,
    *,
    init_scale: float = 0.1,
    global_bias: float = 0.0,
    dtype=jnp.float32,
) -> Params:
    """Random initial parameters.

    Factors are drawn i.i.d. from N(0, init_scale²); biases start at 0 and the
    global bias at ``global_bias`` (``fit`` passes the training mean).

    Args:
        key: a PRNG key.
        n_users, n_items: table sizes.
        rank: the number of latent factors k.
        init_scale: standard deviation of the factors.
        global_bias: the initial μ.
        dtype: floating dtype of every field.

    Returns:
        A :class:`Params` with shapes [n_users, k], [n_items, k], [n_users],
        [n_items] and [].
    """
    if n_users < 1 or n_items < 1 or rank < 1:
        raise ValueError(
            f"init_params needs n_users, n_items and rank >= 1, got "
            f"n_users={n_users}, n_items={n_items}, rank={rank}"
        )
    ku, ki = jax.random.split(key)
    return Params(
        user_factors=init_scale * jax.random.normal(ku, (n_users, rank), dtype),
        item_factors=init_scale * jax.random.normal(ki, (n_items, rank), dtype),
        user_bias=jnp.zeros((n_users,), dtype),
        item_bias=jnp.zeros((n_items,), dtype),
        global_bias=jnp.asarray(global_bias, dtype),
    )


def predict(params: Params, users: jax.Array, items: jax.Array) -> jax.Array:
    """Predicted ratings ``μ + b_u + b_i + <p_u, q_i>``.

    Args:
        params: model parameters.
        users: user indices [n], in [0, n_users).
        items: item indices [n], in [0, n_items).

    Returns:
        Predictions [n]. No clipping: :meth:`mfjax.Model.predict` clips to the
        rating range. Indices are not checked here (JAX clamps out-of-range
        gathers); call :func:`validate_ratings` at the API boundary.
    """
    p = params.user_factors[users]
    q = params.item_factors[items]
    return (
        params.global_bias
        + params.user_bias[users]
        + params.item_bias[items]
        + jnp.sum(p * q, axis=-1)
    )


def _bias_reg(reg, bias_reg):
    return reg if bias_reg is None else bias_reg


#: Accepted values of ``sorted_by`` in :func:`loss` and :func:`manual_grad`.
SORTED_BY = (None, "users", "items")


def _check_sorted_by(sorted_by):
    if sorted_by not in SORTED_BY:
        raise ValueError(f"sorted_by must be one of {SORTED_BY}, got {sorted_by!r}")
    return sorted_by == "users", sorted_by == "items"


def _rows(table, idx, is_sorted: bool):
    """``table[idx]``, telling XLA when ``idx`` is sorted (a cheaper sorted gather,
    and a transposed scatter-add that GPUs can pre-reduce instead of contending
    on atomics)."""
    return table.at[idx].get(indices_are_sorted=True) if is_sorted else table[idx]


def _segment_sum(x, idx, n, is_sorted: bool):
    return jax.ops.segment_sum(x, idx, num_segments=n, indices_are_sorted=is_sorted)


def _weights(weights, users, dtype):
    return jnp.ones(users.shape, dtype) if weights is None else weights.astype(dtype)


def _col(x, ndim: int):
    """``x`` with trailing unit axes up to ``ndim`` (explicit broadcasting over members/k)."""
    return x.reshape(x.shape + (1,) * (ndim - x.ndim))


def _row_sq(t):
    """Σ of squares over all but the row axis: ‖p_u‖² (summed over members) [n]."""
    return jnp.sum(t * t, axis=tuple(range(1, t.ndim)))


def _penalty(params: Params, cu, ci, reg, bias_reg):
    """``Σ_u c_u (λ‖p_u‖² + λ_b b_u²) + Σ_i c_i (λ‖q_i‖² + λ_b b_i²)``."""
    return (reg * (jnp.sum(cu * _row_sq(params.user_factors)) + jnp.sum(ci * _row_sq(params.item_factors)))
            + bias_reg * (jnp.sum(cu * _row_sq(params.user_bias)) + jnp.sum(ci * _row_sq(params.item_bias))))


def loss(
    params: Params,
    users: jax.Array,
    items: jax.Array,
    ratings: jax.Array,
    *,
    reg: float = 0.0,
    bias_reg: float | None = None,
    weights: jax.Array | None = None,
    sorted_by: str | None = None,
) -> jax.Array:
    """The regularized squared-error objective over the given ratings.

    ``L = ½ Σ (r̂ − r)² + ½ Σ [λ (‖p_u‖² + ‖q_i‖²) + λ_b (b_u² + b_i²)]``, both
    sums over the ratings passed in (see the module docstring). With
    ``weights`` w, each rating's whole term (error and penalty) is scaled by
    its w; the training loop pads minibatches with w = 0.

    The penalty is evaluated per row, not per rating: with c_u = Σ_{r: u_r = u} w_r
    the (weighted) number of ratings of user u in the batch,
    ``Σ_r w_r ‖p_{u_r}‖² = Σ_u c_u ‖p_u‖²`` (the same for items and biases).
    That is the same number, but it reads each table row once instead of once
    per rating, and its gradient ``λ c_u p_u`` is a dense [n_users, k] update
    rather than one more per-rating term to scatter (a third fewer bytes moved
    per step in training).

    Args:
        params: model parameters.
        users, items: indices [n].
        ratings: observed ratings [n].
        reg: λ, the L2 weight on the factors.
        bias_reg: λ_b, the L2 weight on the biases; ``None`` means ``reg``.
        weights: optional per-rating weights [n]; ``None`` means all 1.
        sorted_by: ``"users"`` or ``"items"`` promises that that index array is
            sorted (non-decreasing), which lets XLA use sorted gathers and
            scatters; a false promise gives wrong results. ``None``: no promise.

    Returns:
        The scalar loss.
    """
    bias_reg = _bias_reg(reg, bias_reg)
    su, si = _check_sorted_by(sorted_by)
    dtype = params.global_bias.dtype
    w = _weights(weights, users, dtype)
    p = _rows(params.user_factors, users, su)
    q = _rows(params.item_factors, items, si)
    bu = _rows(params.user_bias, users, su)
    bi = _rows(params.item_bias, items, si)
    nd = bu.ndim  # 1, or 2 with a member axis
    err = params.global_bias[None] + bu + bi + jnp.sum(p * q, axis=-1) - _col(ratings, nd)
    # Ratings per row; no gradient flows through the counts (w is data).
    cu = _segment_sum(w, users, params.n_users, su)
    ci = _segment_sum(w, items, params.n_items, si)
    return 0.5 * (jnp.sum(_col(w, nd) * err * err) + _penalty(params, cu, ci, reg, bias_reg))


def _rating_grad(p, q, bu, bi, mu, r, w):
    """Gradient of one rating's (weighted) squared error, for ONE rating.

    Returns (∂p_u [k], ∂q_i [k], ∂b_u [], ∂b_i [], ∂μ []) of ½ w e², e = r̂ − r
    (with a member axis: p, q [K, k], biases and μ [K], and so the results).
    The penalty's part, w λ p_u per rating, is summed per row in
    :func:`manual_grad` as λ c_u p_u.
    """
    we = w * (mu + bu + bi + jnp.sum(p * q, axis=-1) - r)
    return we[..., None] * q, we[..., None] * p, we, we, we


def manual_grad(
    params: Params,
    users: jax.Array,
    items: jax.Array,
    ratings: jax.Array,
    *,
    reg: float = 0.0,
    bias_reg: float | None = None,
    weights: jax.Array | None = None,
    sorted_by: str | None = None,
) -> Params:
    """The gradient of :func:`loss`, written by hand (no autodiff).

    The per-rating gradient of the error term (module docstring) is written
    for a single rating, ``jax.vmap``-ed over the ratings, and summed into
    rows with ``jax.ops.segment_sum``. The penalty's per-rating terms
    ``w λ p_u`` sum to ``λ c_u p_u`` per row, with c_u = Σ_{r: u_r = u} w_r, and
    are added densely (as in :func:`loss`). Repeated (user, item) pairs
    contribute once per occurrence, exactly as in the loss; rows with no
    ratings get zero.

    Args:
        params: model parameters.
        users, items: indices [n].
        ratings: observed ratings [n].
        reg: λ, the L2 weight on the factors.
        bias_reg: λ_b, the L2 weight on the biases; ``None`` means ``reg``.
        weights: optional per-rating weights [n], as in :func:`loss`.
        sorted_by: ``"users"``/``"items"``: that index array is sorted, as in
            :func:`loss`.

    Returns:
        A :class:`Params` with the same shapes as ``params``.
    """
    bias_reg = _bias_reg(reg, bias_reg)
    su, si = _check_sorted_by(sorted_by)
    dtype = params.global_bias.dtype
    w = _weights(weights, users, dtype)
    per_rating = jax.vmap(_rating_grad, in_axes=(0, 0, 0, 0, None, 0, 0))
    dp, dq, dbu, dbi, dmu = per_rating(
        _rows(params.user_factors, users, su),
        _rows(params.item_factors, items, si),
        _rows(params.user_bias, users, su),
        _rows(params.item_bias, items, si),
        params.global_bias,
        ratings.astype(dtype),
        w,
    )
    nu, ni = params.n_users, params.n_items
    cu = _segment_sum(w, users, nu, su)
    ci = _segment_sum(w, items, ni, si)
    P, Q, bu, bi = params.user_factors, params.item_factors, params.user_bias, params.item_bias
    return Params(
        user_factors=_segment_sum(dp, users, nu, su) + reg * _col(cu, P.ndim) * P,
        item_factors=_segment_sum(dq, items, ni, si) + reg * _col(ci, Q.ndim) * Q,
        user_bias=_segment_sum(dbu, users, nu, su) + bias_reg * _col(cu, bu.ndim) * bu,
        item_bias=_segment_sum(dbi, items, ni, si) + bias_reg * _col(ci, bi.ndim) * bi,
        global_bias=jnp.sum(dmu, axis=0),
    )


def make_blocks(keys, max_block: int = 32) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Partition positions 0..n-1 into blocks of one key each, for :func:`blocked_value_and_grad`.

    The c positions of key u are cut into ``c // max_block`` blocks of length
    ``max_block`` and one block for each set bit of ``c % max_block`` (so
    lengths are powers of two and nothing is padded). Blocks of one length
    form a group, ordered by key.

    Args:
        keys: the key (user or item index) of each position [n], ints >= 0.
        max_block: the longest block, a power of two.

    Returns:
        One ``(block_keys [V], positions [V * s])`` pair per block length s
        that occurs, shortest first: block v holds positions
        ``positions[v*s:(v+1)*s]``, all with key ``block_keys[v]``, and
        ``block_keys`` is sorted. Every position is in exactly one block.
    """
    if max_block < 1 or max_block & (max_block - 1):
        raise ValueError(f"make_blocks: max_block must be a power of two, got {max_block}")
    keys = np.asarray(keys)
    if keys.ndim != 1 or (keys.size and keys.min() < 0):
        raise ValueError("make_blocks: keys must be a 1-D array of non-negative ints")
    order = np.argsort(keys, kind="stable")
    counts = np.bincount(keys, minlength=1).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    present = np.flatnonzero(counts)
    c, s0 = counts[present], starts[present]
    out = []
    for j in range(max_block.bit_length() - 1):  # bit j of c % max_block: one block of 2^j
        size = 1 << j
        has = (c & size) != 0
        # Larger blocks come first within a key, so this one starts after the bits above j.
        first = s0[has] + (c[has] & ~np.int64(2 * size - 1))
        out.append((size, present[has], first))
    n_full = c // max_block
    owners = np.repeat(np.arange(len(present)), n_full)
    nth = np.arange(len(owners)) - np.repeat(np.cumsum(n_full) - n_full, n_full)
    out.append((max_block, present[owners], s0[owners] + nth * max_block))
    blocks = []
    for size, bkeys, first in out:
        if len(bkeys):
            pos = order[(first[:, None] + np.arange(size)).reshape(-1)]
            blocks.append((bkeys.astype(np.int32), pos.astype(np.int32)))
    return tuple(blocks)


def blocked_value_and_grad(
    params: Params,
    blocks,
    others: jax.Array,
    ratings: jax.Array,
    *,
    reg: float = 0.0,
    bias_reg: float | None = None,
    weights: jax.Array | None = None,
    by: str = "users",
) -> tuple[jax.Array, Params]:
    """:func:`loss` and its gradient, computed block by block (a third route).

    The same numbers as ``(loss, manual_grad)`` on the same ratings (tested to
    float tolerance), but with the ratings grouped by ``by`` (users, say) into
    the equal-length blocks of :func:`make_blocks`. A group of V blocks of s
    ratings is dense: with P [V, k] the blocks' user rows and Q [V, s, k] their
    items' rows,

        e = μ + b_u + b_i + einsum("vk,vsk->vs", P, Q) − r        [V, s]
        ∂P = einsum("vs,vsk->vk", w e, Q) + λ c ⊙ P               [V, k]
        ∂Q_i += w e P  (scatter-add over the items)               [V·s, k]

    so each user row is gathered and scattered once per block rather than once
    per rating, and the per-rating work is one gather of Q, two batched
    contractions and one scatter-add: about half the [n, k]-sized passes of
    the other routes, which is what bounds an epoch on a CPU. It is written by
    hand like :func:`manual_grad` (no autodiff).

    Args:
        params: model parameters.
        blocks: ``((block_keys [V], positions [V*s]), ...)`` from
            :func:`make_blocks`; every position 0..n-1 in exactly one block and
            ``block_keys`` sorted within a group.
        others: the other index of each position [n] (items when ``by="users"``).
        ratings: observed ratings [n].
        reg, bias_reg, weights: as in :func:`loss`.
        by: ``"users"`` (block keys are users) or ``"items"``.

    Returns:
        ``(loss, grads)``, grads a :class:`Params` shaped like ``params``.
    """
    if by not in ("users", "items"):
        raise ValueError(f"by must be 'users' or 'items', got {by!r}")
    bias_reg = _bias_reg(reg, bias_reg)
    dtype = params.global_bias.dtype
    w_all = _weights(weights, others, dtype)
    r_all = ratings.astype(dtype)
    # Written for blocks of users; blocks of items swap the two sides.
    K, O, kb, ob = params.user_factors, params.item_factors, params.user_bias, params.item_bias
    if by == "items":
        K, O, kb, ob = O, K, ob, kb
    mu = params.global_bias[None, None]
    row = K.shape[1:]           # (k,) or (members, k)
    nb = kb.ndim                # 1, or 2 with a member axis
    dK, dO = jnp.zeros_like(K), jnp.zeros_like(O)
    dkb, dob = jnp.zeros_like(kb), jnp.zeros_like(ob)
    ck, co = jnp.zeros(kb.shape[:1], dtype), jnp.zeros(ob.shape[:1], dtype)
    sq = jnp.zeros((), dtype)
    dmu = jnp.zeros_like(params.global_bias)
    for bkeys, pos in blocks:
        V = bkeys.shape[0]
        s = pos.shape[0] // V
        o = others[pos]
        r, w = r_all[pos].reshape(V, s), w_all[pos].reshape(V, s)
        p = K.at[bkeys].get(indices_are_sorted=True)                  # [V, (K,) k]
        q = O[o].reshape((V, s) + row)                                # [V, s, (K,) k]
        if s == 1:  # a plain row-wise product; a batched dot of length 1 costs more
            dot = jnp.sum(p * q[:, 0], axis=-1)[:, None]
        else:
            dot = jnp.einsum("v...k,vs...k->vs...", p, q)
        e = (mu + kb.at[bkeys].get(indices_are_sorted=True)[:, None] + ob[o].reshape((V, s) + row[:-1])
             + dot - _col(r, nb + 1))                                 # [V, s, (K)]
        we = _col(w, nb + 1) * e
        sq = sq + jnp.sum(we * e)
        dmu = dmu + jnp.sum(we, axis=(0, 1))
        gp = we[:, 0, ..., None] * q[:, 0] if s == 1 else jnp.einsum("vs...,vs...k->v...k", we, q)
        dK = dK.at[bkeys].add(gp, indices_are_sorted=True)
        dkb = dkb.at[bkeys].add(jnp.sum(we, axis=1), indices_are_sorted=True)
        ck = ck.at[bkeys].add(jnp.sum(w, axis=1), indices_are_sorted=True)
        dO = dO.at[o].add((we[..., None] * p[:, None]).reshape((V * s,) + row))
        dob = dob.at[o].add(we.reshape((V * s,) + row[:-1]))
        co = co.at[o].add(w.reshape(-1))
    swapped = Params(K, O, kb, ob, params.global_bias)
    penalty = _penalty(swapped, ck, co, reg, bias_reg)
    dK = dK + reg * _col(ck, K.ndim) * K
    dO = dO + reg * _col(co, O.ndim) * O
    dkb, dob = dkb + bias_reg * _col(ck, nb) * kb, dob + bias_reg * _col(co, nb) * ob
    if by == "items":
        dK, dO, dkb, dob = dO, dK, dob, dkb
    grads = Params(user_factors=dK, item_factors=dO, user_bias=dkb, item_bias=dob, global_bias=dmu)
    return 0.5 * (sq + penalty), grads


def validate_ratings(users, items, ratings=None, *, n_users: int, n_items: int,
                     where: str = "ratings") -> None:
    """Check index and rating arrays on the host, before they reach jit.

    Inside jit, JAX clamps out-of-range gathers and ``segment_sum`` drops
    out-of-range ids, both silently; the layers above call this first.

    Args:
        users, items: index arrays [n].
        ratings: optional rating array [n].
        n_users, n_items: the valid index ranges [0, n).
        where: a name for the data, used in error messages.

    Raises:
        ValueError: naming the mismatched lengths, the first out-of-range or
            non-integer index (with its position), or the first non-finite rating.
    """
    arrays = {"users": np.asarray(users), "items": np.asarray(items)}
    if ratings is not None:
        arrays["ratings"] = np.asarray(ratings)
    for name, a in arrays.items():
        if a.ndim != 1:
            raise ValueError(f"{where}: {name} must be 1-D, got shape {a.shape}")
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{where}: array lengths differ: {lengths}")
    for name, n in (("users", n_users), ("items", n_items)):
        a = arrays[name]
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{where}: {name} must be integer indices, got dtype {a.dtype}")
        bad = np.flatnonzero((a < 0) | (a >= n))
        if bad.size:
            j = int(bad[0])
            raise ValueError(
                f"{where}: {name}[{j}] = {int(a[j])} is outside [0, {n}) "
                f"({bad.size} out-of-range entries)"
            )
    if ratings is not None:
        r = arrays["ratings"]
        if r.size and not np.issubdtype(r.dtype, np.number):
            raise ValueError(f"{where}: ratings must be numeric, got dtype {r.dtype}")
        bad = np.flatnonzero(~np.isfinite(r))
        if bad.size:
            j = int(bad[0])
            raise ValueError(
                f"{where}: ratings[{j}] = {r[j]} is not finite ({bad.size} non-finite entries)"
            )
