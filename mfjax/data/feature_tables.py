"""One side's features as a CSR matrix keyed by raw ID: :class:`FeatureTable`.

The contract model packages read (see :mod:`mfjax.data.features`): ``ids``, ``indptr``,
``indices``, ``values``, ``column_names``, ``groups``, ``group_names``, and the lookups
:meth:`FeatureTable.rows_for` and :meth:`FeatureTable.dense`. :func:`table_from_matrix`
builds one from a scipy sparse matrix or a dense array (``Features.from_csr``).

Example:
    >>> t = FeatureTable([7, 9], [0, 1, 1], [0], [1.0], ["a=1"], [0], ["a"])
    >>> t.dense([9, 7]).tolist()
    [[0.0], [1.0]]
"""
from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np
import pandas as pd

from .ids import check_unique, id_array, lookup, show

__all__ = ["FeatureTable", "table_from_matrix"]


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureTable:
    """One side's features: a CSR matrix [n_rows, n_columns] whose rows are raw IDs.

    Attributes:
        ids: raw IDs [n_rows], unique (ints, strings, ...: the ratings' kind).
        indptr: int64 [n_rows + 1], the CSR row pointer.
        indices: int32 [nnz], column of each stored value (sorted within a row).
        values: float32 [nnz], finite.
        column_names: m names (``"gender=M"``, ``"genres=Comedy"``, ``"age"``).
        groups: int32 [m], the group index of each column.
        group_names: g names, the source columns (``"gender"``, ``"genres"``).

    Raises:
        ValueError: (on construction) anything inconsistent, naming the field.
    """

    ids: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    column_names: tuple
    groups: np.ndarray
    group_names: tuple

    def __post_init__(self):
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen)
        put("ids", id_array(self.ids))
        put("column_names", tuple(str(x) for x in self.column_names))
        put("group_names", tuple(str(x) for x in self.group_names))
        for k, dtype in (("indptr", np.int64), ("indices", np.int32), ("values", np.float32),
                         ("groups", np.int32)):
            a = np.asarray(getattr(self, k))
            if a.ndim != 1 or (a.size and a.dtype.kind not in ("iu" if k != "values" else "iuf")):
                raise ValueError(f"FeatureTable: {k} must be a 1-D numeric array, got "
                                 f"{a.dtype} of shape {a.shape}")
            put(k, a.astype(dtype, copy=False))
        self._check()

    def _check(self) -> None:
        n, m, nnz = len(self.ids), len(self.column_names), len(self.indices)
        if n == 0:
            raise ValueError("FeatureTable: no rows (ids is empty)")
        check_unique(self.ids, "FeatureTable: ids")
        p = self.indptr
        if len(p) != n + 1 or p[0] != 0 or p[-1] != nnz or (np.diff(p) < 0).any():
            raise ValueError(f"FeatureTable: indptr is not a CSR row pointer for {n} rows over "
                             f"{nnz} values")
        if len(self.values) != nnz:
            raise ValueError(f"FeatureTable: {len(self.values)} values but {nnz} indices")
        if nnz and (self.indices.min() < 0 or self.indices.max() >= m):
            raise ValueError(f"FeatureTable: indices outside [0, {m}) ({m} column names)")
        if not np.isfinite(self.values).all():
            j = int(np.flatnonzero(~np.isfinite(self.values))[0])
            row = int(np.searchsorted(p, j, side="right") - 1)
            raise ValueError(f"FeatureTable: the value of ID {show(self.ids[row])!r}, column "
                             f"{self.column_names[self.indices[j]]!r} is {self.values[j]}")
        if len(self.groups) != m:
            raise ValueError(f"FeatureTable: {len(self.groups)} groups for {m} columns")
        g = len(self.group_names)
        if m and (self.groups.min() < 0 or self.groups.max() >= g):
            raise ValueError(f"FeatureTable: groups outside [0, {g}) ({g} group names)")

    @property
    def n_rows(self) -> int:
        """How many IDs have features."""
        return len(self.ids)

    @property
    def n_columns(self) -> int:
        """How many columns (over every group)."""
        return len(self.column_names)

    @property
    def nnz(self) -> int:
        """How many stored values."""
        return len(self.values)

    @cached_property
    def index(self) -> pd.Index:
        """``ids`` as a hash index (raw ID -> row)."""
        return pd.Index(self.ids)

    def positions(self, raw_ids) -> np.ndarray:
        """int32 [n]: the row of each raw ID, -1 where it has no features.

        Raises:
            TypeError: an ID of the other kind that names one here (``"5"`` for 5).
        """
        return np.atleast_1d(lookup(self.index, raw_ids, "ignore", "feature"))

    def rows_for(self, raw_ids):
        """The CSR rows of ``raw_ids`` [n], in that order.

        Args:
            raw_ids: raw IDs [n] (a model's ``user_ids``, a test set's, ...).

        Returns:
            ``(indptr int64 [n+1], indices int32 [nnz'], values float32 [nnz'],
            known bool [n])``; an ID without features has an empty row and known False.
        """
        pos = self.positions(raw_ids)
        known = pos >= 0
        lengths = np.where(known, np.diff(self.indptr)[np.maximum(pos, 0)], 0)
        indptr = np.zeros(len(pos) + 1, np.int64)
        np.cumsum(lengths, out=indptr[1:])
        starts = np.repeat(self.indptr[np.maximum(pos, 0)] - indptr[:-1], lengths)
        take = np.arange(indptr[-1], dtype=np.int64) + starts
        return indptr, self.indices[take], self.values[take], known

    def dense(self, raw_ids) -> np.ndarray:
        """float32 [n, n_columns]: the rows of ``raw_ids`` as a dense matrix (small cases);
        zeros where an ID has no features."""
        indptr, indices, values, _ = self.rows_for(raw_ids)
        out = np.zeros((len(indptr) - 1, self.n_columns), np.float32)
        rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        out[rows, indices] = values
        return out

    def group_of(self, name: str) -> np.ndarray:
        """int32: the columns of the group ``name``. Raises KeyError naming the groups."""
        if name not in self.group_names:
            raise KeyError(f"no feature group {name!r}; the groups are {list(self.group_names)}")
        return np.flatnonzero(self.groups == self.group_names.index(name)).astype(np.int32)

    def __repr__(self) -> str:
        return (f"FeatureTable({self.n_rows} IDs x {self.n_columns} columns in "
                f"{len(self.group_names)} groups {list(self.group_names)}, {self.nnz} values)")


