"""ID spaces: raw user/item IDs (ints or strings) and the contiguous indices the core needs.

The model works on indices in ``[0, n)``; users bring arbitrary raw IDs. An
ID table (``user_ids`` [n_users], ``item_ids`` [n_items]) maps each index back
to its raw ID, and :class:`IdSpace` maps raw IDs to indices through a hash
index. :func:`factorize` builds a table from a column of raw IDs.

Example:
    >>> import numpy as np
    >>> codes, ids = factorize(np.array([30, 10, 30]), "user")
    >>> codes.tolist(), ids.tolist()
    ([1, 0, 1], [10, 30])

References:
    pandas ``factorize`` and ``Index.get_indexer``:
    https://pandas.pydata.org/docs/reference/api/pandas.factorize.html
"""

from __future__ import annotations

import weakref
from functools import cached_property

import numpy as np
import pandas as pd

__all__ = ["IdSpace", "factorize", "id_array", "id_column", "show", "same_ids", "model_indices",
           "check_unique", "lookup"]

#: ID tables already found unique, by ``id()`` (subsets pass their parent's table on).
_UNIQUE_TABLES: "weakref.WeakValueDictionary[int, np.ndarray]" = weakref.WeakValueDictionary()


def show(x):
    """A NumPy scalar as the plain Python value, for readable messages."""
    return x.item() if isinstance(x, np.generic) else x


def id_array(ids) -> np.ndarray:
    """An ID table as a 1-D array; fixed-width unicode becomes object (it pads and compares oddly).

    Raises:
        ValueError: ``ids`` is not 1-D.
    """
    a = np.asarray(ids)
    if a.ndim != 1:
        raise ValueError(f"ID tables must be 1-D, got shape {a.shape}")
    if a.dtype.kind == "U":
        a = a.astype(object)
    return a


def check_unique(ids: np.ndarray, name: str) -> None:
    """Refuse an ID table that holds one raw ID twice (lookups would be ambiguous).

    Args:
        ids: an ID table [n].
        name: its name for messages (``"Ratings: user_ids"``).

    Raises:
        ValueError: naming the first repeated ID and two of its positions.
    """
    if _UNIQUE_TABLES.get(id(ids)) is ids:
        return
    index = pd.Index(ids)
    if not index.is_unique:
        j = int(np.flatnonzero(index.duplicated())[0])
        first = int(np.flatnonzero(index == index[j])[0])
        raise ValueError(f"{name} repeats the ID {show(ids[j])!r} (positions {first} and {j}); "
                         f"each raw ID must appear once in an ID table")
    remember_unique(ids)


def remember_unique(ids: np.ndarray) -> None:
    """Record ``ids`` as checked by :func:`check_unique` (while it is alive)."""
    _UNIQUE_TABLES[id(ids)] = ids


def _kind(x) -> str:
    if isinstance(x, (bool, np.bool_)):
        return "bool"
    if isinstance(x, (int, np.integer)):
        return "int"
    if isinstance(x, (float, np.floating)):
        return "float"
    return type(x).__name__


def id_column(x, name: str) -> np.ndarray:
    """A column of raw IDs [n] as a 1-D array, refusing a mix of ID types.

    ``1``, ``"1"`` and ``1.0`` are different IDs to a user but would be merged
    (or, through ``np.asarray``, all turned into text), so a column must hold
    one type: all ints, all strings, all floats, ... (missing values aside).

    Raises:
        ValueError: not 1-D, or mixed types (naming the first two that differ).
    """
    if isinstance(x, (pd.Series, pd.Index)):
        a = x.to_numpy()
    else:
        a = np.asarray(x)
        if a.ndim == 1 and a.dtype.kind in "USO" and not isinstance(x, np.ndarray):
            a = np.empty(len(a), dtype=object)  # np.asarray([1, "a"]) makes 1 a str
            a[:] = list(x)
    if a.ndim != 1:
        raise ValueError(f"Ratings.from_arrays: {name} must be 1-D, got shape {a.shape}")
    if a.dtype == object and pd.api.types.infer_dtype(a, skipna=True).startswith("mixed"):
        seen = {}
        for j, v in enumerate(a):
            if v is None or isinstance(v, float) and v != v:
                continue
            seen.setdefault(_kind(v), j)
            if len(seen) > 1:
                (k0, j0), (k1, j1) = list(seen.items())[:2]
                raise ValueError(
                    f"Ratings.from_arrays: {name} mixes ID types: {k0} {show(a[j0])!r} at "
                    f"position {j0} and {k1} {show(a[j1])!r} at position {j1}; use one type "
                    f"for all IDs (e.g. all str), so that lookups match"
                )
    return a


