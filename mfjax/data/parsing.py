"""Text parsing for :func:`~mfjax.data.load_ratings`: fast with pandas, then a slow pass to blame a line.

A :class:`~mfjax.data.streams.Source` is a plain file or a member of a zip
archive (read in memory, never extracted, every byte through a guard: see
:mod:`mfjax.data.streams`). :func:`parse_frame` parses it with pandas' C engine;
:func:`to_ratings` checks the columns and builds :class:`~mfjax.data.Ratings`.
Only when either finds a problem does a line-by-line pass run, so that the
ValueError names the file, the 1-based line number and the line itself.

Text rules (issue #14):

- Quotes are literal characters in tab-, whitespace- and ``::``-separated
  files (MovieLens, RecBole and TSV files do not quote). In other CSVs a
  field may be quoted; a quote left open makes the rest of the file one
  field, which is caught because no ID may contain a newline.
- No NA words: ``NA``, ``null``, ``None``, ``nan`` are IDs like any other;
  only an empty field is missing.
- IDs are read as text unless the whole column is plain integers
  (``-?(0|[1-9][0-9]*)``, no leading zeros, no ``+``, fitting int64): then
  they are ints. So ``007`` and ``7`` are two IDs (``"007"``, ``"7"``), and a
  column of ``1, 2, 3`` gives ints, as before.
- Ratings must be plain numbers (no ``1_0``) that fit float32; timestamps
  that are numbers must fit int64 seconds.

Example:
    >>> spec = Spec(sep=",", n_fields=3, header=False,
    ...             cols={"user": 0, "item": 1, "rating": 2, "time": None}, encoding="utf-8")
    >>> spec.n_fields
    3

References:
    pandas ``read_csv`` (C engine):
    https://pandas.pydata.org/docs/reference/api/pandas.read_csv.html
"""

from __future__ import annotations

import csv
import io
import re
import warnings

import numpy as np
import pandas as pd

from .ratings import Ratings
from .streams import MAX_LINE, CorruptInput, ReplaceStream, Source

__all__ = ["Source", "Spec", "ReplaceStream", "first_line", "text_encoding", "parse_frame",
           "to_ratings", "clip", "MAX_LINE", "ids_from_text"]

# A number as a rating or timestamp may be written (Python's float() also
# takes "1_0" and non-ASCII digits; pandas does not).
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*(e[+-]?\d+)?|\.\d+(e[+-]?\d+)?|inf|infinity|nan)\s*",
                     re.IGNORECASE | re.ASCII)
# IDs that are read as ints (see the module docstring).
_PLAIN_INT = re.compile(r"-?(0|[1-9][0-9]{0,18})", re.ASCII)
_F32_MAX = float(np.finfo(np.float32).max)
_T_LIMIT = 2.0 ** 63  # timestamps are int64 seconds


def first_line(src: Source, encoding: str) -> str | None:
    with src.open() as f:
        text = io.TextIOWrapper(f, encoding=text_encoding(encoding), errors="replace", newline="")
        for line in text:
            if line.strip():
                return line.rstrip("\r\n")
    return None


def text_encoding(encoding: str) -> str:
    # utf-8-sig strips a BOM if present and is plain UTF-8 otherwise.
    return "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


class Spec:
    """How to parse a text file, and to re-read it line by line to find the first bad record.

    ``quoting`` defaults to ``csv.QUOTE_NONE`` (quotes are literal) for tab,
    space and ``::`` separators, else ``csv.QUOTE_MINIMAL``; ``whitespace``
    means fields are split on any run of whitespace (``u.data``).
    """

    def __init__(self, sep, n_fields, header, cols, encoding, quoting=None, whitespace=False):
        self.sep = sep
        self.n_fields = n_fields
        self.header = header
        self.cols = cols  # {"user": pos, "item": pos, "rating": pos, "time": pos|None}
        self.encoding = encoding
        if quoting is None:
            quoting = csv.QUOTE_NONE if sep in ("\t", " ", "::") else csv.QUOTE_MINIMAL
        self.quoting = quoting
        self.whitespace = whitespace
        self.opener = None  # byte-stream opener for the fast parse, if not the file's own


