"""The ``"blocked"`` gradient route: the same loss and gradient per block of one key's ratings, in XLA.

A minibatch sorted by key (users, say) is cut into blocks of one key each
(:func:`make_blocks`); a block's key row is gathered and its gradient scattered
once per block instead of once per rating. This is XLA's fastest route at scale on
a CPU and the default route on accelerators from 2^20 ratings on; the profile that
motivated it is in ``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ....objectives.explicit import (
    Params,
    rating_weights,
    resolve_bias_reg,
    row_penalty,
    trailing_axes)

__all__ = ["make_blocks", "blocked_value_and_grad", "MAX_BLOCK"]

#: Longest per-key block used by the training grid.
MAX_BLOCK = 32


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
    sort_by: str = "users",
) -> tuple[jax.Array, Params]:
    """:func:`mfjax.loss` and its gradient, computed block by block (a third route).

    The same numbers as ``(mfjax.loss, mfjax.manual_grad)`` on the same ratings (tested to
    float tolerance), but with the ratings grouped by ``sort_by`` (users, say) into
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
        others: the other index of each position [n] (items when ``sort_by="users"``).
        ratings: observed ratings [n].
        reg, bias_reg, weights: as in :func:`mfjax.loss`.
        sort_by: ``"users"`` (block keys are users) or ``"items"``.

    Returns:
        ``(loss, grads)``, grads a :class:`Params` shaped like ``params``.
    """
    if sort_by not in ("users", "items"):
        raise ValueError(f"sort_by must be 'users' or 'items', got {sort_by!r}")
    bias_reg = resolve_bias_reg(reg, bias_reg)
    dtype = params.global_bias.dtype
    w_all = rating_weights(weights, others, dtype)
    r_all = ratings.astype(dtype)
    # Written for blocks of users; blocks of items swap the two sides.
    K, O, kb, ob = params.user_factors, params.item_factors, params.user_bias, params.item_bias
    if sort_by == "items":
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
             + dot - trailing_axes(r, nb + 1))                                 # [V, s, (K)]
        we = trailing_axes(w, nb + 1) * e
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
    penalty = row_penalty(swapped, ck, co, reg, bias_reg)
    dK = dK + reg * trailing_axes(ck, K.ndim) * K
    dO = dO + reg * trailing_axes(co, O.ndim) * O
    dkb, dob = dkb + bias_reg * trailing_axes(ck, nb) * kb, dob + bias_reg * trailing_axes(co, nb) * ob
    if sort_by == "items":
        dK, dO, dkb, dob = dO, dK, dob, dkb
    grads = Params(user_factors=dK, item_factors=dO, user_bias=dkb, item_bias=dob, global_bias=dmu)
    return 0.5 * (sq + penalty), grads
