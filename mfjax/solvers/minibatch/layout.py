"""The training data on the device: sorted once on the host, as a padded grid of minibatches.

The ratings are sorted once (:func:`radix_order`, a radix sort by key, then by the
other index, which also yields the model's seen-item index, :func:`seen_index`) and
put on the device once, as the grid of :func:`build_grid`. Every minibatch is then
one slot of every grid row: sorted by key, the same shape every step, and reshuffled
per epoch for O(rows) random numbers instead of a permutation of all ratings.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ... import distributed
from ...data import Ratings
from ...data.interactions import radix_order, seen_index
from .gradients import MAX_BLOCK, make_blocks

__all__ = ["Grid", "ROW_QUANTUM", "radix_order", "seen_index", "rows_per_key", "padding_share",
           "grid_shape", "build_grid", "place_grid"]


class Grid(NamedTuple):
    """The training data on the device, as the [R, n_batches] grid of :func:`build_grid`."""

    keys: jax.Array      # [R] int32, key of each row
    others: jax.Array    # [R * n_batches] int32
    ratings: jax.Array   # [R * n_batches] float32, NaN marks padding
    blocks: tuple


def rows_per_key(train: Ratings, sort_by: str, n_batches: int) -> np.ndarray:
    """Grid rows of each key: ⌈c_u / n_batches⌉ for a key with c_u ratings [n_keys]."""
    keys = train.users if sort_by == "users" else train.items
    n_keys = train.n_users if sort_by == "users" else train.n_items
    return -(-np.bincount(keys, minlength=n_keys) // n_batches)


def padding_share(train: Ratings, sort_by: str, n_batches: int) -> float:
    """Share of the grid's slots that are padding."""
    slots = int(rows_per_key(train, sort_by, n_batches).sum()) * n_batches
    return 1.0 - len(train) / slots


#: The grid's row count is rounded up to a multiple of this (with all-padding
#: rows of the last key), so fits on similar data (k folds, say) share shapes
#: and reuse one compiled epoch.
ROW_QUANTUM = 128


def grid_shape(train: Ratings, sort_by: str, n_batches: int) -> tuple[int, int]:
    """(rows, n_batches) of :func:`build_grid`'s grid, without building it."""
    rows = int(rows_per_key(train, sort_by, n_batches).sum())
    return rows + (-rows % ROW_QUANTUM), n_batches


def build_grid(train: Ratings, sort_by: str, n_batches: int, order: np.ndarray,
            blocks: bool = True) -> Grid:
    """The training data on the device, sorted and padded once on the host.

    ``order`` sorts the ratings by key (``sort_by``), then by the other index.
    Each key u (a user when ``sort_by="users"``) with c_u ratings gets
    m_u = ⌈c_u / n_batches⌉ rows of a grid with ``n_batches`` columns; its
    ratings fill them row by row and the last row's leftover slots are
    padding (rating NaN, weight 0). Rows are in key order.
    :func:`mfjax.solvers.minibatch.epoch.make_epoch` builds batch b from one slot of every row (column
    ``(π(b) + o_j) mod n_batches`` of row j, with a fresh random offset o_j
    per row and batch order π per epoch), so:

    - every minibatch holds m_u slots of key u (~1/n_batches of its
      ratings, a stratified sample), in the same R = Σ m_u positions, sorted
      by key: gathers read the key's table in order, scatter-adds are sorted,
      and the ``"blocked"`` route's blocks (:func:`mfjax.solvers.minibatch.gradients.make_blocks`
      of the row keys) are the same for every batch;
    - every rating is in exactly one batch per epoch, and the per-epoch remix
      costs O(R) random numbers instead of a permutation of all ratings
      (``jax.random.permutation`` of 20M indices takes ~17 s on a 2-core CPU).

    On a GPU sorted scatters also keep XLA's f32 scatter-add off contended
    atomics, which jaxlib 0.10.2-0.11.0 compiles into a slow compare-and-swap
    loop (jax issue 38806).

    ``blocks=False`` leaves the blocks out (only the ``"blocked"`` route needs
    them, and their shapes would tie the compiled epoch to this data).
    """
    n = len(train)
    keys, others = ((train.users, train.items) if sort_by == "users" else (train.items, train.users))
    counts = np.bincount(keys, minlength=train.n_users if sort_by == "users" else train.n_items)
    rows = -(-counts // n_batches)
    rows[-1] += -int(rows.sum()) % ROW_QUANTUM  # all-padding rows, still in key order
    row_start = np.cumsum(rows) - rows
    group_start = np.cumsum(counts) - counts
    n_slots = int(rows.sum()) * n_batches
    grid_others = np.zeros(n_slots, np.int32)
    grid_ratings = np.full(n_slots, np.nan, np.float32)
    chunk = 1 << 22  # bounds the int64 temporaries
    for lo in range(0, n, chunk):
        sel = order[lo:lo + chunk]
        k = keys[sel]
        # The j-th rating of key k goes to slot j of k's rows.
        slot = row_start[k] * n_batches + (np.arange(lo, lo + len(sel)) - group_start[k])
        grid_others[slot] = others[sel]
        grid_ratings[slot] = train.ratings[sel]
    row_keys = np.repeat(np.arange(len(rows), dtype=np.int32), rows)
    blocks = tuple((jnp.asarray(k), jnp.asarray(p)) for k, p in make_blocks(row_keys, MAX_BLOCK)) \
        if blocks else ()
    return Grid(jnp.asarray(row_keys), jnp.asarray(grid_others), jnp.asarray(grid_ratings), blocks)

def place_grid(grid: Grid, n_batches: int, place: distributed.Placement) -> Grid:
    """Pad the grid to a multiple of the data axis in rows and split it over the mesh.

    Padding rows repeat the last key (the rows stay sorted) and hold only NaN
    ratings (weight 0); the epoch gives them offset 0, and the real rows get
    the same offsets as on one device, so the minibatches are unchanged.
    """
    keys, others, ratings = (np.asarray(x) for x in grid[:3])
    pad = -len(keys) % place.data_size
    if pad:
        keys = np.concatenate([keys, np.full(pad, keys[-1], keys.dtype)])
        others = np.concatenate([others, np.zeros(pad * n_batches, others.dtype)])
        ratings = np.concatenate([ratings, np.full(pad * n_batches, np.nan, ratings.dtype)])
    blocks = tuple((place.put_replicated(k), place.put_replicated(p))
                   for k, p in make_blocks(keys, MAX_BLOCK)) if grid.blocks else ()
    return Grid(place.put_data(keys), place.put_data(others), place.put_data(ratings), blocks)
