"""The block-padded CSR layout of the exact solvers (ALS, Gibbs) and its squared error.

:func:`make_layout` sorts the ratings by user and by item once on the host; each row's
ratings are padded (weight 0) to whole blocks, and the sorted arrays to bucketed lengths
so that data of similar size shares compiled programs (the folds of a cross-validation).
:mod:`mfjax.solvers.als.sweep` and :mod:`mfjax.solvers.gibbs.sampler` consume it, and the
C++ kernels (:mod:`mfjax.kernels.als`) read the same arrays.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ...objectives.explicit import Params
from ...plumbing import bucket

__all__ = ["SideLayout", "Layout", "make_layout", "squared_error", "ERROR_CHUNK"]


@partial(jax.tree_util.register_dataclass,
         data_fields=["keys", "others", "ratings", "weights", "chunk_lo", "chunk_hi"],
         meta_fields=["n_rows", "rows_per_chunk", "block"])
@dataclasses.dataclass(frozen=True)
class SideLayout:
    """The ratings sorted by one side's index (users, or items), with row chunks.

    Each row's ratings are padded with weight-0 entries (other index 0, rating 0)
    to a multiple of ``block``, so nnz below counts the padding.

    Attributes:
        keys: the sorted row index of each rating [nnz], int32.
        others: the other side's index of each rating [nnz], int32.
        ratings: ratings [nnz].
        weights: per-rating weights [nnz] (all 1 unless given).
        chunk_lo, chunk_hi: [n_chunks] the slice ``[lo, hi)`` of the sorted
            arrays holding the ratings of rows ``[c·R, (c+1)·R)``.
        n_rows: the number of rows of this side.
        rows_per_chunk: R.
        block: b, the padding granule (every row's slice is whole blocks).
    """

    keys: jax.Array
    others: jax.Array
    ratings: jax.Array
    weights: jax.Array
    chunk_lo: jax.Array
    chunk_hi: jax.Array
    n_rows: int
    rows_per_chunk: int
    block: int = 16


@partial(jax.tree_util.register_dataclass, data_fields=["users", "items"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class Layout:
    """Both sorted views of one set of ratings (a pytree; pass it through jit)."""

    users: SideLayout
    items: SideLayout

    @property
    def n_users(self) -> int:
        return self.users.n_rows

    @property
    def n_items(self) -> int:
        return self.items.n_rows


def _stable_order(keys) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` for keys in [0, 2^32), by 16-bit radix passes
    (NumPy's stable argsort of uint16 is a counting sort: ~5x faster on ML-1M)."""
    if keys.size and int(keys.max()) >= 1 << 32:
        return np.argsort(keys, kind="stable")
    order = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    if keys.size and int(keys.max()) >> 16:
        order = order[np.argsort((keys[order] >> 16).astype(np.uint16), kind="stable")]
    return order


def _side(keys, others, ratings, weights, n_rows, rows_per_chunk, dtype, block):
    order = _stable_order(keys)
    k = keys[order]
    # Pad every row's ratings to a multiple of ``block`` (weight-0 entries), so the
    # sorted arrays are whole blocks, each of one row: the Gram build reduces a block
    # in registers and scatters one [D, D] per block, not one per rating.
    counts = np.bincount(k, minlength=n_rows).astype(np.int64)
    padded = -(-counts // block) * block
    start = np.concatenate([[0], np.cumsum(padded)])
    first = np.concatenate([[0], np.cumsum(counts)])[:-1]
    used = int(start[-1])
    # The arrays' length is bucketed (weight-0 entries of the last row appended after
    # every chunk's slice, so nothing reads them as ratings): splits of one data set
    # (cross-validation folds) then share shapes and reuse one compiled sweep.
    total = bucket(used, block) if n_rows else used
    dest = start[k] + (np.arange(len(k)) - first[k])
    pk = np.repeat(np.arange(n_rows), padded)
    if total > used:
        pk = np.concatenate([pk, np.full(total - used, n_rows - 1, pk.dtype)])
    po = np.zeros(total, np.int64)
    pr = np.zeros(total, np.float64)
    pw = np.zeros(total, np.float64)
    po[dest], pr[dest], pw[dest] = others[order], ratings[order], weights[order]
    n_chunks = max(1, -(-n_rows // rows_per_chunk))
    bounds = start[np.minimum(np.arange(n_chunks + 1) * rows_per_chunk, n_rows)]
    # Cast on the host: a device-side cast would compile one small program per array.
    put = lambda x, t: jax.device_put(np.asarray(x).astype(np.dtype(t)))
    return SideLayout(
        keys=put(pk, np.int32),
        others=put(po, np.int32),
        ratings=put(pr, dtype),
        weights=put(pw, dtype),
        chunk_lo=put(bounds[:-1], np.int32),
        chunk_hi=put(bounds[1:], np.int32),
        n_rows=int(n_rows),
        rows_per_chunk=int(rows_per_chunk),
        block=int(block),
    )


def make_layout(users, items, ratings, *, n_users: int, n_items: int, weights=None,
                rows_per_chunk: int = 256, dtype=None, block: int = 16) -> Layout:
    """Sort the ratings by user and by item, once, on the host.

    Args:
        users, items: indices [n] in [0, n_users) and [0, n_items) (checked).
        ratings: ratings [n].
        n_users, n_items: table sizes (rows without ratings are allowed).
        weights: optional per-rating weights [n] (as in :func:`mfjax.loss`).
        rows_per_chunk: rows solved per ``lax.map`` step; bounds the Gram
            matrices held at once to rows_per_chunk·(k+1)² numbers.
        dtype: float dtype of ratings and weights; default float64 when x64 is
            enabled, else float32.
        block: pad each row's ratings (weight 0) to a multiple of this many, so
            Gram matrices are reduced per block of one row (see :func:`chunk_stats`).

    Returns:
        A :class:`Layout`.
    """
    from ...plumbing import validate_ratings

    validate_ratings(users, items, ratings, n_users=n_users, n_items=n_items, where="make_layout")
    if rows_per_chunk < 1:
        raise ValueError(f"rows_per_chunk must be >= 1, got {rows_per_chunk}")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    u = np.asarray(users, np.int64)
    i = np.asarray(items, np.int64)
    r = np.asarray(ratings, np.float64)
    w = np.ones_like(r) if weights is None else np.asarray(weights, np.float64)
    if w.shape != r.shape:
        raise ValueError(f"make_layout: weights shape {w.shape} != ratings shape {r.shape}")
    if dtype is None:
        dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    return Layout(
        users=_side(u, i, r, w, n_users, rows_per_chunk, dtype, block),
        items=_side(i, u, r, w, n_items, rows_per_chunk, dtype, block),
    )


#: Ratings per step of :func:`squared_error` (its gather holds [this, k] numbers).
ERROR_CHUNK = 1 << 18


def squared_error(params: Params, layout: Layout):
    """Σ w e² [] at ``params`` over the layout's ratings (user side), e = r − r̂.

    Steps through :data:`ERROR_CHUNK` ratings at a time, so no [nnz, k] gather is held.
    """
    side = layout.users
    nnz = side.keys.shape[0]
    step = min(nnz, ERROR_CHUNK)
    n_steps = -(-nnz // step)
    pad = lambda x: jnp.pad(x, (0, n_steps * step - nnz)).reshape(n_steps, step)
    keys, others, ratings = pad(side.keys), pad(side.others), pad(side.ratings)
    weights = pad(side.weights)  # padding: weight 0
    p = params

    def per_step(carry, c):
        u, i = keys[c], others[c]
        e = (ratings[c].astype(p.user_factors.dtype) - p.global_bias - p.user_bias[u]
             - p.item_bias[i] - jnp.sum(p.user_factors[u] * p.item_factors[i], 1))
        return carry + jnp.sum(weights[c].astype(e.dtype) * e * e), None

    total, _ = lax.scan(per_step, jnp.zeros((), p.user_factors.dtype), jnp.arange(n_steps))
    return total
