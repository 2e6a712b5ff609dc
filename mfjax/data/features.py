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
:meth:`Features.from_csr` (the table class lives in :mod:`mfjax.data.feature_tables`);
save them with :meth:`Features.to_arrays` (plain NumPy arrays, no object dtype, no
pickle: a model's ``.npz`` holds them under ``features/``).

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

import numpy as np
import pandas as pd

from . import feature_frames
from .feature_tables import FeatureTable, table_from_matrix
from .ids import show

__all__ = ["Features", "FeatureTable", "ARRAYS_VERSION", "array_names"]

#: The version of :meth:`Features.to_arrays`' layout (``"version"`` entry).
ARRAYS_VERSION = 1
_SIDES = ("users", "items")
_TABLE_KEYS = ("ids", "indptr", "indices", "values", "column_names", "groups", "group_names")


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

    def with_ids(self, ratings):
        """``ratings`` with the IDs that have features but no entry in its ID tables
        appended to them (no interactions), in the order of the feature tables.

        Its interactions and indices are unchanged (the new IDs come after the old
        ones), so a model trained on the result has a row for every feature-only ID:
        a model whose record has ``feature_ids=True`` (:class:`mfjax.models.ModelRecord`)
        is trained on this at ``fit`` and serves such IDs like any other.

        Args:
            ratings: an :class:`mfjax.Ratings` (checked with :meth:`check_against`).

        Returns:
            An :class:`mfjax.Ratings` (``ratings`` itself when nothing is added).
        """
        tables = {}
        for side, ids in (("users", ratings.user_ids), ("items", ratings.item_ids)):
            t = getattr(self, side)
            if t is None:
                tables[side] = ids
                continue
            extra = np.asarray(t.ids)[~pd.Index(t.ids).isin(pd.Index(ids))]
            tables[side] = ids if extra.size == 0 else _joined(ids, extra)
        if tables["users"] is ratings.user_ids and tables["items"] is ratings.item_ids:
            return ratings
        return type(ratings)(ratings.users, ratings.items, ratings.ratings, ratings.timestamps,
                             tables["users"], tables["items"])

    def merged(self, other: "Features") -> "Features":
        """These features with ``other``'s rows added (an ID in both takes ``other``'s row).

        Raises:
            TypeError: ``other`` is not a Features.
            ValueError: a side whose tables have different columns.
        """
        if not isinstance(other, Features):
            raise TypeError(f"Features.merged: need an mfjax.Features, got {type(other).__name__}")
        out = {}
        for side in _SIDES:
            a, b = getattr(self, side), getattr(other, side)
            out[side] = a if b is None else b if a is None else _merged_tables(a, b, side)
        return Features(**out)

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
        tables = {side: table_from_matrix(arg, side) for side, arg in
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


def _merged_tables(a: FeatureTable, b: FeatureTable, side: str) -> FeatureTable:
    """The rows of ``a`` whose IDs ``b`` lacks, then ``b``'s (same columns required)."""
    if a.column_names != b.column_names:
        new = [c for c in b.column_names if c not in set(a.column_names)]
        lack = [c for c in a.column_names if c not in set(b.column_names)]
        what = "; ".join(x for x in (f"unknown columns {new[:5]}" if new else "",
                                     f"lacks the columns {lack[:5]}" if lack else "") if x) \
            or "the same columns in another order"
        raise ValueError(f"Features.merged: the new {side[:-1]} table has {what} ({b.n_columns} "
                         f"columns vs {a.n_columns}; encode both with the same columns)")
    keep = a.ids[~pd.Index(a.ids).isin(pd.Index(b.ids))]
    ids = _joined(keep, b.ids)
    ptr_a, idx_a, val_a, _ = a.rows_for(keep)
    ptr = np.concatenate([ptr_a, ptr_a[-1] + b.indptr[1:]])
    return FeatureTable(ids, ptr, np.concatenate([idx_a, b.indices]),
                        np.concatenate([val_a, b.values]), a.column_names, a.groups,
                        a.group_names)


def _joined(ids: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """``ids`` then ``extra`` as one ID table (integers stay integers, else object)."""
    ints = ids.dtype.kind in "iu" and extra.dtype.kind in "iu"
    dtype = np.result_type(ids.dtype, extra.dtype) if ints else object
    return np.concatenate([ids.astype(dtype), extra.astype(dtype)])


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
