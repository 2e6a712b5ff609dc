"""Relation blocks of a Bayesian factorization machine, laid out for the sampler.

A rating (u, i) of an FM over relation blocks (Rendle 2013) has the design row
``[e_u | e_i | x_u | x_i]``: the user and item one-hots, then the user's feature row
x_u [D_U] (attributes, and with ``implicit_features`` its rated items scaled 1/√n_u)
and the item's row x_i [D_I] (attributes, and its raters scaled 1/√n_i). Only the
distinct rows are stored: one sparse matrix X [n_rows, D] per side, never the
[n_ratings, D_U + D_I] design matrix.

Layout of one side (:class:`SideBlocks`, a pytree):

* the columns are ordered by feature group, and every group is padded with empty
  columns to whole chunks of ``chunk`` columns, so each chunk lies in one group
  (its prior precision is one number per factor dimension; see
  :mod:`mfjax.models.bayesian_fm.sampler`);
* X by rows (COO sorted by row) for m = X B [n_rows, K], the rows' feature vectors;
* X by columns (CSC sorted by padded column): chunk c's entries are the contiguous
  slice ``[chunk_lo[c], chunk_hi[c])``, read in windows of ``window`` entries;
* the eigendecomposition G_cc = U_c diag(s_c) U_cᵀ of each chunk's Gram block
  X_cᵀ X_c [chunk, chunk] (constant: X is fixed), so a chunk's conditional needs no
  factorization per sweep.

Memory: O(nnz(X) + D · chunk) per side, whatever the number of ratings.
"""
from __future__ import annotations

import dataclasses
from functools import partial

import jax
import numpy as np
import scipy.sparse as sp

__all__ = ["SideBlocks", "side_blocks", "implicit_block", "attribute_block", "CHUNK", "WINDOW"]

#: Columns per chunk of the coefficient draws.
CHUNK = 128
#: CSC entries per window of a chunk pass.
WINDOW = 16384


@partial(jax.tree_util.register_dataclass,
         data_fields=["rows", "cols", "vals", "c_rows", "c_local", "c_vals", "chunk_lo",
                      "chunk_hi", "basis", "spectrum", "chunk_group", "column_mask",
                      "column_group", "columns"],
         meta_fields=["n_rows", "n_groups", "chunk", "window"])
@dataclasses.dataclass(frozen=True)
class SideBlocks:
    """One side's feature rows X [n_rows, D] (D = n_chunks · chunk padded columns).

    Attributes:
        rows, cols, vals: X as COO sorted by row [nnz] (int32, int32, float).
        c_rows, c_local, c_vals: X as CSC sorted by column [nnz]: row, column within
            its chunk (0..chunk−1), value.
        chunk_lo, chunk_hi: int32 [n_chunks], chunk c's slice of the CSC arrays.
        basis: U_c [n_chunks, chunk, chunk]; spectrum: s_c [n_chunks, chunk] (≥ 0),
            G_cc = U_c diag(s_c) U_cᵀ.
        chunk_group: int32 [n_chunks], the feature group of each chunk.
        column_mask: [D] 1 for a real column, 0 for padding.
        column_group: int32 [D], the group of each column.
        columns: int32 [m], the padded column of each input column (blocks' order).
        n_rows: users (or items); n_groups: feature groups; chunk, window: as above.
    """

    rows: jax.Array
    cols: jax.Array
    vals: jax.Array
    c_rows: jax.Array
    c_local: jax.Array
    c_vals: jax.Array
    chunk_lo: jax.Array
    chunk_hi: jax.Array
    basis: jax.Array
    spectrum: jax.Array
    chunk_group: jax.Array
    column_mask: jax.Array
    column_group: jax.Array
    columns: jax.Array
    n_rows: int
    n_groups: int
    chunk: int = CHUNK
    window: int = WINDOW

    @property
    def n_columns(self) -> int:
        """D, the padded column count."""
        return int(self.column_mask.shape[0])

    def group_sizes(self) -> np.ndarray:
        """int64 [n_groups]: the real columns of each group (host)."""
        return np.bincount(np.asarray(self.column_group)[np.asarray(self.column_mask) > 0],
                           minlength=self.n_groups).astype(np.int64)


def implicit_block(rows, others, n_rows: int, n_others: int) -> sp.csr_matrix:
    """The "flipped SVD++" block [n_rows, n_others]: row r holds 1/√n_r at each distinct
    other index it rated (n_r of them); a row without ratings is empty."""
    X = sp.csr_matrix((np.ones(len(rows)), (np.asarray(rows), np.asarray(others))),
                      shape=(n_rows, n_others))
    X.sum_duplicates()
    X.data[:] = 1.0
    n = np.diff(X.indptr)
    X.data = np.repeat(1.0 / np.sqrt(np.maximum(n, 1)), n)
    return X


