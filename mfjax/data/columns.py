"""Raw columns to the arrays :class:`~mfjax.data.Ratings` stores: checks, coercion, de-duplication.

Each function takes one column as users hand it over (lists, NumPy arrays,
pandas Series; numbers as text, datetimes) and returns the stored dtype, or
raises ValueError naming the first bad position.

Example:
    >>> import numpy as np
    >>> int_timestamps(np.array(["1970-01-01 00:00:10"], dtype=object)).tolist()
    [10]
    >>> dedup_keep(np.array([0, 0]), np.array([1, 1]), 2, None).tolist()
    [False, True]
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pandas as pd

from .ids import show

__all__ = ["as_1d", "numeric_ratings", "int_timestamps", "dedup_keep", "warn"]

# Frames from any module of this package are skipped when attributing warnings.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def warn(msg: str) -> None:
    """``warnings.warn`` attributed to the first caller outside ``mfjax.data``."""
    level, f = 2, sys._getframe(1)
    while f is not None and os.path.dirname(os.path.abspath(f.f_code.co_filename)) == _PACKAGE_DIR:
        f, level = f.f_back, level + 1
    warnings.warn(msg, UserWarning, stacklevel=level)


def as_1d(x, name) -> np.ndarray:
    """``x`` (array-like, Series or Index) as a 1-D NumPy array, or ValueError."""
    a = x.to_numpy() if isinstance(x, (pd.Series, pd.Index)) else np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"Ratings.from_arrays: {name} must be 1-D, got shape {a.shape}")
    return a


def numeric_ratings(r: np.ndarray) -> np.ndarray:
    """Ratings [n] as float32; ValueError on a non-numeric or non-finite entry.

    Bool and complex values are refused too (a cast would turn True into 1.0 and drop
    an imaginary part without a word), as whole columns or as entries of an object array.
    """
    if r.dtype.kind in "bc" or r.dtype.kind == "O":
        odd = [j for j, x in enumerate(r) if isinstance(x, (bool, np.bool_, complex, np.complexfloating))] \
            if r.dtype.kind == "O" else [0]
        if odd:
            j = odd[0]
            kind = "bool" if isinstance(r[j], (bool, np.bool_)) else "complex"
            raise ValueError(f"Ratings.from_arrays: ratings must be real numbers, not {kind}; "
                             f"ratings[{j}] = {show(r[j])!r} (dtype {r.dtype})")
    if r.dtype.kind not in "iuf":
        try:
            r = r.astype(np.float64)
        except (TypeError, ValueError):
            bad = pd.to_numeric(pd.Series(r), errors="coerce").isna().to_numpy()
            j = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"Ratings.from_arrays: ratings must be numeric; ratings[{j}] = {show(r[j])!r}"
            ) from None
    bad = np.flatnonzero(~np.isfinite(r))
    if bad.size:
        j = int(bad[0])
        raise ValueError(
            f"Ratings.from_arrays: ratings[{j}] = {r[j]} is not finite "
            f"({bad.size} non-finite ratings)"
        )
    return r.astype(np.float32, copy=False)


def _in_range(t: np.ndarray) -> np.ndarray:
    """Finite float or uint64 times [n] that fit int64 seconds, as given; else ValueError."""
    bad = np.flatnonzero(t >= 2**63) if t.dtype.kind == "u" else np.flatnonzero(
        (t >= 2.0**63) | (t < -(2.0**63)))
    if bad.size:
        j = int(bad[0])
        raise ValueError(f"Ratings.from_arrays: timestamps[{j}] = {show(t[j])!r} is out of range "
                         f"(Unix seconds must fit int64; {bad.size} such timestamps)")
    return t


def int_timestamps(t: np.ndarray) -> np.ndarray:
    """Times [n] (ints, integral floats, datetimes, or text of either) as int64 Unix seconds.

    Raises:
        ValueError: a time is missing, not finite or outside the int64 range
            (NumPy would turn 1e30 into INT64_MIN with only a warning).
    """
    if t.dtype.kind == "i":
        return t.astype(np.int64, copy=False)
    if t.dtype.kind == "u":
        return _in_range(t).astype(np.int64)
    if t.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(t))
        if bad.size:
            j = int(bad[0])
            raise ValueError(f"Ratings.from_arrays: timestamps[{j}] = {t[j]} is not finite")
        return np.rint(_in_range(t)).astype(np.int64)
    if t.dtype.kind == "M":
        return t.astype("datetime64[s]").astype(np.int64)
    try:
        # Strings such as "2021-03-04 10:00:00" (or numbers stored as text).
        num = pd.to_numeric(pd.Series(t), errors="coerce")
        if not num.isna().any():
            f = num.to_numpy(np.float64)
            if not np.isfinite(f).all():
                j = int(np.flatnonzero(~np.isfinite(f))[0])
                raise ValueError(f"Ratings.from_arrays: timestamps[{j}] = {show(t[j])!r} is not finite")
            _in_range(f)
            return np.rint(f).astype(np.int64)
        dt = pd.to_datetime(pd.Series(t), utc=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"Ratings.from_arrays: cannot read timestamps as times: {e}") from None
    if dt.isna().any():
        j = int(np.flatnonzero(dt.isna().to_numpy())[0])
        raise ValueError(f"Ratings.from_arrays: timestamps[{j}] is missing")
    return (dt.astype("datetime64[ns, UTC]").astype("int64") // 10**9).to_numpy()


def dedup_keep(u, i, n_items, t) -> np.ndarray | None:
    """Boolean keep-mask removing repeated (u, i) pairs, or None if there are none.

    Of each repeated pair the latest by ``t`` is kept (ties, or ``t=None``:
    the last occurrence). A sort of the pair keys (~1.5 s for 20M) finds
    whether any repeat; only the rows involved in repeats are then ordered by
    (key, time, position).
    """
    key = u.astype(np.int64) * n_items + i
    s = np.sort(key)
    dup_keys = s[1:][s[1:] == s[:-1]]
    if dup_keys.size == 0:
        return None
    # Hash lookup into the (small) set of repeated keys; np.isin would sort all n.
    rows = np.flatnonzero(pd.Index(np.unique(dup_keys)).get_indexer(key) >= 0)
    k = key[rows]
    # lexsort: last key is primary. Ties in time fall back to position.
    order = np.lexsort((rows, k)) if t is None else np.lexsort((rows, t[rows], k))
    k_sorted = k[order]
    last_of_group = np.append(k_sorted[1:] != k_sorted[:-1], True)
    keep = np.ones(len(key), dtype=bool)
    keep[rows[order[~last_of_group]]] = False
    return keep
