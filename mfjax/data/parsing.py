"""Text parsing for :func:`~mfjax.data.load_ratings`: fast with pandas, then a slow pass to blame a line.

A :class:`Source` is a plain file or a member of a zip archive (read in
memory, never extracted). :func:`parse_frame` parses it with pandas' C engine;
:func:`to_ratings` checks the columns and builds :class:`~mfjax.data.Ratings`.
Only when either finds a problem does a line-by-line pass run, so that the
ValueError names the file, the 1-based line number and the line itself.

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
import os
import warnings
import zipfile
from typing import IO

import numpy as np
import pandas as pd

from .ratings import Ratings

__all__ = ["Source", "Spec", "ReplaceStream", "first_line", "text_encoding", "parse_frame",
           "to_ratings", "clip"]


class Source:
    """Something to read: a plain file or a member of a zip archive (never extracted)."""

    def __init__(self, path: str, member: str | None = None):
        self.path = path
        self.member = member
        self.filename = os.path.basename(member if member else path)
        self.name = f"{path} (member {member})" if member else path

    def open(self) -> IO[bytes]:
        if self.member is None:
            return open(self.path, "rb")
        # The member stream keeps the archive's file open after the ZipFile
        # object is closed (zipfile reference-counts it), so this is safe.
        with zipfile.ZipFile(self.path) as zf:
            return zf.open(self.member)


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
    """How to re-read a text file line by line to find the first bad record."""

    def __init__(self, sep, n_fields, header, cols, encoding):
        self.sep = sep
        self.n_fields = n_fields
        self.header = header
        self.cols = cols  # {"user": pos, "item": pos, "rating": pos, "time": pos|None}
        self.encoding = encoding
        self.opener = None  # byte-stream opener for the fast parse, if not the file's own


class ReplaceStream(io.RawIOBase):
    """A read-only byte stream with every ``old`` replaced by ``new`` (in 1 MiB chunks)."""

    def __init__(self, f: IO[bytes], old: bytes, new: bytes, chunk: int = 1 << 20):
        self._f, self._old, self._new, self._chunk = f, old, new, chunk
        self._buf = memoryview(b"")
        self._carry = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def _fill(self):
        raw = self._f.read(self._chunk)
        data, self._carry = self._carry + raw, b""
        if not raw:
            self._eof = True
            self._buf = memoryview(data.replace(self._old, self._new))
            return
        # Hold back the tail after the last match that could begin a match
        # split across chunks; everything before it is final.
        parts = data.split(self._old)
        cut = max(len(parts[-1]) - (len(self._old) - 1), 0)
        parts[-1], self._carry = parts[-1][:cut], parts[-1][cut:]
        self._buf = memoryview(self._new.join(parts))

    def readinto(self, b) -> int:
        while not len(self._buf) and not self._eof:
            self._fill()
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self):
        self._f.close()
        super().close()


def parse_frame(src: Source, spec: Spec, kw: dict) -> pd.DataFrame:
    # index_col=False: when every line has one field more than the header,
    # pandas would otherwise quietly use the first column as the index; with
    # it, pandas drops the extra field but warns, and we turn that into an error.
    try:
        with (spec.opener or src.open)() as f, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            df = pd.read_csv(f, index_col=False, **kw)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{src.name}: file is empty (no ratings)") from None
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as e:
        _raise_bad_line(src, spec, e)
    for w in caught:
        if issubclass(w.category, pd.errors.ParserWarning):
            _raise_bad_line(src, spec, f"lines have more fields than the header ({w.message})")
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not len(df):
        raise ValueError(f"{src.name}: header but no rows (no ratings)")
    return df


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
    if problem is None and not np.isfinite(df["rating"].to_numpy(np.float64)).all():
        problem = "non-finite (NaN/inf) rating"
    if problem is None and cols.get("time") and df["time"].dtype.kind == "f":
        if not np.isfinite(df["time"].to_numpy()).all():
            problem = "non-finite timestamp"
    if problem is not None:
        _raise_bad_line(src, spec, problem, df=df)
    t = df["time"].to_numpy() if cols.get("time") else None
    try:
        return Ratings.from_arrays(
            df["user"].to_numpy(), df["item"].to_numpy(), df["rating"].to_numpy(), t
        )
    except ValueError as e:
        raise ValueError(f"{src.name}: {e}") from None


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
    # No single line to blame (e.g. Parquet, or quoting the simple pass cannot follow).
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
        if spec.header and len(spec.sep) == 1:
            rows = _csv_rows(text, spec.sep, csv.QUOTE_MINIMAL if spec.sep != "\t" else csv.QUOTE_NONE)
        else:
            rows = _split_rows(text, spec.sep)
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


def _split_rows(text, sep):
    for lineno, line in enumerate(text, 1):
        line = line.rstrip("\r\n")
        # u.data is split on any whitespace, as the fast path does.
        fields = line.split() if sep in (" ", "\t") else line.split(sep)
        yield lineno, fields, line


def _check_fields(fields: list[str], spec: Spec) -> str | None:
    if len(fields) != spec.n_fields:
        return f"expected {spec.n_fields} fields, found {len(fields)}"
    c = spec.cols
    for role in ("user", "item"):
        if not fields[c[role]].strip():
            return f"empty {role} ID"
    raw = fields[c["rating"]].strip()
    try:
        v = float(raw)
    except ValueError:
        return f"rating {raw!r} is not a number"
    if not np.isfinite(v):
        return f"rating {raw!r} is not finite"
    if c.get("time") is not None:
        raw_t = fields[c["time"]].strip()
        if not raw_t:
            return "empty timestamp"
    return None