def table_from_matrix(arg, side: str) -> FeatureTable:
    """The table of ``Features.from_csr``'s ``users=``/``items=`` argument
    ``(ids, matrix[, column_names[, groups]])`` (see there).

    Raises:
        TypeError: not such a tuple, or a matrix of another type.
        ValueError: shapes that disagree, repeated IDs, non-finite values.
    """
    where = f"Features.from_csr: {side}"
    if not isinstance(arg, (tuple, list)) or not 2 <= len(arg) <= 4:
        raise TypeError(f"{where} must be (ids, matrix[, column_names[, groups]]), got "
                        f"{type(arg).__name__}")
    ids, matrix, names, groups = (*arg, None, None)[:4]
    ids = id_array(ids)
    if ids.dtype.kind in "iu":
        ids = ids.astype(np.int64)
    indptr, indices, values, shape = _csr_parts(matrix, where)
    if shape[0] != len(ids):
        raise ValueError(f"{where}: the matrix has {shape[0]} rows but there are {len(ids)} IDs")
    names = [f"x{j}" for j in range(shape[1])] if names is None else [str(x) for x in names]
    if len(names) != shape[1]:
        raise ValueError(f"{where}: {len(names)} column names for {shape[1]} columns")
    groups = ["features"] * shape[1] if groups is None else [str(g) for g in groups]
    if len(groups) != shape[1]:
        raise ValueError(f"{where}: {len(groups)} groups for {shape[1]} columns")
    codes, group_names = pd.factorize(pd.Series(groups, dtype=object), sort=False)
    check_unique(ids, f"{where}: ids")
    return FeatureTable(ids, indptr, indices, values, names, codes, list(group_names))


def _csr_parts(matrix, where: str):
    """``(indptr, indices, values, shape)`` of a scipy sparse matrix or a 2-D array."""
    if hasattr(matrix, "tocsr"):
        m = matrix.tocsr()
        m.sum_duplicates()
        m.sort_indices()
        return m.indptr, m.indices, m.data, m.shape
    a = np.asarray(matrix) if isinstance(matrix, np.ndarray) else None
    if a is None or a.ndim != 2 or a.dtype.kind not in "biuf":
        raise TypeError(f"{where}: the matrix must be a scipy.sparse matrix or a 2-D numeric "
                        f"NumPy array, got {type(matrix).__name__}")
    rows, cols = np.nonzero(a)
    indptr = np.zeros(a.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=a.shape[0]), out=indptr[1:])
    return indptr, cols, a[rows, cols], a.shape