def attribute_block(table, raw_ids) -> tuple[sp.csr_matrix, np.ndarray, tuple]:
    """A FeatureTable's rows for ``raw_ids`` (its ``rows_for``) as CSR [n, n_columns], with
    its column groups (int [n_columns]) and group names; IDs without features: empty rows."""
    indptr, indices, values, _ = table.rows_for(raw_ids)
    X = sp.csr_matrix((np.asarray(values, np.float64), np.asarray(indices), np.asarray(indptr)),
                      shape=(len(indptr) - 1, table.n_columns))
    return X, np.asarray(table.groups, np.int64), tuple(table.group_names)


def side_blocks(blocks: list, n_rows: int, dtype, *, chunk: int = CHUNK,
                window: int = WINDOW) -> SideBlocks | None:
    """Lay out one side's feature blocks; None when they have no column.

    Args:
        blocks: ``[(X csr [n_rows, m_b], groups int [m_b]), ...]``, group numbers global
            over the blocks (0..G−1, each group's columns in one block or several).
        n_rows: the side's rows.
        dtype: the values' dtype.
        chunk, window: as in the module docstring.
    """
    mats = [sp.csr_matrix(X, dtype=np.float64) for X, _ in blocks]
    if not mats or sum(X.shape[1] for X in mats) == 0:
        return None
    X = sp.hstack(mats, format="csc")
    groups = np.concatenate([np.asarray(g, np.int64) for _, g in blocks])
    n_groups = int(groups.max()) + 1
    order = np.argsort(groups, kind="stable")             # columns grouped
    sizes = np.bincount(groups, minlength=n_groups)
    padded = -(-sizes // chunk) * chunk
    start = np.concatenate([[0], np.cumsum(padded)[:-1]])
    gstart = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    new_col = np.empty(len(groups), np.int64)             # original column -> padded column
    new_col[order] = start[groups[order]] + (np.arange(len(groups)) - gstart[groups[order]])
    D = int(padded.sum())
    X = sp.csc_matrix((X.data, X.indices, X.indptr), shape=X.shape)
    coo = X.tocoo()
    Xp = sp.csc_matrix((coo.data, (coo.row, new_col[coo.col])), shape=(n_rows, D))
    Xp.sum_duplicates()
    Xp.sort_indices()
    column_group = np.repeat(np.arange(n_groups), padded)
    mask = np.zeros(D)
    mask[new_col] = 1.0
    n_chunks = D // chunk
    basis, spectrum = _chunk_eigen(Xp, n_chunks, chunk)
    csc_cols = np.repeat(np.arange(D), np.diff(Xp.indptr))
    r = Xp.tocsr()
    r.sort_indices()
    put = lambda a, t: jax.device_put(np.asarray(a).astype(t))
    return SideBlocks(
        rows=put(np.repeat(np.arange(n_rows), np.diff(r.indptr)), np.int32),
        cols=put(r.indices, np.int32), vals=put(r.data, dtype),
        c_rows=put(Xp.indices, np.int32), c_local=put(csc_cols % chunk, np.int32),
        c_vals=put(Xp.data, dtype),
        chunk_lo=put(Xp.indptr[:-1:chunk], np.int32), chunk_hi=put(Xp.indptr[chunk::chunk], np.int32),
        basis=put(basis, dtype), spectrum=put(spectrum, dtype),
        chunk_group=put(column_group[::chunk], np.int32), column_mask=put(mask, dtype),
        column_group=put(column_group, np.int32), columns=put(new_col, np.int32), n_rows=int(n_rows), n_groups=n_groups,
        chunk=int(chunk), window=int(window))


def _chunk_eigen(Xp: sp.csc_matrix, n_chunks: int, chunk: int):
    """(U [n_chunks, chunk, chunk], s [n_chunks, chunk]): eigh of each chunk's X_cᵀ X_c."""
    basis = np.empty((n_chunks, chunk, chunk))
    spectrum = np.empty((n_chunks, chunk))
    for c in range(n_chunks):
        Xc = Xp[:, c * chunk:(c + 1) * chunk]
        s, U = np.linalg.eigh((Xc.T @ Xc).toarray())
        basis[c], spectrum[c] = U, np.maximum(s, 0.0)
    return basis, spectrum
