"""Top-N recommendation, similar items/users, and fold-in of new users.

The pure, jitted pieces take arrays and return arrays; :class:`mfjax.Model`
wraps them with raw IDs.

**Scores** are predict's formula (:func:`mfjax.predict`), unclipped, for every
(user, candidate item) pair of a chunk of users:

    S[u, i] = μ + b_u + b_i + <p_u, q_i>                 S: [n_users_chunk, n_items]

Items to exclude (the user's training items) are set to -inf by a scatter of
(row, column) pairs into S, and ``jax.lax.top_k`` takes the n best of each row
(ties: the lower item index first), in two exact stages for long rows (see
:func:`select_top`). Users are processed in chunks so that S never exceeds
``[batch_size, n_items]``; chunks are padded to one shape so a whole call
compiles once.

An **unknown user** is a user with ``p_u = 0`` and ``b_u = 0``: the scores
reduce to ``μ + b_i``, the best items by item bias (the same fallback as
:meth:`mfjax.Model.predict`), and there is nothing seen to exclude.

**Similarity** is cosine on factors,

    cos(i, j) = <q_i, q_j> / (‖q_i‖ ‖q_j‖)      (0 where either norm is 0)

with the query itself excluded.

**Fold-in** solves, for one new user with ratings r_i on items i ∈ I (n_u of
them) and every item parameter fixed, exactly :func:`mfjax.loss` restricted to
that user:

    f(p, b) = ½ Σ_i w_i [ (μ + b + b_i + <p, q_i> − r_i)² + λ‖p‖² + λ_b b² ]

(the item penalties are constants here). The penalty is summed per rating, so
the effective ridge weight is (Σ_i w_i)·λ, i.e. n_u·λ for unit weights. With
x = [p; b] ∈ R^{k+1}, rows a_i = [q_i; 1], targets y_i = r_i − μ − b_i,
W = diag(w) and Λ = diag(λ, …, λ, λ_b):

    f(x) = ½ (Ax − y)ᵀ W (Ax − y) + ½ (Σ_i w_i) xᵀ Λ x
    ∇f = 0   ⇔   (Aᵀ W A + (Σ_i w_i) Λ) x = Aᵀ W y        a (k+1)×(k+1) system.

Given the item parameters the full objective is a sum of independent per-user
terms, so at a stationary point of training every user's (p_u, b_u) solves
this very system: folding in a training user from their own training ratings
returns their trained vector (up to how well training converged).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..objectives.explicit import Params
from ..plumbing import check_index, power_of_two_at_least
from .rows import auto_batch_size

#: Users per score chunk are a multiple of this (see :func:`recommend_indices`).
_MIN_CHUNK = 8

__all__ = [
    "scores",
    "top_n",
    "select_top",
    "recommend_indices",
    "similar",
    "fold_in",
]

# Entries per block in select_top's two-stage selection (tuned likewise).
_BLOCK = 64


# ---------------------------------------------------------------------------
# Pure functions


def scores(user_factors, user_bias, item_factors, item_bias, global_bias) -> jax.Array:
    """Predicted ratings of every user for every item, ``μ + b_u + b_i + <p_u, q_i>``.

    Args:
        user_factors: p [b, k].
        user_bias: b_u [b].
        item_factors: q [m, k].
        item_bias: b_i [m].
        global_bias: μ [].

    Returns:
        S [b, m] with S[u, i] = μ + b_u[u] + b_i[i] + <p[u], q[i]> (unclipped).
    """
    dot = jax.lax.dot_general(user_factors, item_factors, (((1,), (1,)), ((), ())))
    return global_bias + (user_bias[:, None] + item_bias[None, :]) + dot


@partial(jax.jit, static_argnames=("n",))
def top_n(user_factors, user_bias, item_factors, item_bias, global_bias,
          exclude_rows, exclude_cols, cold=None, fallback=None, *,
          n: int) -> tuple[jax.Array, jax.Array]:
    """The n best items of each user, with some (user, item) pairs excluded.

    Scores are :func:`scores`, except that rows marked ``cold`` [b] score
    ``fallback`` [m] instead (the item popularity of implicit models); excluded
    pairs get -inf; then :func:`select_top`.

    Args:
        user_factors: p [b, k].
        user_bias: b_u [b].
        item_factors: q [m, k].
        item_bias: b_i [m].
        global_bias: μ [].
        exclude_rows, exclude_cols: [s] pairs (row in [0, b), item in [0, m))
            whose score is set to -inf. A row ≥ b marks padding and is dropped
            (an explicit ``mode="drop"``, not JAX's silent clamping).
        n: how many items per user, 1 ≤ n ≤ m.

    Returns:
        ``(indices [b, n], scores [b, n])``, best first; ties go to the lower
        item index. Where a user has fewer than n non-excluded items the
        trailing entries have score -inf.
    """
    s = scores(user_factors, user_bias, item_factors, item_bias, global_bias)
    if cold is not None:
        s = jnp.where(cold[:, None], fallback[None, :], s)
    s = s.at[exclude_rows, exclude_cols].set(-jnp.inf, mode="drop")
    return select_top(s, n)


def select_top(s: jax.Array, n: int, block: int = _BLOCK) -> tuple[jax.Array, jax.Array]:
    """Exact row-wise top-n, as ``jax.lax.top_k`` but cheaper for long rows.

    ``lax.top_k`` over a long row is the slow part on CPU, so rows are cut
    into blocks of ``block`` entries (the last padded with -inf). The n best
    entries of a row lie in the n blocks with the largest maxima: an entry
    outside those blocks is beaten by each of their n maxima. So: block
    maxima [b, G] -> top-n blocks -> top-n of their n·block entries. The
    chosen blocks are put in index order first, so that, as in ``top_k``,
    ties go to the lower index. Short rows use ``top_k`` directly.

    Args:
        s: scores [b, m].
        n: 1 ≤ n ≤ m.
        block: entries per block.

    Returns:
        ``(indices [b, n], values [b, n])``, largest first.
    """
    b, m = s.shape
    if 4 * n * block > m:
        vals, idx = jax.lax.top_k(s, n)
        return idx, vals
    g = -(-m // block)
    blocks = jnp.pad(s, ((0, 0), (0, g * block - m)), constant_values=-jnp.inf)
    blocks = blocks.reshape(b, g, block)
    _, best = jax.lax.top_k(jnp.max(blocks, axis=2), n)
    best = jnp.sort(best, axis=1)  # index order keeps top_k's tie rule
    cand = jnp.take_along_axis(blocks, best[:, :, None], axis=1).reshape(b, n * block)
    vals, j = jax.lax.top_k(cand, n)
    idx = jnp.take_along_axis(best, j // block, axis=1) * block + j % block
    return idx, vals


@partial(jax.jit, static_argnames=("n",))
def similar(factors, queries, *, n: int) -> tuple[jax.Array, jax.Array]:
    """The n rows most cosine-similar to each query row, the query excluded.

    ``cos(i, j) = <f_i, f_j> / (‖f_i‖ ‖f_j‖)``, taken as 0 where a norm is 0.

    Args:
        factors: item (or user) factors [m, k].
        queries: row indices [b] in [0, m) (checked by the caller).
        n: how many neighbours, 1 ≤ n ≤ m − 1.

    Returns:
        ``(indices [b, n], similarities [b, n])``, most similar first; ties go
        to the lower index.
    """
    norms = jnp.linalg.norm(factors, axis=1)
    # A zero vector has no direction: dividing by 1 instead leaves its cosines 0.
    unit = factors / jnp.where(norms > 0, norms, 1.0)[:, None]
    sims = jax.lax.dot_general(unit[queries], unit, (((1,), (1,)), ((), ())))
    sims = sims.at[jnp.arange(queries.shape[0]), queries].set(-jnp.inf)
    vals, idx = jax.lax.top_k(sims, n)
    return idx, vals


@jax.jit
def fold_in(item_factors, item_bias, global_bias, items, ratings, weights=None, *,
            reg, bias_reg) -> tuple[jax.Array, jax.Array]:
    """Closed-form factor and bias of a new user against fixed item parameters.

    Minimizes
    ``f(p, b) = ½ Σ_i w_i [(μ + b + b_i + <p, q_i> − r_i)² + λ‖p‖² + λ_b b²]``
    by solving ``(Aᵀ W A + (Σ_i w_i) Λ) [p; b] = Aᵀ W y`` with ``a_i = [q_i; 1]``,
    ``y_i = r_i − μ − b_i`` and ``Λ = diag(λ, …, λ, λ_b)`` (see the module
    docstring). Repeated items count once per occurrence, as in the loss.
    With no ratings (or all weights 0) the answer is p = 0, b = 0: the
    unknown-user fallback.

    Args:
        item_factors: q [m, k].
        item_bias: b_i [m].
        global_bias: μ [].
        items: item indices [n] in [0, m) (checked by the caller).
        ratings: r [n].
        weights: w [n]; ``None`` means all 1 (0 marks padding).
        reg: λ ≥ 0.
        bias_reg: λ_b ≥ 0.

    Returns:
        ``(p [k], b [])``. Non-finite if the system is singular (λ = 0 or
        λ_b = 0 with too few ratings to determine the solution).
    """
    dtype = item_factors.dtype
    w = jnp.ones(items.shape, dtype) if weights is None else weights.astype(dtype)
    k = item_factors.shape[1]
    a = jnp.concatenate([item_factors[items], jnp.ones((items.shape[0], 1), dtype)], axis=1)
    y = ratings.astype(dtype) - global_bias - item_bias[items]
    total = jnp.sum(w)
    penalty = jnp.concatenate([jnp.full((k,), reg, dtype), jnp.full((1,), bias_reg, dtype)])
    # With no ratings the system is 0·x = 0; the identity makes its answer x = 0.
    lhs = (a.T * w[None, :]) @ a + jnp.diag(total * penalty + jnp.where(total > 0, 0.0, 1.0))
    x = jnp.linalg.solve(lhs, a.T @ (w * y))
    return x[:k], x[k]


# ---------------------------------------------------------------------------
# Host-side drivers (NumPy in, NumPy out)


def recommend_indices(params: Params, users, n: int, *, exclude=None, candidates=None,
                      batch_size: int | None = None, user_factors=None, user_bias=None,
                      cold=None, fallback=None) -> tuple[np.ndarray, np.ndarray]:
    """Top-n item indices for many users, in chunks of users.

    Args:
        params: model parameters.
        users: user indices [b] in [-1, n_users); -1 is an unknown user
            (p = 0, b_u = 0, so scores are μ + b_i). Ignored for rows where
            ``user_factors`` is given.
        n: items per user (≥ 1); clipped to the number of candidates.
        exclude: ``(indptr [b + 1], items [nnz])``, a CSR of item indices to
            exclude for each row of ``users`` (e.g. their training items), or None.
        candidates: distinct item indices [m'] to rank among, or None for all items.
        batch_size: users per chunk; ``None`` = :func:`mfjax.serving.rows.auto_batch_size`.
            Bounds the score block to [batch_size, m'] floats (rounded up to a multiple
            of 8 users, so that a user's scores do not depend on the batch).
        user_factors, user_bias: explicit user vectors [b, k] and [b] (e.g.
            folded-in users) instead of rows of ``params``.
        cold: bool [b], rows without training interactions
            (:mod:`mfjax.serving.fallback`): with ``fallback`` None they score as
            an unknown user (p = 0, b_u = 0: μ + b_i); else they score
            ``fallback`` [n_items] (e.g. item popularity), which must be finite.
        fallback: scores [n_items] for the cold rows, or None.

    Returns:
        ``(indices [b, n'], scores [b, n'])`` with n' = min(n, m'), indices into
        the model's item table. Where a row has fewer than n' items left after
        exclusion, the trailing entries have index -1 and score -inf.
    """
    n_items = params.n_items
    if user_factors is None:
        users = check_index(users, params.n_users, name="users", where="recommend", lo=-1)
        b = len(users)
    else:
        b = user_factors.shape[0]
        if user_factors.shape != (b, params.rank) or np.shape(user_bias) != (b,):
            raise ValueError(f"recommend: user_factors must be [b, {params.rank}] and user_bias "
                             f"[b], got {user_factors.shape} and {np.shape(user_bias)}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"recommend: n must be a positive integer, got {n!r}")
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise ValueError(f"recommend: batch_size must be a positive integer, got {batch_size!r}")
    cold = np.zeros(b, bool) if cold is None else np.asarray(cold, bool)
    if cold.shape != (b,):
        raise ValueError(f"recommend: cold must be [b] = [{b}] booleans, got {cold.shape}")
    if fallback is None:
        if user_factors is None:
            users = np.where(cold, -1, users)
        elif cold.any():
            user_factors = jnp.where(jnp.asarray(cold)[:, None], 0.0, user_factors)
            user_bias = jnp.where(jnp.asarray(cold), 0.0, user_bias)
        cold = None
    else:
        fallback = np.asarray(fallback, np.dtype(params.item_factors.dtype))
        if fallback.shape != (n_items,) or not np.isfinite(fallback).all():
            raise ValueError(f"recommend: fallback must be [{n_items}] finite scores")
    if candidates is None:
        m = n_items
        q, bi = params.item_factors, params.item_bias
    else:
        candidates = check_index(candidates, n_items, name="candidates", where="recommend")
        if len(np.unique(candidates)) != len(candidates):
            raise ValueError("recommend: candidates must be distinct item indices")
        m = len(candidates)
        cand = jnp.asarray(candidates.astype(np.int32))
        q, bi = params.item_factors[cand], params.item_bias[cand]
        if cold is not None:
            fallback = fallback[np.asarray(candidates, np.int64)]
    if m == 0:
        raise ValueError("recommend: no candidate items")
    n = int(min(n, m))
    # Pad the item table once to whole blocks of select_top (factor 0, bias -inf:
    # such items score -inf), so no chunk pays for padding its score block.
    pad = (-m) % _BLOCK
    if pad:
        q = jnp.pad(q, ((0, pad), (0, 0)))
        bi = jnp.pad(bi, (0, pad), constant_values=-jnp.inf)
    fb = None if cold is None else jnp.asarray(np.pad(fallback, (0, pad),
                                                      constant_values=-np.inf))
    dtype = params.item_factors.dtype
    if b == 0:
        return np.zeros((0, n), np.int64), np.zeros((0, n), np.dtype(dtype))

    if exclude is not None:
        ptr, cols = exclude
        ptr = np.asarray(ptr, np.int64)
        if ptr.shape != (b + 1,) or ptr[0] != 0 or np.any(np.diff(ptr) < 0) or \
                ptr[-1] != len(cols):
            raise ValueError(f"recommend: exclude must be a CSR (indptr [{b + 1}] from 0, "
                             f"non-decreasing, ending at len(items) = {len(cols)})")
        cols = check_index(cols, n_items, name="exclude items", where="recommend")
        if candidates is not None:
            # Item index -> position among the candidates; non-candidates need no mask.
            pos = np.full(n_items, -1, np.int64)
            pos[candidates] = np.arange(m)
            cols = pos[cols]
            keep = cols >= 0
            row_of = np.repeat(np.arange(b), np.diff(ptr))
            ptr = np.zeros(b + 1, np.int64)
            np.cumsum(np.bincount(row_of[keep], minlength=b), out=ptr[1:])
            cols = cols[keep]

    chunk = int(batch_size or auto_batch_size(b, m, np.dtype(dtype).itemsize))
    # Chunks of at least, and a multiple of, _MIN_CHUNK rows: one user's scores then
    # come from the same matrix product as in any batch (a 1-row product takes a
    # matrix-vector route whose sums round differently), so near-ties order alike.
    chunk = -(-min(chunk, power_of_two_at_least(b)) // _MIN_CHUNK) * _MIN_CHUNK
    starts = np.arange(0, b, chunk)
    # One padded length for every chunk's exclusion list: one compilation per call.
    if exclude is not None:
        per_chunk = ptr[np.minimum(starts + chunk, b)] - ptr[starts]
        s_pad = power_of_two_at_least(int(per_chunk.max()))
    else:
        s_pad = 1
    out_idx, out_val = [], []
    for s in starts:
        e = min(s + chunk, b)
        if user_factors is None:
            u = np.full(chunk, -1, np.int64)
            u[: e - s] = users[s:e]
            uf, ub = _user_vectors(params.user_factors, params.user_bias,
                                   jnp.asarray(u.astype(np.int32)))
        else:
            uf = jnp.zeros((chunk, params.rank), dtype).at[: e - s].set(user_factors[s:e])
            ub = jnp.zeros((chunk,), dtype).at[: e - s].set(user_bias[s:e])
        rows = np.full(s_pad, chunk, np.int32)  # row == chunk: padding, dropped
        cols_c = np.zeros(s_pad, np.int32)
        if exclude is not None:
            lo, hi = ptr[s], ptr[e]
            rows[: hi - lo] = np.repeat(np.arange(e - s, dtype=np.int32), np.diff(ptr[s:e + 1]))
            cols_c[: hi - lo] = cols[lo:hi]
        cold_c = None
        if cold is not None:
            cold_c = np.zeros(chunk, bool)
            cold_c[: e - s] = cold[s:e]
            cold_c = jnp.asarray(cold_c)
        idx, val = top_n(uf, ub, q, bi, params.global_bias, jnp.asarray(rows), jnp.asarray(cols_c),
                         cold_c, fb, n=n)
        out_idx.append(idx)  # kept on the device: the next chunk is dispatched meanwhile
        out_val.append(val)
    idx = np.concatenate([np.asarray(x) for x in out_idx])[:b].astype(np.int64)
    val = np.concatenate([np.asarray(x) for x in out_val])[:b]
    empty = np.isneginf(val)  # excluded or padding: no item
    idx[empty] = 0
    if candidates is not None:
        idx = candidates[idx]
    idx[empty] = -1
    return idx, val


@jax.jit
def _user_vectors(user_factors, user_bias, users):
    """Rows of the user tables, zeros where the index is -1 (unknown)."""
    known = users >= 0
    safe = jnp.where(known, users, 0)
    p = jnp.where(known[:, None], user_factors[safe], 0.0)
    return p, jnp.where(known, user_bias[safe], 0.0)
