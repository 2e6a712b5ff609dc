"""The iALS half-steps' shared padded layout: both sides' CSR views at one set of shapes.

:func:`shared_layouts` pads the user and the item view of an
:class:`~mfjax.data.interactions.ImplicitData` to common bucketed shapes
(:func:`mfjax.plumbing.bucket`), so both half-steps (and later fits of similar size) run one
compiled program; the true row counts travel as traced values.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from ...data.interactions import ImplicitData
from ...plumbing import bucket

__all__ = ["SideLayout", "shared_layouts"]


class SideLayout(NamedTuple):
    """One side's CSR view, zero-padded to shared (bucketed) static shapes.

    Attributes:
        indptr: [n_pad + 1] int32; rows past the true count are empty (pointer nnz).
        cols: [nnz_pad] int32, the other side's index of each position (padding 0).
        vals: [nnz_pad] float, v (padding 0; never addressed by indptr).
        n_rows: () int32, the true row count of this side.
        n_other: () int32, the true row count of the other side.
    """

    indptr: jax.Array
    cols: jax.Array
    vals: jax.Array
    n_rows: jax.Array
    n_other: jax.Array




def shared_layouts(data: ImplicitData, *, chunk_rows: int = 256) -> tuple[SideLayout, SideLayout]:
    """(users, items) views of ``data`` padded to ONE set of shapes for :func:`mfjax.models.implicit_als.steps.half_step_exact`.

    Rows are padded to ``bucket(max(n_users, n_items), chunk_rows)`` and the positions to
    ``bucket(nnz)``, so the user and the item half-step (and any other data set whose
    sizes fall in the same buckets) run the same executable.
    """
    n_u, n_i = data.n_users, data.n_items
    nnz = int(data.user_items.shape[0])
    n_pad, nnz_pad = bucket(max(n_u, n_i), chunk_rows), bucket(nnz)

    def side(indptr, cols, vals, n, n_other):
        indptr = np.asarray(indptr)
        cols, vals = np.asarray(cols), np.asarray(vals)
        ip = np.full(n_pad + 1, nnz, np.int32)
        ip[:n + 1] = indptr
        c = np.zeros(nnz_pad, np.int32)
        c[:nnz] = cols
        v = np.zeros(nnz_pad, vals.dtype)
        v[:nnz] = vals
        return SideLayout(*jax.device_put((ip, c, v, np.int32(n), np.int32(n_other))))

    return (side(data.user_indptr, data.user_items, data.user_values, n_u, n_i),
            side(data.item_indptr, data.item_users, data.item_values, n_i, n_u))