def parse_frame(src: Source, spec: Spec, kw: dict) -> pd.DataFrame:
    """Parse with pandas (``kw`` must name the columns); ID columns come back exact.

    A first parse lets pandas infer types. An ID column it read as anything
    but exact integers (floats, booleans, or ints where the bytes held a
    leading zero or a ``+``) is parsed again as text, so ``007``, ``1.50`` or
    ``True`` keep their spelling.
    """
    kw = dict(kw, keep_default_na=False, na_values=[""], quoting=spec.quoting)
    names = kw["names"]
    ids = [names[spec.cols[role]] for role in ("user", "item")]
    df = _read(src, spec, kw)
    g = src.last_guard
    # Spaces (tabs) next to digits matter where they are not separators.
    odd = g is None or g.odd_integers or (not spec.whitespace and (
        g.space_digit or (g.tab_digit and spec.sep not in ("\t", "::"))))
    again = [c for c in ids if not (df[c].dtype.kind == "i" and not odd or df[c].dtype == object)]
    if again:
        df = _read(src, spec, dict(kw, dtype={c: str for c in again}))
    if not len(df):
        raise ValueError(f"{src.name}: header but no rows (no ratings)")
    return df


def _read(src: Source, spec: Spec, kw: dict) -> pd.DataFrame:
    # index_col=False: when every line has one field more than the header,
    # pandas would otherwise quietly use the first column as the index; with
    # it, pandas drops the extra field but warns, and we turn that into an error.
    try:
        with (spec.opener or src.open)() as f, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            df = pd.read_csv(f, index_col=False, **kw)
    except CorruptInput:
        raise
    except pd.errors.EmptyDataError:
        raise ValueError(f"{src.name}: file is empty (no ratings)") from None
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError, OverflowError) as e:
        _raise_bad_line(src, spec, e)
    for w in caught:
        if issubclass(w.category, pd.errors.ParserWarning):
            _raise_bad_line(src, spec, f"lines have more fields than the header ({w.message})")
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return df


def ids_from_text(col: np.ndarray) -> np.ndarray:
    """IDs read as text [n] -> int64 if every one is a plain integer (see the module docstring), else as is."""
    if col.dtype != object:
        return col
    codes, uniques = pd.factorize(col)
    u = pd.Series(uniques, dtype=object)
    if not len(u) or not u.map(lambda x: isinstance(x, str)).all():
        return col
    if not u.str.fullmatch(_PLAIN_INT).all():
        return col
    as_int = np.array([int(x) for x in u], dtype=object)
    if as_int.max() > np.iinfo(np.int64).max or as_int.min() < np.iinfo(np.int64).min:
        return col
    return as_int.astype(np.int64)[codes]


def to_ratings(src: Source, df: pd.DataFrame, cols: dict, spec: Spec | None) -> Ratings:
    """Check the parsed columns; on any hole, find the offending line."""
    need = ["user", "item", "rating"] + (["time"] if cols.get("time") else [])
    problem = None
    for role in need:
        s = df[role]
        if s.isna().any():
            problem = "missing or NaN rating" if role == "rating" else f"missing {role} values"
            break
    if problem is None and not pd.api.types.is_numeric_dtype(df["rating"]):
        problem = "non-numeric rating"
    if problem is None:
        r = df["rating"].to_numpy(np.float64)
        if not np.isfinite(r).all():
            problem = "non-finite (NaN/inf) rating"
        elif (np.abs(r) > _F32_MAX).any():
            problem = "rating out of the float32 range"
    if problem is None and cols.get("time") and df["time"].dtype.kind in "fiu":
        t = df["time"].to_numpy()
        if t.dtype.kind == "f" and not np.isfinite(t).all():
            problem = "non-finite timestamp"
        elif t.dtype.kind in "fu" and ((t >= _T_LIMIT) | (t < -_T_LIMIT)).any():
            problem = "timestamp out of the int64 range"
    users, items = (ids_from_text(df[role].to_numpy()) for role in ("user", "item"))
    if problem is None:
        for role, a in (("user", users), ("item", items)):
            if a.dtype == object and pd.Series(pd.unique(a)).str.contains("[\r\n]", regex=True).any():
                problem = f"a {role} ID contains a newline (a quote left open?)"
                break
    if problem is not None:
        _raise_bad_line(src, spec, problem, df=df)
    t = df["time"].to_numpy() if cols.get("time") else None
    try:
        return Ratings.from_arrays(users, items, df["rating"].to_numpy(), t)
    except ValueError as e:
        _raise_bad_line(src, spec, str(e))


