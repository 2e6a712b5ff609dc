"""Side information keyed by raw ID: :class:`Features` (users and items), :class:`FeatureTable`.

A :class:`FeatureTable` is one side's features: a CSR matrix with one row per raw ID
(``ids``, unique) and named columns, each column in one *feature group* (a source
column: ``"gender"``, ``"genres"``, ``"age"``). A :class:`Features` holds a user table
and an item table, either may be None. Model packages read them through this contract
(and nothing else):

- ``FeatureTable``: ``ids`` [n_rows] (raw IDs), ``indptr`` int64 [n_rows+1], ``indices``
  int32 [nnz], ``values`` float32 [nnz], ``column_names`` (m strings such as
  ``"gender=M"``, ``"genres=Comedy"``, ``"age"``), ``groups`` int32 [m] (each column's
  group index), ``group_names`` (g strings, the source columns), ``n_columns``,
  ``n_rows``; :meth:`FeatureTable.rows_for` and :meth:`FeatureTable.dense`.
- ``Features``: ``users`` and ``items`` (``FeatureTable | None``).

IDs need not match the ratings': an ID with features but no ratings is kept (a model may
serve it from its features), an ID with ratings but no features gets an empty row
(``known`` False from :meth:`FeatureTable.rows_for`). Build them with
:meth:`Features.from_frames` (pandas; encodings in :mod:`mfjax.data.feature_frames`) or
:meth:`Features.from_csr`; save them with :meth:`Features.to_arrays` (plain NumPy arrays,
no object dtype, no pickle: a model's ``.npz`` holds them under ``features/``).

Example:
    >>> import pandas as pd
    >>> users = pd.DataFrame({"user_id": [1, 2], "gender": ["M", "F"]})
    >>> f = Features.from_frames(users=users)
    >>> f.users.column_names, f.users.dense([2, 3]).tolist()
    (('gender=F', 'gender=M'), [[1.0, 0.0], [0.0, 0.0]])
"""
from __future__ import annotations

import dataclasses
import hashlib
from functools import cached_property

import numpy as np
import pandas as pd

from . import feature_frames
from .ids import check_unique, id_array, lookup, show

__all__ = ["Features", "FeatureTable", "ARRAYS_VERSION"]

#: The version of :meth:`Features.to_arrays`' layout (``"version"`` entry).
ARRAYS_VERSION = 1
_SIDES = ("users", "items")
_TABLE_KEYS = ("ids", "indptr", "indices", "values", "column_names", "groups", "group_names")


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