def factorize(raw: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw IDs [n] -> (int32 codes [n], unique raw IDs [m]), hash-based.

    Codes follow the sorted order of the unique IDs, or first-seen order when
    the IDs have mixed, unorderable types (e.g. ``3`` and ``"a"``).

    Args:
        raw: raw IDs [n].
        what: ``"user"`` or ``"item"``, for messages.

    Raises:
        ValueError: an ID is missing (NaN/None), or more than 2^31 - 1 distinct IDs.
    """
    try:
        codes, uniques = pd.factorize(raw, sort=True)
    except TypeError:
        codes, uniques = pd.factorize(raw, sort=False)
    if codes.size and codes.min() < 0:
        j = int(np.flatnonzero(codes < 0)[0])
        raise ValueError(f"Ratings.from_arrays: {what} ID at position {j} is missing (NaN/None)")
    uniques = np.asarray(uniques)
    if len(uniques) > np.iinfo(np.int32).max:
        raise ValueError(f"too many distinct {what} IDs for int32 indices: {len(uniques)}")
    return codes.astype(np.int32), uniques


class IdSpace:
    """Raw-ID lookups shared by :class:`~mfjax.data.Ratings` and :class:`mfjax.Model`.

    Subclasses have ``user_ids`` [n_users] and ``item_ids`` [n_items]: the raw
    ID of each index.

    Example:
        >>> from mfjax import Ratings
        >>> r = Ratings.from_arrays([10, 20], ["a", "b"], [4.0, 5.0])
        >>> int(r.index_users(20)), r.index_items(["b", "z"], missing="ignore").tolist()
        (1, [1, -1])
    """

    user_ids: np.ndarray
    item_ids: np.ndarray

    @property
    def n_users(self) -> int:
        """Size of the user ID space (the parent's, for subsets)."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Size of the item ID space (the parent's, for subsets)."""
        return len(self.item_ids)

    @cached_property
    def _user_index(self) -> pd.Index:
        return pd.Index(self.user_ids)

    @cached_property
    def _item_index(self) -> pd.Index:
        return pd.Index(self.item_ids)

    def index_users(self, raw, missing: str = "raise"):
        """Map raw user IDs to indices.

        Args:
            raw: one raw ID or an array-like of them. Matching is by value and
                type: ``5`` and ``np.int64(5)`` match an int ID, ``"5"`` does not.
            missing: ``"raise"`` (KeyError naming the first unknown ID) or
                ``"ignore"`` (unknown IDs map to -1, e.g. for cold-start users).

        Returns:
            np.int32 indices shaped like ``raw`` (a scalar for a scalar).
        """
        return _lookup(self._user_index, raw, missing, "user")

    def index_items(self, raw, missing: str = "raise"):
        """Map raw item IDs to indices; see :meth:`index_users`."""
        return _lookup(self._item_index, raw, missing, "item")


def same_ids(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two ID arrays are the same object or equal element by element."""
    return a is b or (len(a) == len(b) and np.array_equal(a, b))


def model_indices(model: "IdSpace", r) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``r``'s ratings (a :class:`mfjax.Ratings`) in another ID space, e.g. a
    :class:`mfjax.Model`'s (-1 where unknown)."""
    if same_ids(r.user_ids, model.user_ids):
        u = r.users
    else:
        u = model.index_users(r.user_ids, missing="ignore")[r.users]
    if same_ids(r.item_ids, model.item_ids):
        i = r.items
    else:
        i = model.index_items(r.item_ids, missing="ignore")[r.items]
    return np.asarray(u, np.int32), np.asarray(i, np.int32)


def lookup(index: pd.Index, raw, missing: str = "raise", what: str = "user"):
    """Raw IDs -> int32 positions in ``index`` (what :meth:`IdSpace.index_users` does, for
    any ID table held as a ``pd.Index``, e.g. :class:`mfjax.data.features.FeatureTable`'s).

    Args:
        index: the ID table as a ``pd.Index`` [n].
        raw: one raw ID or an array-like of them (matched by value and type).
        missing: ``"raise"`` (KeyError naming the first unknown ID) or ``"ignore"`` (-1).
        what: ``"user"`` or ``"item"``, for messages.

    Raises:
        KeyError: an unknown ID with ``missing="raise"``.
        TypeError: an ID of the other kind that names a table ID (``"196"`` for 196).
    """
    return _lookup(index, raw, missing, what)


def _lookup(index: pd.Index, raw, missing: str, what: str):
    if missing not in ("raise", "ignore"):
        raise ValueError(f"missing must be 'raise' or 'ignore', got {missing!r}")
    scalar = np.ndim(raw) == 0
    if isinstance(raw, str):
        keys = np.asarray([raw], dtype=object)
    elif isinstance(raw, (list, tuple)) and len({type(x) for x in raw}) > 1:
        keys = np.empty(len(raw), dtype=object)  # np.asarray(["a", 4]) would make 4 a str
        keys[:] = list(raw)
    else:
        keys = np.atleast_1d(np.asarray(raw))
    if keys.ndim != 1:
        shape = keys.shape
        keys = keys.ravel()
    else:
        shape = None
    _check_id_types(index, keys, what)
    try:
        idx = index.get_indexer(keys)
    except TypeError:
        # e.g. a str key against an int index in some pandas versions
        idx = index.get_indexer(pd.Index(keys, dtype=object))
    idx = idx.astype(np.int32)
    if missing == "raise" and (idx < 0).any():
        j = int(np.flatnonzero(idx < 0)[0])
        n_bad = int((idx < 0).sum())
        raise KeyError(
            f"unknown {what} ID {show(keys[j])!r} ({n_bad} unknown); "
            f"pass missing='ignore' to get -1"
        )
    if shape is not None:
        idx = idx.reshape(shape)
    return idx[0] if scalar else idx


def _as_table_kind(key, number_table: bool):
    """``key`` read as an ID of the table's other kind (a digit string as an int for an
    integer table, a number as its text for a string table), or None when it is not one."""
    if number_table and isinstance(key, str):
        text = key.strip()
        return int(text) if text.lstrip("-").isdigit() else None
    if not number_table and isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return str(key)
    return None


def _check_id_types(index: pd.Index, keys: np.ndarray, what: str) -> None:
    """Refuse a key of the other kind than the table's IDs that, so read, is one of them
    (``'196'`` against integer IDs holding 196, ``5`` against string IDs holding ``'5'``):
    matching is by type, so it was served as an unknown ID, a silent fallback answer.
    A key of the other kind that matches nothing either way stays an unknown ID."""
    kind = index.inferred_type
    number_table = kind == "integer"
    if not (number_table or kind == "string") or keys.size == 0:
        return
    if number_table and keys.dtype.kind in "iub" or not number_table and keys.dtype.kind in "US":
        return  # every key of the table's kind
    for key in keys.tolist():
        other = _as_table_kind(key, number_table)
        if other is not None and other in index:
            want = "integers" if number_table else "strings"
            raise TypeError(f"{what} ID {key!r} has type {type(key).__name__}, but the {what} "
                            f"IDs here are {want}: pass {other!r}")
