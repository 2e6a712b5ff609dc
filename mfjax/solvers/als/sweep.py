"""Exact alternating least squares (ALS-WR with biases) for :func:`mfjax.loss`.

The objective is the one of :mod:`mfjax.objectives.explicit`,

    L = ½ Σ_(u,i,r) w [(μ + b_u + b_i + ⟨p_u, q_i⟩ − r)² + λ(‖p_u‖² + ‖q_i‖²) + λ_b(b_u² + b_i²)]

(penalty per rating, optional weights w). With the items and μ fixed, L is a
quadratic in each user's x_u = [p_u; b_u] separately. With z_i = [q_i; 1] and
the target t = r − μ − b_i, its exact minimiser solves the (k+1)×(k+1) system

    (Σ_{i∈I_u} w z_i z_iᵀ + c_u Λ) x_u = Σ_{i∈I_u} w t z_i,   Λ = diag(λ,…,λ, λ_b),

with c_u = Σ_{i∈I_u} w (the per-rating penalty makes the ridge c_u Λ; this
is ALS-WR). Items are symmetric (z_u = [p_u; 1], t = r − μ − b_u). A row
without ratings (c_u = 0) has the system 0·x = 0; its minimiser is taken to
be x = 0 (the loss does not depend on it) and it is set to 0.

μ is updated too, as its own exact step after the items: L is an
unregularised quadratic in μ, minimised by μ = μ_old + Σ w e / Σ w with e the
residuals r − r̂. So :func:`als_sweep` is exact block-coordinate descent on
(users, items, μ) and L never increases across its steps (up to rounding),
provided every system is positive definite (λ > 0, λ_b > 0, or rows with at
least k+1 ratings in general position). The μ step costs nothing extra: for
item i, Σ_u w e = rhs_i[-1] − G_i[-1]·x_i (the last row of z z^T is z), so it
comes out of the item half-step's own statistics.

Computation. :func:`mfjax.solvers.als.layout.make_layout` sorts the ratings by user and by item once
on the host. A half-step processes rows in chunks of ``rows_per_chunk``
consecutive rows (``lax.map``); a chunk's ratings are a contiguous slice of
the sorted arrays, consumed in windows of ``window`` ratings (a
``while_loop``: a chunk holding a very popular item just takes more windows).
Every row's ratings are padded (weight 0) to whole blocks of b = 16, so a window
is [window/b, b] blocks of one row each: a block's outer products w z zᵀ (D = k+1)
are summed first and one [D, D] per block goes into the chunk's Gram matrices with
``segment_sum`` (a scatter per rating was the sweep's main cost; see
``benchmarks/RESULTS.md``). Memory is O(window·D² / b + rows_per_chunk·D²)
whatever the data size; no Python loop over rows and no [n_ratings, D, D] or
[n_rows, D, D] array.

The solves are Cholesky (``jax.scipy.linalg.cho_factor``/``cho_solve``), one
row at a time under ``lax.map`` by default (``solver="rowwise"``). That is a
workaround: on jaxlib 0.10.x CPU, a *batched* LAPACK call (``vmap`` of
``cho_factor``) splits its batch over XLA's intra-op thread pool with
``jax::ParallelBatchMap`` and blocks the calling pool thread until the pieces
finish; when as many such calls run at once as the pool has threads (2 on a
2-core machine), every pool thread waits for work only a pool thread could do
and the process hangs forever (seen with gdb: both ``tf_XLAEigen`` threads in
``lapack_strsm_ffi → ParallelBatchMap → BlockingCounter::Wait``). A batch of
one never takes that path. ``solver="vmap"`` keeps the batched call (faster
where the hang cannot happen, e.g. accelerators or newer jaxlib).
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ...objectives.explicit import Params
from .layout import Layout, SideLayout

__all__ = [
    "default_window",
    "side_stats",
    "chunk_stats",
    "solve_spd",
    "als_half_step",
    "als_sweep",
]

SOLVERS = ("rowwise", "vmap")


def default_window(rank: int, budget_bytes: int = 32 << 20, itemsize: int = 8) -> int:
    """Ratings per window so that the window's outer products fit ``budget_bytes``."""
    d = rank + 1
    return int(max(64, min(1 << 16, budget_bytes // (d * d * itemsize))))


def side_stats(side: SideLayout, other_factors, other_bias, offset, *, window: int,
               with_sq: bool = False):
    """Per-row sufficient statistics of one side, chunk by chunk.

    For each row u of the side (user, say): with z_i = [q_i; 1] and
    t = r − offset − b_i,

        G_u = Σ w z_i z_iᵀ [D, D],  h_u = Σ w t z_i [D],  c_u = Σ w [],
        s_u = Σ w t² [] (only with ``with_sq``).

    Returns ``(G [n, D, D], h [n, D], c [n], s [n])`` for all n rows at once,
    so it holds n·D² numbers: for tests and small problems. The solvers
    compute the same statistics one chunk at a time instead.
    """
    def per_chunk(c):
        return chunk_stats(side, other_factors, other_bias, offset, c, window, with_sq)
    n_chunks = side.chunk_lo.shape[0]
    out = lax.map(per_chunk, jnp.arange(n_chunks))
    R = side.rows_per_chunk
    return tuple(x.reshape((n_chunks * R,) + x.shape[2:])[: side.n_rows] for x in out)


def chunk_stats(side: SideLayout, other_factors, other_bias, offset, c, window, with_sq):
    """Statistics ``(G [R,D,D], h [R,D], cnt [R], sq [R])`` of chunk c's rows (see :func:`side_stats`).

    The chunk's slice of the sorted, block-padded arrays is read in windows of
    ``window`` ratings (rounded up to whole blocks of b). A window is viewed as
    [W/b, b] blocks, each of one row: the block's b outer products are summed in
    a fused multiply-reduce (Σ_j w_j z_j z_jᵀ, never stored per rating), and one
    ``segment_sum`` adds the [W/b, D, D] block sums into the chunk's rows.
    """
    dtype = other_factors.dtype
    k = other_factors.shape[1]
    D = k + 1
    R = side.rows_per_chunk
    b = side.block
    window = max(b, -(-window // b) * b)
    nb = window // b
    lo, hi = side.chunk_lo[c], side.chunk_hi[c]
    first_row = c * R
    n_win = (hi - lo + window - 1) // window
    nnz = side.keys.shape[0]

    def body(j, acc):
        G, h, cnt, sq = acc
        pos = lo + j * window + jnp.arange(window, dtype=lo.dtype)
        valid = pos < hi
        pos = jnp.minimum(pos, max(nnz - 1, 0))
        o = side.others.at[pos].get(indices_are_sorted=True)
        w = jnp.where(valid, side.weights.at[pos].get(indices_are_sorted=True).astype(dtype), 0)
        t = side.ratings.at[pos].get(indices_are_sorted=True).astype(dtype) - offset - other_bias[o]
        t = jnp.where(valid, t, 0)
        seg = jnp.where(valid, side.keys.at[pos].get(indices_are_sorted=True) - first_row, R)
        seg = seg.reshape(nb, b)[:, 0]                                   # one row per block
        z = jnp.concatenate([other_factors[o], jnp.ones((window, 1), dtype)], axis=1)   # [W, D]
        z = z.reshape(nb, b, D)
        wz = (w[:, None] * z.reshape(window, D)).reshape(nb, b, D)
        wt = (w * t).reshape(nb, b)
        ss = partial(jax.ops.segment_sum, segment_ids=seg, num_segments=R, indices_are_sorted=True)
        G = G + ss(jnp.sum(wz[:, :, :, None] * z[:, :, None, :], axis=1))
        h = h + ss(jnp.sum(wt[:, :, None] * z, axis=1))
        cnt = cnt + ss(jnp.sum(w.reshape(nb, b), axis=1))
        if with_sq:
            sq = sq + ss(jnp.sum(wt * t.reshape(nb, b), axis=1))
        return G, h, cnt, sq

    init = (jnp.zeros((R, D, D), dtype), jnp.zeros((R, D), dtype),
            jnp.zeros((R,), dtype), jnp.zeros((R,), dtype))
    if nnz == 0:
        return init
    return lax.fori_loop(0, n_win, body, init)


def solve_spd(A, b, *, solver: str = "rowwise"):
    """Solve the SPD systems A x = b for a batch: A [B, D, D], b [B, D] -> x [B, D].

    ``solver="rowwise"`` factors one matrix per ``lax.map`` step (avoids the
    jaxlib 0.10.x CPU batched-LAPACK deadlock, see the module docstring);
    ``"vmap"`` makes one batched LAPACK call.
    """
    def one(ab):
        a, v = ab
        return jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(a, lower=True), v)

    if solver == "rowwise":
        return lax.map(one, (A, b))
    if solver == "vmap":
        return jax.vmap(one)((A, b))
    raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")


def _reg_diag(k, reg, bias_reg, dtype):
    return jnp.concatenate([jnp.full((k,), reg, dtype), jnp.full((1,), bias_reg, dtype)])


def als_half_step(side: SideLayout, own_factors, own_bias, other_factors, other_bias, mu, *,
                  reg: float, bias_reg: float, window: int, solver: str = "rowwise",
                  with_sse: bool = False):
    """Exact minimiser of :func:`mfjax.loss` over every row of one side.

    Returns ``(factors [n, k], bias [n], resid_sum [])`` where resid_sum is
    Σ w (r − r̂) over all ratings at the new rows (for the μ step); with
    ``with_sse`` also Σ w (r − r̂)² [] there, from the same statistics
    (s − 2 xᵀh + xᵀGx per row, so no second pass).
    """
    dtype = other_factors.dtype
    k = other_factors.shape[1]
    R = side.rows_per_chunk
    lam = _reg_diag(k, reg, bias_reg, dtype)
    eye = jnp.eye(k + 1, dtype=dtype)

    def per_chunk(c):
        G, h, cnt, sq = chunk_stats(side, other_factors, other_bias, mu, c, window, with_sse)
        empty = cnt <= 0
        A = G + cnt[:, None, None] * jnp.diag(lam)[None]
        A = jnp.where(empty[:, None, None], eye[None], A)
        x = solve_spd(A, jnp.where(empty[:, None], 0, h), solver=solver)
        x = jnp.where(empty[:, None], 0, x)
        resid = jnp.sum(h[:, -1] - jnp.sum(G[:, -1, :] * x, axis=1))
        sse = jnp.sum(sq - 2 * jnp.sum(x * h, 1) + jnp.einsum("rd,rde,re->r", x, G, x)) \
            if with_sse else jnp.zeros((), dtype)
        return x, resid, sse

    n_chunks = side.chunk_lo.shape[0]
    x, resid, sse = lax.map(per_chunk, jnp.arange(n_chunks))
    x = x.reshape(n_chunks * R, k + 1)[: side.n_rows]
    if with_sse:
        return x[:, :k], x[:, k], jnp.sum(resid), jnp.sum(sse)
    return x[:, :k], x[:, k], jnp.sum(resid)


@partial(jax.jit, static_argnames=("window", "solver", "update_mean"))
def als_sweep(params: Params, layout: Layout, *, reg: float, bias_reg: float | None = None,
              window: int | None = None, solver: str = "rowwise",
              update_mean: bool = True) -> Params:
    """One ALS sweep: exact user rows, then exact item rows, then exact μ.

    Each step minimises :func:`mfjax.loss` (with the layout's ratings and
    weights, ``reg`` = λ, ``bias_reg`` = λ_b, default λ) over its block with
    the others fixed, so the loss is non-increasing. Rows without ratings
    are set to 0.

    Args:
        params: current parameters (plain rank-k; no member axis).
        layout: from :func:`make_layout`.
        reg, bias_reg: λ and λ_b (traced; changing them does not recompile).
        window: ratings per Gram window (static); default
            :func:`default_window` for the rank.
        solver: "rowwise" (default; safe on jaxlib 0.10 CPU) or "vmap".
        update_mean: also take the exact μ step (else μ is kept).

    Returns:
        The new :class:`Params`.
    """
    if params.user_factors.ndim != 2:
        raise ValueError("als_sweep handles plain rank-k Params (no member axis)")
    bias_reg = reg if bias_reg is None else bias_reg
    k = params.rank
    if window is None:
        window = default_window(k, itemsize=params.user_factors.dtype.itemsize)
    mu = params.global_bias
    P, bu, _ = als_half_step(layout.users, params.user_factors, params.user_bias,
                             params.item_factors, params.item_bias, mu,
                             reg=reg, bias_reg=bias_reg, window=window, solver=solver)
    Q, bi, resid = als_half_step(layout.items, params.item_factors, params.item_bias,
                                 P, bu, mu, reg=reg, bias_reg=bias_reg, window=window,
                                 solver=solver)
    if update_mean:
        total_w = jnp.sum(layout.items.weights.astype(mu.dtype))
        mu = mu + jnp.where(total_w > 0, resid / jnp.where(total_w > 0, total_w, 1), 0)
    return Params(P, Q, bu, bi, mu)
