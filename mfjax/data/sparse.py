"""SciPy sparse conversions of :class:`mfjax.data.Ratings` (behind ``to_csr`` / ``from_csr``).

A user x item matrix is the layout the ``implicit`` library takes: rows are users,
columns items, every stored entry one observation (explicit zeros included). SciPy is
an optional dependency (``pip install 'mfjax[sparse]'``), imported on first use.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .columns import dedup_keep
from .ids import id_array, show

__all__ = ["ratings_to_csr", "ratings_from_csr"]


def ratings_to_csr(r, duplicates: str):
    """:meth:`mfjax.data.Ratings.to_csr` (see there): ``scipy.sparse.csr_matrix``."""
    if duplicates not in ("raise", "sum"):
        raise ValueError(f"to_csr: duplicates must be 'raise' or 'sum', got {duplicates!r}")
    sp = _scipy_sparse()
    if duplicates == "raise" and len(r):
        keep = dedup_keep(r.users, r.items, r.n_items, None)
        if keep is not None:
            j = int(np.flatnonzero(~keep)[0])
            raise ValueError(
                f"to_csr: {int((~keep).sum()):,} repeated (user, item) pairs, e.g. "
                f"({show(r.user_ids[r.users[j]])!r}, {show(r.item_ids[r.items[j]])!r}); "
                f"pass duplicates='sum', or de-duplicate with "
                f"Ratings.from_frame(r.to_frame())"
            )
    m = sp.csr_matrix((r.ratings, (r.users, r.items)),
                      shape=(r.n_users, r.n_items), dtype=np.float32)
    m.sort_indices()
    return m


def ratings_from_csr(cls, matrix, user_ids, item_ids):
    """:meth:`mfjax.data.Ratings.from_csr` (see there): a ``cls`` instance."""
    sp = _scipy_sparse()
    if not sp.issparse(matrix):
        raise TypeError(
            f"Ratings.from_csr: need a scipy.sparse matrix, got {type(matrix).__name__} "
            f"(for a dense array, scipy.sparse.csr_matrix(a) stores its non-zeros)"
        )
    if matrix.ndim != 2:
        raise ValueError(f"Ratings.from_csr: matrix must be 2-D, got shape {matrix.shape}")
    n_rows, n_cols = matrix.shape
    tables = []
    for name, ids, n in (("user_ids", user_ids, n_rows), ("item_ids", item_ids, n_cols)):
        ids = np.arange(n) if ids is None else id_array(ids)
        if len(ids) != n:
            raise ValueError(
                f"Ratings.from_csr: {name} has {len(ids)} entries but the matrix has "
                f"{n} {'rows' if name == 'user_ids' else 'columns'}"
            )
        if not pd.Index(ids).is_unique:
            raise ValueError(f"Ratings.from_csr: {name} repeats an ID")
        tables.append(ids)
    coo = sp.coo_matrix(matrix, copy=True)
    coo.sum_duplicates()  # canonical: row-major, one entry per cell
    data = np.asarray(coo.data, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(data))
    if bad.size:
        j = int(bad[0])
        raise ValueError(
            f"Ratings.from_csr: entry ({int(coo.row[j])}, {int(coo.col[j])}) = {data[j]} "
            f"is not finite ({bad.size} non-finite entries)"
        )
    return cls(coo.row.astype(np.int32), coo.col.astype(np.int32),
               data.astype(np.float32), None, tables[0], tables[1])


def _scipy_sparse():
    """``scipy.sparse``, imported on first use (SciPy is an optional dependency)."""
    try:
        import scipy.sparse
    except ImportError as e:
        raise ImportError("sparse-matrix conversions need SciPy: pip install 'mfjax[sparse]'") from e
    return scipy.sparse