@dataclasses.dataclass(frozen=True, eq=False)
class Features:
    """User and item side information keyed by raw ID.

    Attributes:
        users: the user table, or None.
        items: the item table, or None.
    """

    users: FeatureTable | None = None
    items: FeatureTable | None = None

    def __post_init__(self):
        for side in _SIDES:
            t = getattr(self, side)
            if t is not None and not isinstance(t, FeatureTable):
                raise TypeError(f"Features: {side} must be a FeatureTable or None, got "
                                f"{type(t).__name__}")
        if self.users is None and self.items is None:
            raise ValueError("Features: give user features, item features or both")

    def table(self, side: str) -> FeatureTable | None:
        """``users`` or ``items`` by side name (``"user"``/``"users"``, ``"item"``/``"items"``)."""
        key = side if side in _SIDES else side + "s"
        if key not in _SIDES:
            raise ValueError(f"Features.table: side must be 'users' or 'items', got {side!r}")
        return getattr(self, key)

    def check_against(self, user_ids, item_ids, where: str = "fit") -> None:
        """Refuse features whose IDs cannot be the ratings' (so no row would ever be found).

        Some IDs on either side may lack features, and the features may hold IDs the
        ratings lack; but a table that shares no ID with the ratings' ID table, or holds
        IDs of the other kind (``"1"`` for 1), is a mistake (e.g. ``"1m_1"`` vs ``1``).

        Args:
            user_ids, item_ids: the ratings' ID tables [n_users], [n_items].
            where: the caller, for messages.

        Raises:
            TypeError: IDs of the other kind that name table IDs.
            ValueError: a side whose features share no ID with the ratings.
        """
        for side, ids in (("users", user_ids), ("items", item_ids)):
            t = getattr(self, side)
            if t is None or len(ids) == 0:
                continue
            try:
                found = t.positions(ids) >= 0
            except TypeError as e:
                raise TypeError(f"{where}: the {side[:-1]} features' IDs and the ratings' "
                                f"differ in type: {e}") from None
            if not found.any():
                raise ValueError(
                    f"{where}: none of the {len(ids)} {side[:-1]} IDs of the ratings has "
                    f"features (the {t.n_rows} feature rows have IDs such as "
                    f"{show(t.ids[0])!r}, the ratings {show(ids[0])!r}); the ID columns "
                    "must hold the same raw IDs")

    @classmethod
    def from_frames(cls, users=None, items=None, *, user_id: str = "user_id",
                    item_id: str = "item_id", multi_valued=None, categorical=None) -> "Features":
        """Features from pandas DataFrames, one row per ID, one feature group per column.

        Encodings (:mod:`mfjax.data.feature_frames`): text, category and bool columns
        one-hot; ``multi_valued`` columns multi-hot with each of a row's n values 1/n;
        numeric columns one standardised column (mean 0, std 1 over the frame's rows),
        or one-hot when named in ``categorical`` (binned when given edges).

        Args:
            users: a DataFrame with the column ``user_id`` and the user attributes, or None.
            items: a DataFrame with the column ``item_id`` and the item attributes, or None.
            user_id, item_id: the ID columns' names.
            multi_valued: ``{column: separator}``, e.g. ``{"genres": "|"}``.
            categorical: numeric columns to one-hot instead of standardise: a collection
                of names, or ``{name: None | bin edges}`` (edges ``[18, 25]`` give the bins
                ``<18``, ``[18,25)``, ``>=25``).

        Returns:
            A :class:`Features`.

        Raises:
            TypeError: a frame or declaration of the wrong type.
            ValueError: naming the frame, column and ID: no frame, a missing ID column,
                an empty frame, repeated IDs, NaN in a column, a separator that never
                occurs, a constant or mixed-type column, an unknown declared column.
        """
        frames = {"users": users, "items": items}
        if users is None and items is None:
            raise ValueError("Features.from_frames: give users=, items= or both (DataFrames)")
        multi, cat = feature_frames.check_declarations(frames, multi_valued, categorical)
        tables = {}
        for side, df, id_col in (("users", users, user_id), ("items", items, item_id)):
            if df is not None:
                tables[side] = FeatureTable(**feature_frames.encode_frame(df, id_col, side,
                                                                          multi, cat))
        return cls(**tables)

    @classmethod
    def from_csr(cls, users=None, items=None) -> "Features":
        """Features from sparse matrices with their ID arrays.

        Args:
            users, items: None or a tuple ``(ids, matrix)``, ``(ids, matrix, column_names)``
                or ``(ids, matrix, column_names, groups)``: ``ids`` [n] raw IDs, ``matrix``
                [n, m] anything with ``.tocsr()`` (scipy.sparse) or a 2-D NumPy array,
                ``column_names`` m strings (None: ``"x0"``, ``"x1"``, ...), ``groups`` the
                group name of each column [m] (None: one group named ``"features"``).

        Raises:
            TypeError: a side that is not such a tuple, a matrix of another type.
            ValueError: shapes that disagree, repeated IDs, non-finite values.
        """
        if users is None and items is None:
            raise ValueError("Features.from_csr: give users=, items= or both")
        tables = {side: _table_from_matrix(arg, side) for side, arg in
                  (("users", users), ("items", items)) if arg is not None}
        return cls(**tables)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (no object dtype) that :meth:`from_arrays` turns back into these features.

        Keys: ``"version"``, then ``"<side>/<field>"`` for each present side and each
        field of :class:`FeatureTable`; names and string IDs as unicode arrays, numeric
        IDs as they are.

        Raises:
            ValueError: IDs that cannot be stored exactly (mixed or odd types, strings
                ending in NUL), naming the side and the ID.
        """
        out = {"version": np.array([ARRAYS_VERSION], np.int64)}
        for side in _SIDES:
            t = getattr(self, side)
            if t is None:
                continue
            out[f"{side}/ids"] = _storable_ids(t.ids, side)
            for k in ("indptr", "indices", "values", "groups"):
                out[f"{side}/{k}"] = getattr(t, k)
            for k in ("column_names", "group_names"):
                out[f"{side}/{k}"] = _unicode(getattr(t, k), f"{side}/{k}")
        return out

    def fingerprint(self) -> str:
        """SHA-256 of :meth:`to_arrays` (names, dtypes, shapes and bytes), for checkpoints."""
        h = hashlib.sha256()
        for k, a in sorted(self.to_arrays().items()):
            a = np.ascontiguousarray(a)
            h.update(f"{k}:{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()

    @classmethod
    def from_arrays(cls, arrays: dict) -> "Features":
        """The features :meth:`to_arrays` wrote (every field validated again).

        Raises:
            ValueError: a missing, unknown or inconsistent entry, naming it.
        """
        version = np.asarray(arrays.get("version", []))
        if version.shape != (1,) or version.dtype.kind not in "iu" or int(version[0]) != 1:
            raise ValueError(f"Features.from_arrays: unknown layout version {version.tolist()}; "
                             f"this mfjax reads version {ARRAYS_VERSION}")
        unknown = sorted(set(arrays) - set(array_names()))
        if unknown:
            raise ValueError(f"Features.from_arrays: unknown entries {unknown}")
        tables = {}
        for side in _SIDES:
            present = [k for k in _TABLE_KEYS if f"{side}/{k}" in arrays]
            if not present:
                continue
            if len(present) != len(_TABLE_KEYS):
                missing = [f"{side}/{k}" for k in _TABLE_KEYS if k not in present]
                raise ValueError(f"Features.from_arrays: missing {missing}")
            fields = {k: np.asarray(arrays[f"{side}/{k}"]) for k in _TABLE_KEYS}
            for k in ("column_names", "group_names"):
                if fields[k].dtype.kind != "U" or fields[k].ndim != 1:
                    raise ValueError(f"Features.from_arrays: {side}/{k} must be a 1-D unicode "
                                     f"array, got {fields[k].dtype} {fields[k].shape}")
            if fields["ids"].dtype.kind not in "biufU":
                raise ValueError(f"Features.from_arrays: {side}/ids has dtype "
                                 f"{fields['ids'].dtype}")
            try:
                tables[side] = FeatureTable(**fields)
            except ValueError as e:
                raise ValueError(f"Features.from_arrays: {side}: {e}") from None
        return cls(**tables)

    def __repr__(self) -> str:
        return f"Features(users={self.users!r}, items={self.items!r})"


def array_names() -> tuple:
    """Every key :meth:`Features.to_arrays` may write."""
    return ("version",) + tuple(f"{s}/{k}" for s in _SIDES for k in _TABLE_KEYS)


def _storable_ids(ids: np.ndarray, side: str) -> np.ndarray:
    if ids.dtype.kind in "biuf":
        return ids
    kinds = {type(x) for x in ids.tolist()}
    if kinds <= {str}:
        return _unicode(ids, f"{side}/ids")
    for t, dtype in ((int, np.int64), (float, np.float64), (bool, np.bool_)):
        if kinds <= {t}:
            return np.asarray(ids.tolist(), dtype)
    raise ValueError(f"Features.to_arrays: {side} IDs of types {sorted(k.__name__ for k in kinds)}"
                     " cannot be stored as one plain array; use one type (all str or all int)")


def _unicode(values, what: str) -> np.ndarray:
    values = [str(x) for x in values]
    bad = next((v for v in values if v.endswith("\0")), None)
    if bad is not None:
        raise ValueError(f"Features.to_arrays: {what} holds {bad!r}, which ends in NUL and would "
                         "not load back")
    return np.array(values, dtype=str) if values else np.zeros(0, "U1")


def _table_from_matrix(arg, side: str) -> FeatureTable:
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
