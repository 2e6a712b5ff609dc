"""Host-side helpers of top-N lists (NumPy in, NumPy out).

:func:`csr_rows` selects rows of a CSR index (a model's seen items per user), and
:func:`auto_batch_size` sizes the user chunks of
:func:`mfjax.serving.recommend.recommend_indices`.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["csr_rows", "auto_batch_size", "SCORE_BLOCK_BYTES"]

#: Bytes of the [batch, n_items] score block that :func:`auto_batch_size` stays under:
#: small enough to be reused memory, large enough that per-call overhead does not matter
#: (tuned in benchmarks/bench_recommend.py).
SCORE_BLOCK_BYTES = 8 << 20


def csr_rows(indptr: np.ndarray, indices: np.ndarray,
             rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Select rows of a CSR structure; a row of -1 selects an empty row.

    Args:
        indptr: [n_rows + 1].
        indices: [nnz].
        rows: row numbers [b], each in [-1, n_rows).

    Returns:
        ``(indptr [b + 1], indices [nnz'])`` of the selected rows, in order.
    """
    rows = np.asarray(rows, np.int64)
    if len(rows) == len(indptr) - 1 and np.array_equal(rows, np.arange(len(rows))):
        return np.asarray(indptr, np.int64), indices  # every row in order: no copy
    start = np.where(rows >= 0, indptr[np.maximum(rows, 0)], 0)
    count = np.where(rows >= 0, indptr[np.maximum(rows, 0) + 1] - start, 0)
    out_ptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(count, out=out_ptr[1:])
    # Position of every selected entry in `indices`: its row's start plus its offset.
    offsets = np.arange(out_ptr[-1], dtype=np.int64) - np.repeat(out_ptr[:-1], count)
    return out_ptr, indices[np.repeat(start, count) + offsets]


def auto_batch_size(n_users: int, n_items: int, itemsize: int = 4) -> int:
    """Users per chunk: a power of two whose [batch, n_items] score block is ≤ ~8 MB.

    Small on purpose: on CPU, XLA's scratch memory for a call (about twice the
    block) is fresh memory from the OS on every call once it passes glibc's
    32 MB mmap threshold, and the page faults then cost more than the
    arithmetic (see benchmarks/bench_recommend.py); below it, it is reused.
    Never more than ``n_users`` rounded up to a power of two, never below 8.
    """
    target = max(8, SCORE_BLOCK_BYTES // max(1, n_items * itemsize))
    target = 1 << int(math.floor(math.log2(target)))
    return int(max(1, min(target, 1 << max(0, math.ceil(math.log2(max(n_users, 1)))))))
