"""BPR fold-in and partial-fit rows (item side held fixed).

:func:`bpr_fold_in`: the user's part of the BPR objective with Q, b fixed, with
M negatives per positive drawn uniformly from the unseen items (a fixed seed, so the
result is deterministic; M is cut to max(1, ⌈2^16 / |I|⌉) for long histories, each
triple weighing 1/M, so a user with 150k items costs 150k triples, not 4.8M)::

    f(p) = Σ_{i∈I} (1/M) Σ_{m=1..M} −log σ(b_i − b_jm + <p, q_i − q_jm>) + ½ λ |I| ‖p‖²

(|I| triples per epoch in training, each with ½ λ ‖p‖²). f is convex; ``steps``
Newton steps from p = 0 minimise it (H = Σ w σ(x)σ(−x) d dᵀ + λ|I| I, d = q_i − q_j),
the triples streamed in chunks (:func:`bpr_rows`), so memory
is O(chunk·k²) whatever |I|.
Unlike iALS, a training user does not get their trained vector back: ``fit``'s BPR
stops after a few epochs of SGD-type updates, far from f's minimiser, so its vectors
are shorter (on a small random problem, folded-in norms were 25-30x larger and top-10
lists overlapped ~40 %). Compare a folded-in user's scores with other folded-in
users', not with trained users'.

:func:`bpr_rows` solves R users at once (the record's ``row_solve``,
:func:`bpr_row_solve`): every user of the batch at once, the triples streamed in
blocks of one row each (one small matmul per block, as the iALS Cholesky build does),
so memory is O(blocks·k² + R·k²) whatever the history length; :func:`bpr_fold_in_reg`
picks the λ under which it gives back the trained users.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ...plumbing import check_index, power_of_two_at_least
from ...solvers.als.sweep import solve_spd
from ...solvers.rows import checked_rows

__all__ = ["bpr_fold_in", "bpr_rows", "bpr_triples", "bpr_fold_in_reg", "bpr_row_solve",
           "BPR_REG_MULTIPLES", "BPR_MAX_TRIPLES"]

#: Per user, negatives per positive are cut so that |I_u| · M ≤ this (at least 1 each).
BPR_MAX_TRIPLES = 1 << 16
_TRIPLE_BLOCK = 32   # triples per block of one row (one [k, k] matmul each)
_BLOCKS = 32         # blocks per inner step


def bpr_fold_in(item_factors, item_bias, items, *, reg, n_neg: int = 32, steps: int = 8,
                seed: int = 0):
    """The BPR user vector [k] of one new user (module docstring).

    Args:
        item_factors, item_bias: Q [n_items, k], b [n_items].
        items: item indices [n] in [0, n_items) of the user's positives (repeats merge).
        reg: λ (> 0 keeps the Newton system definite).
        n_neg: M, negatives per positive.
        steps: Newton steps.
        seed: key of the negatives.

    Returns:
        p [k] (zeros when ``items`` is empty).

    Raises:
        ValueError: an entry of ``items`` is not an integer index in [0, n_items).
    """
    # Checked here: inside the jitted Newton steps an out-of-range index would be clamped
    # (or wrapped) by the gathers and silently score another item.
    items = np.asarray(items).reshape(-1)
    items = np.unique(check_index(items, item_factors.shape[0], name="items",
                                  where="bpr_fold_in").astype(np.int64))
    k = item_factors.shape[1]
    if items.size == 0:
        return jnp.zeros((k,), item_factors.dtype)
    return jnp.asarray(bpr_rows(item_factors, item_bias, np.zeros(items.size, np.int64),
                                items, 1, reg=float(reg), n_neg=n_neg, steps=steps,
                                seed=seed)[0])


@partial(jax.jit, static_argnames=("steps", "block", "blocks"))
def _bpr_newton(Q, b, t_row, t_pos, t_neg, t_w, lam, *, steps, block, blocks):
    """Newton on every row's BPR objective; lam [R].

    The triples [T] come in blocks of ``block`` that each belong to one row (padded
    with weight 0), T a multiple of ``block * blocks``; ``blocks`` blocks are
    processed per inner step, each block's Hessian part ``Σ w s d dᵀ`` one small
    matmul, and only the per-block [k, k] results are summed into the rows.
    """
    R, k = lam.shape[0], Q.shape[1]
    chunk = block * blocks
    n_chunks = t_row.shape[0] // chunk
    eye = jnp.eye(k, dtype=Q.dtype)

    def stats(p):
        def body(c, acc):
            g, H = acc
            s = c * chunk
            r, i, j, w = (lax.dynamic_slice(a, (s,), (chunk,)) for a in (t_row, t_pos, t_neg, t_w))
            D = Q[i] - Q[j]
            x = jnp.sum(D * p[r], axis=1) + b[i] - b[j]
            g = g + jax.ops.segment_sum(D * (w * -jax.nn.sigmoid(-x))[:, None], r, R)
            s2 = w * jax.nn.sigmoid(x) * jax.nn.sigmoid(-x)
            Db = D.reshape(blocks, block, k)
            Hb = jnp.einsum("blk,blm->bkm", Db * s2.reshape(blocks, block, 1), Db)
            H = H + jax.ops.segment_sum(Hb, r.reshape(blocks, block)[:, 0], R)
            return g, H
        return lax.fori_loop(0, n_chunks, body, (jnp.zeros((R, k), Q.dtype),
                                                 jnp.zeros((R, k, k), Q.dtype)))

    def step(_, p):
        g, H = stats(p)
        g = g + lam[:, None] * p
        H = H + (lam + 1e-9)[:, None, None] * eye[None]
        return p - solve_spd(H, g)

    return lax.fori_loop(0, steps, step, jnp.zeros((R, k), Q.dtype))


def bpr_triples(rows, cols, n_rows, n_items, *, n_neg, seed, max_triples=BPR_MAX_TRIPLES):
    """Host-side (row, positive, negative, weight) triples for :func:`bpr_rows`.

    Each distinct (row, positive) pair gets M_r = min(n_neg, max(1, ⌈max_triples / |I_r|⌉))
    negatives drawn uniformly from the items the row has not interacted with
    (rejection sampling of hashed draws keyed by (seed, positive, draw), so a
    row's triples do not depend on the other rows of the batch), each triple
    weighing 1 / M_r, so every
    positive weighs 1 whatever M_r. A row that has interacted with every item has
    no negatives (its triples weigh 0).
    """
    key = np.unique(np.asarray(rows, np.int64) * n_items + np.asarray(cols, np.int64))
    r, i = key // n_items, key % n_items
    count = np.bincount(r, minlength=n_rows)
    m = np.minimum(n_neg, np.maximum(1, -(-max_triples // np.maximum(count, 1))))[r]
    t_row, t_pos = np.repeat(r, m), np.repeat(i, m)
    t_w = np.repeat(1.0 / m, m)
    # The j-th draw for a positive depends only on (seed, positive, j, attempt), so a
    # user's negatives do not depend on which other users share the batch.
    j = np.arange(len(t_row)) - np.repeat(np.cumsum(m) - m, m)
    t_neg = _hash_draw(seed, t_pos, j, 0, n_items)
    full = count[t_row] >= n_items
    for attempt in range(1, 1000):
        bad = np.flatnonzero(~full & np.isin(t_row * n_items + t_neg, key))
        if bad.size == 0:
            break
        t_neg[bad] = _hash_draw(seed, t_pos[bad], j[bad], attempt, n_items)
    t_w[full] = 0.0
    t_neg[full] = 0
    return t_row, t_pos, t_neg, t_w, count


def _hash_draw(seed, a, b, c, n) -> np.ndarray:
    """Integers in [0, n) from a splitmix64 hash of (seed, a, b, c), elementwise."""
    with np.errstate(over="ignore"):
        x = (np.asarray(a, np.uint64) * np.uint64(0x9E3779B97F4A7C15)
             + np.asarray(b, np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
             + np.uint64(c) * np.uint64(0x94D049BB133111EB) + np.uint64(seed))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x % np.uint64(n)).astype(np.int64)


def bpr_rows(item_factors, item_bias, rows, cols, n_rows, *, reg, n_neg=32, steps=8, seed=0):
    """BPR user rows [R, k] (module docstring), NumPy.

    λ_r = reg · |I_r| (the per-triple penalty of training, one epoch's |I_r| triples);
    ``reg`` a number or one per row [R].
    """
    n_items = item_factors.shape[0]
    t_row, t_pos, t_neg, t_w, count = bpr_triples(rows, cols, n_rows, n_items, n_neg=n_neg,
                                                  seed=seed)
    r_pad = power_of_two_at_least(n_rows, 8)
    # Pad every row's triples to whole blocks (weight 0), then the total to whole chunks.
    L = _TRIPLE_BLOCK
    per_row = np.bincount(t_row, minlength=n_rows)
    padded = -(-per_row // L) * L
    start = np.concatenate([[0], np.cumsum(padded)])
    first = np.concatenate([[0], np.cumsum(per_row)])[:-1]
    dest = start[t_row] + (np.arange(len(t_row)) - first[t_row])
    chunk = L * _BLOCKS
    T = max(chunk, power_of_two_at_least(int(start[-1])))
    arrays = []
    dtype = np.asarray(item_factors).dtype
    for a, fill_rows in ((t_row, True), (t_pos, False), (t_neg, False), (t_w, False)):
        out = np.zeros(T, dtype if a is t_w else np.int32)
        if fill_rows:  # padding blocks belong to their row (weight 0 either way)
            out[: start[-1]] = np.repeat(np.arange(n_rows), padded)
        out[dest] = a
        arrays.append(jnp.asarray(out))
    lam = np.zeros(r_pad, dtype)
    lam[:n_rows] = np.asarray(reg, dtype) * count
    P = _bpr_newton(jnp.asarray(item_factors), jnp.asarray(item_bias), *arrays, jnp.asarray(lam),
                    steps=steps, block=L, blocks=_BLOCKS)
    return np.asarray(P)[:n_rows]


#: The multiples of the spec's ``reg`` that :func:`bpr_fold_in_reg` tries.
BPR_REG_MULTIPLES = tuple(2.0 ** e for e in range(13))


def bpr_fold_in_reg(item_factors, item_bias, user_factors, indptr, items, reg, *,
                    n_sample: int = 48, seed: int = 0) -> float:
    """The fold-in λ under which BPR's row solve gives back the trained user vectors.

    Minibatch training stops long before each user's row objective is minimised
    (Adam's few steps keep ‖p_u‖ small), so the converged Newton solve at the
    training ``reg`` re-solves an unchanged history into a vector several times
    longer (issue #30: norms ×10, NDCG@10 −23%). This picks the λ = m · ``reg`` that
    best reproduces training: up to ``n_sample`` seeded training users with
    interactions are solved at every m in :data:`BPR_REG_MULTIPLES` in one batched
    call (rows are independent), and m minimises ``‖P_m − P‖_F`` over them, refined
    by a parabola in log m through the squared errors of the best grid point and its
    neighbours.

    Args:
        item_factors, item_bias: the trained item side [n_items, k], [n_items].
        user_factors: the trained users [n_users, k].
        indptr, items: the training interactions, CSR by user (the model's seen index).
        reg: the spec's ``reg`` (λ per triple).

    Returns:
        λ for :func:`bpr_rows`; ``reg`` when no sampled user has a nonzero vector.
    """
    count = np.diff(np.asarray(indptr))
    users = np.flatnonzero((count > 0) & (np.linalg.norm(user_factors, axis=1) > 0))
    if users.size == 0 or reg == 0:
        return float(reg)
    rng = np.random.default_rng(seed)
    users = np.sort(rng.choice(users, min(n_sample, users.size), replace=False))
    rows = np.repeat(np.arange(users.size), count[users])
    cols = np.concatenate([items[indptr[u]:indptr[u + 1]] for u in users])
    M, S = len(BPR_REG_MULTIPLES), users.size
    all_rows = (np.arange(M)[:, None] * S + rows[None, :]).reshape(-1)
    regs = np.repeat(np.asarray(BPR_REG_MULTIPLES) * reg, S)
    P = bpr_rows(item_factors, item_bias, all_rows, np.tile(cols, M), M * S, reg=regs)
    target = np.asarray(user_factors)[users]
    err = np.linalg.norm((P.reshape(M, S, -1) - target[None]).reshape(M, -1), axis=1)
    j = int(np.clip(np.argmin(err), 1, M - 2))
    x = np.log(np.asarray(BPR_REG_MULTIPLES[j - 1:j + 2]))
    a, b, _ = np.polyfit(x, err[j - 1:j + 2] ** 2, 2)
    best = -b / (2 * a) if a > 0 else x[int(np.argmin(err[j - 1:j + 2]))]
    return float(reg * np.exp(np.clip(best, x[0], x[2])))


def bpr_row_solve(other_f, other_b, mu, rows, cols, vals, n_rows, hp):
    f = bpr_rows(other_f, other_b, rows, cols, n_rows, reg=hp["reg"])
    return checked_rows(f, hp, vals), np.zeros(n_rows, np.asarray(other_f).dtype)
