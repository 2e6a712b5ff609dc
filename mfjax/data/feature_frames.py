"""Encoding one pandas DataFrame of side information into sparse feature blocks.

:func:`encode_frame` turns a frame with an ID column and one column per attribute into
the parts of a CSR matrix (one row per ID) and its column names, one *feature group*
per source column. How a column is encoded is decided by its dtype and the caller's
declarations:

==================================== ==================================================
column                               block (columns named ``"<col>=<value>"`` or ``"<col>"``)
==================================== ==================================================
named in ``multi_valued`` ({col: s}) multi-hot: the text is split on ``s``; each of a row's
                                     n distinct values gets ``1/n`` (see below)
named in ``categorical`` with edges  binned: ``(-inf, e0), [e0, e1), ..., [e_m, inf)``,
                                     one-hot over the bins (numbers only)
named in ``categorical`` (no edges)  one-hot over the distinct values (numbers too)
str / object / category / bool       one-hot over the distinct values
int / float                          one column, standardised: ``(x - mean) / std`` over
                                     this frame's rows (population std)
==================================== ==================================================

Multi-hot rows are normalised by their count (a row's values in the group sum to 1, as
a one-hot group's do). That is what myFM's MovieLens examples feed their FM (genres
weighted ``1/n``), so "the same features" in ``benchmarks/bench_features.py`` are the
same numbers, and a movie with five genres does not weigh five times as much in the
prediction as a movie with one.

Everything that cannot be encoded without guessing is refused with a ValueError naming
the frame, the column and (where one is at fault) the ID: a missing ID column, an empty
frame, a frame without feature columns, repeated or missing IDs, NaN in a categorical,
multi-valued or numeric column, a multi-valued separator that never occurs, a constant
numeric column, an object column mixing numbers and text, bins for a non-numeric column.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"user_id": [1, 2], "gender": ["M", "F"], "age": [20, 40]})
    >>> parts = encode_frame(df, "user_id", "users", {}, {})
    >>> parts["column_names"], parts["group_names"]
    (['gender=F', 'gender=M', 'age'], ['gender', 'age'])
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .ids import check_unique, id_column, show

__all__ = ["encode_frame", "check_declarations"]


def check_declarations(frames: dict, multi_valued, categorical) -> tuple[dict, dict]:
    """``(multi_valued, categorical)`` as dicts, each name a column of some frame.

    Args:
        frames: ``{"users": df or None, "items": df or None}``.
        multi_valued: None or ``{column: separator}``.
        categorical: None, a collection of column names, or ``{column: None or bin edges}``.

    Raises:
        TypeError: a declaration of the wrong type.
        ValueError: a name that is in neither frame, a column declared both ways, an
            empty separator, or bin edges that are not increasing numbers.
    """
    multi = {} if multi_valued is None else multi_valued
    if not isinstance(multi, dict):
        raise TypeError(f"Features.from_frames: multi_valued must be a dict {{column: separator}},"
                        f" got {type(multi).__name__}")
    if categorical is None:
        cat = {}
    elif isinstance(categorical, dict):
        cat = dict(categorical)
    elif isinstance(categorical, (str, bytes)):
        raise TypeError(f"Features.from_frames: categorical must be a collection of column names "
                        f"or a dict, got the string {categorical!r} (write [{categorical!r}])")
    else:
        cat = {name: None for name in categorical}
    columns = set()
    for df in frames.values():
        if df is not None:
            columns |= set(df.columns)
    for what, names in (("multi_valued", multi), ("categorical", cat)):
        for name in names:
            if name not in columns:
                raise ValueError(f"Features.from_frames: {what} names the column {name!r}, which "
                                 f"is in neither frame (columns: {sorted(map(str, columns))})")
    for name, sep in multi.items():
        if not isinstance(sep, str) or not sep:
            raise ValueError(f"Features.from_frames: multi_valued[{name!r}] must be a non-empty "
                             f"separator string, got {sep!r}")
        if name in cat:
            raise ValueError(f"Features.from_frames: column {name!r} is declared both "
                             "multi_valued and categorical; pick one")
    for name, edges in cat.items():
        if edges is not None:
            cat[name] = _check_edges(name, edges)
    return multi, cat


def _check_edges(name, edges) -> list:
    try:
        e = [float(x) for x in edges]
    except (TypeError, ValueError):
        raise ValueError(f"Features.from_frames: categorical[{name!r}] must be None or a "
                         f"sequence of bin edges (numbers), got {edges!r}") from None
    if not e or not all(math.isfinite(x) for x in e) or any(b <= a for a, b in zip(e, e[1:])):
        raise ValueError(f"Features.from_frames: categorical[{name!r}]'s bin edges must be "
                         f"finite, strictly increasing numbers, got {list(edges)!r}")
    return e


def encode_frame(df, id_col: str, side: str, multi: dict, cat: dict) -> dict:
    """The CSR parts of one frame's features, one group per source column.

    Args:
        df: the frame; one row per ID.
        id_col: the name of its ID column.
        side: ``"users"`` or ``"items"``, for messages.
        multi, cat: the declarations from :func:`check_declarations`.

    Returns:
        ``{"ids" [n], "indptr" int64 [n+1], "indices" int32 [nnz], "values" float32 [nnz],
        "column_names" [m], "groups" int32 [m], "group_names" [g]}``; rows in the frame's
        order, columns block by block in the frame's column order.

    Raises:
        TypeError: ``df`` is not a DataFrame.
        ValueError: see the module docstring; the message names ``side``, the column and
            the ID at fault.
    """
    where = f"Features.from_frames: the {side} frame"
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{where} must be a pandas DataFrame, got {type(df).__name__}")
    if id_col not in df.columns:
        raise ValueError(f"{where} has no ID column {id_col!r} (its columns: "
                         f"{[str(c) for c in df.columns]}); pass "
                         f"{'user_id' if side == 'users' else 'item_id'}= to name it")
    if len(df) == 0:
        raise ValueError(f"{where} is empty (no rows)")
    if not df.columns.is_unique:
        dup = df.columns[df.columns.duplicated()][0]
        raise ValueError(f"{where} has the column {dup!r} twice")
    ids = _ids(df[id_col], where, id_col)
    feature_cols = [c for c in df.columns if c != id_col]
    if not feature_cols:
        raise ValueError(f"{where} has no feature columns besides its ID column {id_col!r}")
    rows, cols, vals, names, groups = [], [], [], [], []
    for g, col in enumerate(feature_cols):
        r, c, v, labels = _encode_column(df[col], ids, str(col), where, multi, cat)
        rows.append(r)
        cols.append(c + len(names))
        vals.append(v)
        names.extend(labels)
        groups.extend([g] * len(labels))
    rows, cols, vals = (np.concatenate(x) for x in (rows, cols, vals))
    order = np.lexsort((cols, rows))
    indptr = np.zeros(len(ids) + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=len(ids)), out=indptr[1:])
    return {"ids": ids, "indptr": indptr, "indices": cols[order].astype(np.int32),
            "values": vals[order].astype(np.float32), "column_names": names,
            "groups": np.asarray(groups, np.int32), "group_names": [str(c) for c in feature_cols]}


def _ids(column: pd.Series, where: str, id_col: str) -> np.ndarray:
    ids = id_column(column, f"{id_col!r}")
    missing = pd.isna(ids)
    if missing.any():
        raise ValueError(f"{where}: its ID column {id_col!r} is missing (NaN/None) at row "
                         f"{int(np.flatnonzero(missing)[0])}")
    if ids.dtype.kind in "iu":
        ids = ids.astype(np.int64)
    check_unique(ids, f"{where}: column {id_col!r}")
    return ids


def _encode_column(s: pd.Series, ids, col: str, where: str, multi: dict, cat: dict):
    """``(rows, cols, values, column labels)`` of one source column."""
    if col in multi:
        return _multi_hot(s, ids, col, where, multi[col])
    numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
    if s.dtype == object and not s.isna().all():
        numeric = _object_is_numeric(s, ids, col, where)
        if numeric:
            s = pd.to_numeric(s)
    if col in cat and cat[col] is not None:
        if not numeric:
            raise ValueError(f"{where}: column {col!r} has bin edges in categorical but is not "
                             f"numeric (dtype {s.dtype}); give None to one-hot its values")
        return _binned(s, ids, col, where, cat[col])
    if col in cat or not numeric:
        if not (numeric or pd.api.types.is_bool_dtype(s) or pd.api.types.is_string_dtype(s)
                or isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object):
            raise ValueError(f"{where}: column {col!r} has dtype {s.dtype}, which mfjax does not "
                             "encode; convert it to numbers or strings first")
        return _one_hot(s, ids, col, where)
    return _standardised(s, ids, col, where)


def _object_is_numeric(s: pd.Series, ids, col: str, where: str) -> bool:
    """Whether an object column holds only numbers (else only text); refuses a mix."""
    kinds = s.map(lambda x: "missing" if x is None or (isinstance(x, float) and x != x) else
                  "number" if isinstance(x, (int, float, np.number)) and not isinstance(x, bool)
                  else "text")
    present = kinds[kinds != "missing"]
    if present.nunique() > 1:
        j_num = int(np.flatnonzero((kinds == "number").to_numpy())[0])
        j_txt = int(np.flatnonzero((kinds == "text").to_numpy())[0])
        raise ValueError(f"{where}: column {col!r} mixes numbers and text: ID "
                         f"{show(ids[j_num])!r} has {s.iloc[j_num]!r}, ID {show(ids[j_txt])!r} "
                         f"has {s.iloc[j_txt]!r}; make it all numbers (a numeric feature) or "
                         "all strings (categorical)")
    return bool(len(present)) and present.iloc[0] == "number"


def _first_missing(s: pd.Series, ids, col: str, where: str, kind: str) -> None:
    missing = s.isna().to_numpy()
    if missing.any():
        j = int(np.flatnonzero(missing)[0])
        raise ValueError(f"{where}: {kind} column {col!r} is missing (NaN/None) for ID "
                         f"{show(ids[j])!r} ({int(missing.sum())} missing in all); fill it in "
                         "or drop those rows (an ID without features is allowed)")


def _one_hot(s: pd.Series, ids, col: str, where: str):
    _first_missing(s, ids, col, where, "categorical")
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes, levels = s.cat.codes.to_numpy(), list(s.cat.categories)
    else:
        try:
            codes, levels = pd.factorize(s, sort=True)
        except TypeError:  # values of several unorderable types: first-seen order
            codes, levels = pd.factorize(s, sort=False)
        levels = list(levels)
    n = len(s)
    labels = [f"{col}={_label(v)}" for v in levels]
    return np.arange(n), np.asarray(codes, np.int64), np.ones(n), labels


def _label(v) -> str:
    v = show(v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _multi_hot(s: pd.Series, ids, col: str, where: str, sep: str):
    _first_missing(s, ids, col, where, "multi-valued")
    if not (pd.api.types.is_string_dtype(s) or s.dtype == object):
        raise ValueError(f"{where}: multi-valued column {col!r} must hold text to split on "
                         f"{sep!r}, got dtype {s.dtype}")
    text = s.astype(str)
    if not text.str.contains(sep, regex=False).any():
        raise ValueError(f"{where}: the multi_valued separator {sep!r} never occurs in column "
                         f"{col!r} (e.g. ID {show(ids[0])!r}: {text.iloc[0]!r}); give the "
                         "separator the column uses, or declare the column categorical")
    parts = text.reset_index(drop=True).str.split(sep, regex=False).explode()
    rows = parts.index.to_numpy()  # each token's row position
    tokens = parts.str.strip().to_numpy(dtype=object)
    pairs = pd.DataFrame({"row": rows, "token": tokens})
    pairs = pairs[pairs["token"] != ""].drop_duplicates()
    codes, levels = pd.factorize(pairs["token"], sort=True)
    row = pairs["row"].to_numpy()
    count = np.bincount(row, minlength=len(s))
    return row, np.asarray(codes, np.int64), 1.0 / count[row], [f"{col}={v}" for v in levels]


def _numbers(s: pd.Series, ids, col: str, where: str) -> np.ndarray:
    _first_missing(s, ids, col, where, "numeric")
    x = s.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: numeric column {col!r} holds {x[j]} for ID {show(ids[j])!r}")
    return x


def _standardised(s: pd.Series, ids, col: str, where: str):
    x = _numbers(s, ids, col, where)
    std = float(x.std())
    if not std > 0:
        raise ValueError(f"{where}: numeric column {col!r} is constant ({x[0]:g} for every ID), "
                         "so it cannot be standardised and tells the IDs apart in no way; drop it")
    z = (x - x.mean()) / std
    return np.arange(len(x)), np.zeros(len(x), np.int64), z, [col]


def _binned(s: pd.Series, ids, col: str, where: str, edges: list):
    x = _numbers(s, ids, col, where)
    codes = np.searchsorted(np.asarray(edges), x, side="right")  # bin j: [e_{j-1}, e_j)
    fmt = [_label(e) for e in edges]
    labels = [f"{col}=<{fmt[0]}"] + [f"{col}=[{a},{b})" for a, b in zip(fmt, fmt[1:])] + \
             [f"{col}=>={fmt[-1]}"]
    return np.arange(len(x)), codes.astype(np.int64), np.ones(len(x)), labels