def clip(line: str, n: int = 120) -> str:
    return repr(line if len(line) <= n else line[:n] + "...")


def _raise_bad_line(src: Source, spec: Spec | None, cause, df: pd.DataFrame | None = None):
    """Re-read the file line by line and raise a ValueError naming the first bad line."""
    found = _find_bad_line(src, spec) if spec is not None else None
    if found is not None:
        lineno, reason, line = found
        raise ValueError(f"{src.name}, line {lineno}: {reason}: {clip(line)}") from (
            cause if isinstance(cause, BaseException) else None
        )
    # No single line to blame (e.g. Parquet).
    where = ""
    if df is not None and isinstance(cause, str):
        role = {"missing user values": "user", "missing item values": "item"}.get(cause, "rating")
        s = df[role]
        bad = s.isna().to_numpy()
        if not bad.any() and role == "rating" and pd.api.types.is_numeric_dtype(s):
            bad = ~np.isfinite(s.to_numpy(np.float64))
        if bad.any():
            where = f" (row {int(np.flatnonzero(bad)[0])})"
    raise ValueError(f"{src.name}: {cause}{where}") from (
        cause if isinstance(cause, BaseException) else None
    )


def _find_bad_line(src: Source, spec: Spec):
    """The slow pass: (1-based line number, reason, text) of the first bad line, or None."""
    with src.open() as f:
        text = io.TextIOWrapper(f, encoding=text_encoding(spec.encoding), errors="replace", newline="")
        if len(spec.sep) == 1 and not spec.whitespace:
            rows = _csv_rows(text, spec.sep, spec.quoting)
        else:
            rows = _split_rows(text, spec.sep, spec.whitespace)
        seen_header = not spec.header
        for lineno, fields, line in rows:
            if fields is None:  # the csv module gave up on this record
                return lineno, line, ""
            if not line.strip():
                continue
            if "\ufffd" in line:
                return lineno, f"not valid {spec.encoding} text", line
            if not seen_header:
                seen_header = True
                continue
            bad = _check_fields(fields, spec)
            if bad:
                return lineno, bad, line
    return None


def _csv_rows(text, sep, quoting):
    """csv.reader records as (first physical line number, fields, text)."""
    reader = csv.reader(text, delimiter=sep, quoting=quoting)
    prev = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield prev + 1, None, f"CSV error: {e}"
            return
        # line_num counts physical lines, so a record spanning lines (a quoted
        # newline) starts right after the previous record ended.
        yield prev + 1, fields, sep.join(fields)
        prev = reader.line_num


def _split_rows(text, sep, whitespace):
    for lineno, line in enumerate(text, 1):
        line = line.rstrip("\r\n")
        # u.data is split on any whitespace, as the fast path does.
        fields = line.split() if whitespace else line.split(sep)
        yield lineno, fields, line


def _check_fields(fields: list[str], spec: Spec) -> str | None:
    if len(fields) != spec.n_fields:
        return f"expected {spec.n_fields} fields, found {len(fields)}"
    c = spec.cols
    for role in ("user", "item"):
        if not fields[c[role]].strip():
            return f"empty {role} ID"
        if "\n" in fields[c[role]] or "\r" in fields[c[role]]:
            return f"the {role} ID contains a newline (a quote left open?)"
    raw = fields[c["rating"]].strip()
    if not _NUMBER.fullmatch(raw):
        return f"rating {raw!r} is not a number"
    v = float(raw)
    if not np.isfinite(v):
        return f"rating {raw!r} is not finite"
    if abs(v) > _F32_MAX:
        return f"rating {raw!r} is out of the float32 range"
    if c.get("time") is not None:
        raw_t = fields[c["time"]].strip()
        if not raw_t:
            return "empty timestamp"
        if _NUMBER.fullmatch(raw_t):  # else a date, checked as a whole column
            v = float(raw_t)
            if not np.isfinite(v):
                return f"timestamp {raw_t!r} is not finite"
            if not -_T_LIMIT <= v < _T_LIMIT:
                return f"timestamp {raw_t!r} is out of range (Unix seconds must fit int64)"
    return None
