"""Rating data: an immutable container with an ID mapping, and file loaders.

Users bring logs with arbitrary user and item IDs (ints or strings); the core
needs contiguous indices. :class:`Ratings` holds both: index arrays
``users``/``items`` in ``[0, n)`` for the model, and ``user_ids``/``item_ids``
that map each index back to its raw ID. Subsets and splits keep the parent's
ID tables, so a model trained on one split can score another.

:func:`load_ratings` reads MovieLens (``u.data``, ``ratings.dat``,
``ratings.csv``, also inside the official zip archives), RecBole ``.inter``
files, any CSV/TSV with named columns, and Parquet. Parsing uses pandas' C
engine; only when that fails (or leaves holes) does a slow line-by-line pass
run, to name the file and line of the first bad record.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import sys
import warnings
import zipfile
from functools import cached_property
from typing import IO

import numpy as np
import pandas as pd

__all__ = ["Ratings", "load_ratings", "FORMATS"]

# Accepted values of ``load_ratings(format=...)``.
FORMATS = ("auto", "udata", "dat", "csv", "tsv", "inter", "parquet")

# Column names tried, case-insensitively, when a header file gets no *_col.
_DEFAULT_COLS = {
    "user": ("userId", "user_id", "user", "userid", "uid", "customer_id", "reviewerID"),
    "item": ("movieId", "item_id", "item", "itemid", "iid", "movie_id", "product_id", "asin"),
    "rating": ("rating", "ratings", "score", "stars", "overall", "value"),
    "time": ("timestamp", "time", "ts", "datetime", "date", "unixReviewTime"),
}

# Members looked for, in this order, when ``load_ratings`` gets a zip archive.
_ZIP_PREFERRED = ("ratings.csv", "ratings.dat", "u.data")


def _readonly(a: np.ndarray) -> np.ndarray:
    # A view, so the caller's own array is not frozen as a side effect.
    a = a.view()
    a.setflags(write=False)
    return a


def _id_array(ids) -> np.ndarray:
    a = np.asarray(ids)
    if a.ndim != 1:
        raise ValueError(f"ID tables must be 1-D, got shape {a.shape}")
    if a.dtype.kind == "U":
        a = a.astype(object)  # fixed-width unicode would pad and compare oddly
    return a


class IdSpace:
    """Raw-ID lookups shared by :class:`Ratings` and :class:`mfjax.Model`.

    Subclasses have ``user_ids`` [n_users] and ``item_ids`` [n_items]: the raw
    ID of each index.
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


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Ratings(IdSpace):
    """An immutable set of (user, item, rating[, timestamp]) observations.

    Construct it with :meth:`from_arrays` (raw IDs) or :func:`load_ratings`;
    the direct constructor takes indices that are already contiguous and
    checks that they are in range, because out-of-range indices reaching jit
    are clamped silently by JAX.

    Repeated (user, item) pairs are allowed here (the objective simply counts
    them twice); :meth:`from_arrays` and the loaders remove them.

    Attributes:
        users: user indices [n], int32 in [0, n_users).
        items: item indices [n], int32 in [0, n_items).
        ratings: ratings [n], float32, finite.
        timestamps: Unix seconds [n], int64, or None.
        user_ids: raw user ID of each index [n_users] (int or object array).
        item_ids: raw item ID of each index [n_items].
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray | None
    user_ids: np.ndarray
    item_ids: np.ndarray

    def __post_init__(self):
        user_ids = _id_array(self.user_ids)
        item_ids = _id_array(self.item_ids)
        fields = {
            "users": np.asarray(self.users),
            "items": np.asarray(self.items),
            "ratings": np.asarray(self.ratings),
        }
        if self.timestamps is not None:
            fields["timestamps"] = np.asarray(self.timestamps)
        for name, a in fields.items():
            if a.ndim != 1:
                raise ValueError(f"Ratings: {name} must be 1-D, got shape {a.shape}")
        lengths = {name: len(a) for name, a in fields.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"Ratings: array lengths differ: {lengths}")
        for name, n in (("users", len(user_ids)), ("items", len(item_ids))):
            a = fields[name]
            if a.size and not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"Ratings: {name} must be integer indices, got dtype {a.dtype}")
            if a.size:
                lo, hi = int(a.min()), int(a.max())
                if lo < 0 or hi >= n:
                    j = int(np.flatnonzero((a < 0) | (a >= n))[0])
                    raise ValueError(
                        f"Ratings: {name}[{j}] = {int(a[j])} is outside [0, {n}) "
                        f"(the {name[:-1]} ID table has {n} entries)"
                    )
            fields[name] = a.astype(np.int32, copy=False)
        r = fields["ratings"]
        if r.size and not np.issubdtype(r.dtype, np.number):
            raise ValueError(f"Ratings: ratings must be numeric, got dtype {r.dtype}")
        r = r.astype(np.float32, copy=False)
        bad = np.flatnonzero(~np.isfinite(r))
        if bad.size:
            j = int(bad[0])
            raise ValueError(
                f"Ratings: ratings[{j}] = {r[j]} is not finite ({bad.size} non-finite entries)"
            )
        fields["ratings"] = r
        if "timestamps" in fields:
            t = fields["timestamps"]
            if t.size and not np.issubdtype(t.dtype, np.integer):
                raise ValueError(f"Ratings: timestamps must be integers, got dtype {t.dtype}")
            fields["timestamps"] = t.astype(np.int64, copy=False)
        for name, a in fields.items():
            object.__setattr__(self, name, _readonly(a))
        object.__setattr__(self, "user_ids", _readonly(user_ids))
        object.__setattr__(self, "item_ids", _readonly(item_ids))

    def __len__(self) -> int:
        return len(self.ratings)

    def __repr__(self) -> str:
        ts = "with" if self.timestamps is not None else "without"
        return (
            f"Ratings({len(self):,} ratings, {self.n_users:,} users, "
            f"{self.n_items:,} items, {ts} timestamps)"
        )

    # ------------------------------------------------------------ statistics
    @cached_property
    def rating_range(self) -> tuple[float, float]:
        """(min, max) of the ratings, e.g. to clip predictions."""
        if not len(self):
            raise ValueError("rating_range of an empty Ratings is undefined")
        return float(self.ratings.min()), float(self.ratings.max())

    @cached_property
    def mean(self) -> float:
        """Mean rating (accumulated in float64)."""
        if not len(self):
            raise ValueError("mean of an empty Ratings is undefined")
        return float(np.mean(self.ratings, dtype=np.float64))

    # ------------------------------------------------------------- subsetting
    def subset(self, index_or_mask) -> "Ratings":
        """The ratings selected by a boolean mask [n] or an integer index array.

        The result shares this object's ``user_ids``/``item_ids``, so indices
        mean the same thing in both.
        """
        sel = np.asarray(index_or_mask)
        if sel.dtype == bool:
            if sel.shape != (len(self),):
                raise ValueError(
                    f"subset: boolean mask has shape {sel.shape}, expected ({len(self)},)"
                )
        elif sel.size and not np.issubdtype(sel.dtype, np.integer):
            raise ValueError(f"subset: need a boolean mask or integer indices, got dtype {sel.dtype}")
        else:
            sel = sel.astype(np.intp, copy=False)
        return Ratings(
            users=self.users[sel],
            items=self.items[sel],
            ratings=self.ratings[sel],
            timestamps=None if self.timestamps is None else self.timestamps[sel],
            user_ids=self.user_ids,
            item_ids=self.item_ids,
        )

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame with columns user, item, rating[, timestamp] holding raw IDs."""
        cols = {
            "user": self.user_ids[self.users],
            "item": self.item_ids[self.items],
            "rating": self.ratings,
        }
        if self.timestamps is not None:
            cols["timestamp"] = self.timestamps
        return pd.DataFrame(cols)

    # ----------------------------------------------------------- construction
    @classmethod
    def from_arrays(cls, raw_users, raw_items, ratings, timestamps=None) -> "Ratings":
        """Build Ratings from raw IDs, assigning contiguous indices.

        Indices follow the sorted order of the unique raw IDs (first-seen
        order if the IDs have mixed, unorderable types). Repeated
        (user, item) pairs keep the latest by timestamp, otherwise the last
        occurrence, with a warning saying how many were dropped.

        Args:
            raw_users, raw_items: raw IDs [n] (ints or strings).
            ratings: numeric ratings [n]; must be finite.
            timestamps: optional times [n]: integers (Unix seconds), integral
                floats, or datetimes.

        Raises:
            ValueError: on empty input, unequal lengths, missing IDs,
                non-numeric or non-finite ratings, or bad timestamps.
        """
        users = _as_1d(raw_users, "raw_users")
        items = _as_1d(raw_items, "raw_items")
        r = _as_1d(ratings, "ratings")
        lengths = {"raw_users": len(users), "raw_items": len(items), "ratings": len(r)}
        t = None
        if timestamps is not None:
            t = _as_1d(timestamps, "timestamps")
            lengths["timestamps"] = len(t)
        if len(set(lengths.values())) > 1:
            raise ValueError(f"Ratings.from_arrays: array lengths differ: {lengths}")
        if len(r) == 0:
            raise ValueError("Ratings.from_arrays: no ratings (empty input)")
        r = _numeric_ratings(r)
        if t is not None:
            t = _int_timestamps(t)

        u_idx, user_ids = _factorize(users, "user")
        i_idx, item_ids = _factorize(items, "item")
        keep = _dedup_keep(u_idx, i_idx, len(item_ids), t)
        if keep is not None:
            n_drop = len(r) - int(keep.sum())
            _warn(
                f"dropped {n_drop:,} duplicate (user, item) ratings, keeping the "
                f"{'latest by timestamp' if t is not None else 'last occurrence'} of each"
            )
            u_idx, i_idx, r = u_idx[keep], i_idx[keep], r[keep]
            t = None if t is None else t[keep]
        return cls(u_idx, i_idx, r, t, user_ids, item_ids)


# ---------------------------------------------------------------------------
# from_arrays helpers


def _warn(msg: str) -> None:
    """warnings.warn attributed to the first caller outside this module."""
    level, f = 2, sys._getframe(1)
    while f is not None and f.f_code.co_filename == __file__:
        f, level = f.f_back, level + 1
    warnings.warn(msg, UserWarning, stacklevel=level)


def _show(x):
    """A NumPy scalar as the plain Python value, for readable messages."""
    return x.item() if isinstance(x, np.generic) else x


def _as_1d(x, name) -> np.ndarray:
    a = x.to_numpy() if isinstance(x, (pd.Series, pd.Index)) else np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"Ratings.from_arrays: {name} must be 1-D, got shape {a.shape}")
    return a


def _numeric_ratings(r: np.ndarray) -> np.ndarray:
    if r.dtype.kind not in "iufb":
        try:
            r = r.astype(np.float64)
        except (TypeError, ValueError):
            bad = pd.to_numeric(pd.Series(r), errors="coerce").isna().to_numpy()
            j = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"Ratings.from_arrays: ratings must be numeric; ratings[{j}] = {_show(r[j])!r}"
            ) from None
    bad = np.flatnonzero(~np.isfinite(r))
    if bad.size:
        j = int(bad[0])
        raise ValueError(
            f"Ratings.from_arrays: ratings[{j}] = {r[j]} is not finite "
            f"({bad.size} non-finite ratings)"
        )
    return r.astype(np.float32, copy=False)


def _int_timestamps(t: np.ndarray) -> np.ndarray:
    if t.dtype.kind in "iu":
        return t.astype(np.int64, copy=False)
    if t.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(t))
        if bad.size:
            j = int(bad[0])
            raise ValueError(f"Ratings.from_arrays: timestamps[{j}] = {t[j]} is not finite")
        return np.rint(t).astype(np.int64)
    if t.dtype.kind == "M":
        return t.astype("datetime64[s]").astype(np.int64)
    try:
        # Strings such as "2021-03-04 10:00:00" (or numbers stored as text).
        num = pd.to_numeric(pd.Series(t), errors="coerce")
        if not num.isna().any():
            return np.rint(num.to_numpy(np.float64)).astype(np.int64)
        dt = pd.to_datetime(pd.Series(t), utc=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"Ratings.from_arrays: cannot read timestamps as times: {e}") from None
    if dt.isna().any():
        j = int(np.flatnonzero(dt.isna().to_numpy())[0])
        raise ValueError(f"Ratings.from_arrays: timestamps[{j}] is missing")
    return (dt.astype("datetime64[ns, UTC]").astype("int64") // 10**9).to_numpy()


def _factorize(raw: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw IDs [n] -> (int32 codes [n], unique raw IDs [m]), hash-based."""
    try:
        codes, uniques = pd.factorize(raw, sort=True)
    except TypeError:
        # Mixed types (e.g. 3 and "a") cannot be sorted; keep first-seen order.
        codes, uniques = pd.factorize(raw, sort=False)
    if codes.size and codes.min() < 0:
        j = int(np.flatnonzero(codes < 0)[0])
        raise ValueError(f"Ratings.from_arrays: {what} ID at position {j} is missing (NaN/None)")
    uniques = np.asarray(uniques)
    if len(uniques) > np.iinfo(np.int32).max:
        raise ValueError(f"too many distinct {what} IDs for int32 indices: {len(uniques)}")
    return codes.astype(np.int32), uniques


def _dedup_keep(u, i, n_items, t) -> np.ndarray | None:
    """Boolean keep-mask removing repeated (u, i) pairs, or None if there are none.

    A sort of the pair keys (~1.5 s for 20M) finds whether any repeat; only
    the rows involved in repeats are then ordered by (key, time, position).
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
            f"unknown {what} ID {_show(keys[j])!r} ({n_bad} unknown); "
            f"pass missing='ignore' to get -1"
        )
    if shape is not None:
        idx = idx.reshape(shape)
    return idx[0] if scalar else idx


# ---------------------------------------------------------------------------
# Loading files


class _Source:
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


def _pick_member(path: str, names: list[str]) -> str:
    files = [
        n for n in names
        if not n.endswith("/") and "__MACOSX" not in n and not os.path.basename(n).startswith(".")
    ]
    for want in _ZIP_PREFERRED:
        hits = [n for n in files if os.path.basename(n) == want]
        if len(hits) == 1:
            return hits[0]
    inter = [n for n in files if n.endswith(".inter")]
    if len(inter) == 1:
        return inter[0]
    if len(files) == 1:
        return files[0]
    shown = ", ".join(files[:20]) + (" ..." if len(files) > 20 else "")
    raise ValueError(
        f"{path}: cannot tell which archive member holds the ratings "
        f"(looked for {', '.join(_ZIP_PREFERRED)} or one .inter file); pass member=. "
        f"Members: {shown}"
    )


def _first_line(src: _Source, encoding: str) -> str | None:
    with src.open() as f:
        text = io.TextIOWrapper(f, encoding=_sig(encoding), errors="replace", newline="")
        for line in text:
            if line.strip():
                return line.rstrip("\r\n")
    return None


def _sig(encoding: str) -> str:
    # utf-8-sig strips a BOM if present and is plain UTF-8 otherwise.
    return "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


def _detect_format(src: _Source, encoding: str) -> tuple[str, str | None]:
    """(format, separator) from the file name, else from the first line."""
    name = src.filename.lower()
    ext = os.path.splitext(name)[1]
    if ext in (".parquet", ".pq"):
        return "parquet", None
    if ext == ".inter":
        return "inter", "\t"
    if ext == ".dat":
        return "dat", "::"
    if name == "u.data" or ext in (".data", ".base", ".test"):
        return "udata", "\t"
    if ext == ".csv":
        return "csv", ","
    if ext in (".tsv", ".tab"):
        return "csv", "\t"
    line = _first_line(src, encoding)
    if line is None:
        raise ValueError(f"{src.name}: file is empty (no ratings)")
    if "::" in line:
        return "dat", "::"
    fields = line.split()
    if 3 <= len(fields) <= 4 and all(_is_number(x) for x in fields):
        return "udata", "\t" if "\t" in line else " "
    try:
        sep = csv.Sniffer().sniff(line, delimiters=",\t;|").delimiter
    except csv.Error:
        sep = ","
    return "csv", sep


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def load_ratings(
    path,
    *,
    format: str = "auto",
    user_col: str | None = None,
    item_col: str | None = None,
    rating_col: str | None = None,
    time_col: str | None = None,
    sep: str | None = None,
    member: str | None = None,
    encoding: str = "utf-8",
) -> Ratings:
    """Read a ratings file into :class:`Ratings`.

    Formats (``format="auto"`` picks by file name, then by the first line):

    - ``"udata"``: MovieLens 100K ``u.data``: tab-separated
      ``user item rating timestamp``, no header.
    - ``"dat"``: MovieLens 1M/10M ``ratings.dat``: ``user::item::rating::timestamp``.
    - ``"csv"`` / ``"tsv"``: delimited text with a header row, e.g. MovieLens
      20M+ ``ratings.csv`` (``userId,movieId,rating,timestamp``). Columns are
      found by ``user_col`` etc., or else by common names (userId, user_id,
      item_id, movieId, rating, timestamp, ...).
    - ``"inter"``: RecBole atomic files: tab-separated with typed headers such
      as ``user_id:token`` (the ``:type`` suffix is ignored when matching).
    - ``"parquet"``: needs pyarrow.

    A ``.zip`` (or ``.whl``) path is read in memory, without extracting: the
    member is ``member`` if given, else ``ratings.csv``, ``ratings.dat``,
    ``u.data`` or the only ``.inter`` file. The official MovieLens archives
    work as downloaded.

    IDs that look like integers are read as integers. Repeated (user, item)
    pairs keep the latest rating (see :meth:`Ratings.from_arrays`).

    Args:
        path: file or zip archive.
        format: one of :data:`FORMATS`.
        user_col, item_col, rating_col, time_col: column names for files
            with a header. ``time_col`` is optional; without it a column named
            like a timestamp is used if present.
        sep: field separator, overriding the format's default.
        member: the archive member to read, for zip paths.
        encoding: text encoding (a UTF-8 BOM is always accepted).

    Returns:
        The ratings, with IDs sorted into indices.

    Raises:
        FileNotFoundError: ``path`` (or ``member``) does not exist.
        ValueError: unknown format; empty file or header without rows; a
            named column missing (the message lists the columns found); a
            malformed line or a NaN/inf rating (the message names the file
            and the 1-based line number).
        ImportError: Parquet without pyarrow.
    """
    path = os.fspath(path)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"ratings file not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory; pass the ratings file (or zip archive) itself")
    if member is not None or zipfile.is_zipfile(path) and not path.lower().endswith(
        (".parquet", ".pq")
    ):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile as e:
            raise ValueError(f"{path}: member= needs a zip archive ({e})") from None
        if member is None:
            member = _pick_member(path, names)
        elif member not in names:
            raise FileNotFoundError(f"{path}: archive has no member {member!r}")
        src = _Source(path, member)
    else:
        src = _Source(path)

    if format == "auto":
        fmt, default_sep = _detect_format(src, encoding)
    else:
        fmt = "csv" if format == "tsv" else format
        default_sep = {"udata": "\t", "dat": "::", "csv": ",", "inter": "\t", "parquet": None}[fmt]
        if format == "tsv":
            default_sep = "\t"
    sep = sep if sep is not None else default_sep
    named = {"user": user_col, "item": item_col, "rating": rating_col, "time": time_col}

    if fmt == "parquet":
        df, cols = _read_parquet(src, named)
        return _finish(src, df, cols, spec=None)
    if fmt in ("udata", "dat"):
        if any(v is not None for v in named.values()):
            raise ValueError(
                f"{src.name}: {fmt!r} files have no header, so user_col/item_col/"
                f"rating_col/time_col do not apply; use format='csv' for a file with a header"
            )
        return _read_headerless(src, fmt, sep, encoding)
    return _read_header(src, fmt, sep, named, encoding)


class _Spec:
    """How to re-read a text file line by line to find the first bad record."""

    def __init__(self, sep, n_fields, header, cols, encoding):
        self.sep = sep
        self.n_fields = n_fields
        self.header = header
        self.cols = cols  # {"user": pos, "item": pos, "rating": pos, "time": pos|None}
        self.encoding = encoding
        self.opener = None  # byte-stream opener for the fast parse, if not the file's own


class _Replace(io.RawIOBase):
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


def _read_headerless(src: _Source, fmt: str, sep: str, encoding: str) -> Ratings:
    line = _first_line(src, encoding)
    if line is None:
        raise ValueError(f"{src.name}: file is empty (no ratings)")
    fields = line.split() if sep in (" ", "\t") and fmt == "udata" else line.split(sep)
    n = len(fields)
    if n not in (3, 4):
        raise ValueError(
            f"{src.name}, first line: expected 3 or 4 fields (user, item, rating[, timestamp]) "
            f"separated by {sep!r}, found {n}: {_clip(line)}"
        )
    names = ["user", "item", "rating", "time"][:n]
    cols = {k: i for i, k in enumerate(names)}
    cols.setdefault("time", None)
    spec = _Spec(sep, n, False, cols, encoding)
    kw = dict(header=None, engine="c", skip_blank_lines=True, encoding=_sig(encoding))
    if sep == "::":
        # The C engine needs a 1-char separator: feed it the bytes with
        # "::" turned into a tab (ratings.dat never holds tabs).
        kw.update(sep="\t", names=names)
        spec.opener = lambda: io.BufferedReader(_Replace(src.open(), b"::", b"\t"))
    elif sep in (" ", "\t") and fmt == "udata":
        kw.update(sep=r"\s+", names=names)
    else:
        kw.update(sep=sep, names=names)
    df = _parse(src, spec, kw)
    df.columns = names
    return _finish(src, df, {k: k if v is not None else None for k, v in cols.items()}, spec)


def _read_header(src: _Source, fmt: str, sep: str, named: dict, encoding: str) -> Ratings:
    line = _first_line(src, encoding)
    if line is None:
        raise ValueError(f"{src.name}: file is empty (no ratings)")
    header = next(csv.reader([line], delimiter=sep)) if len(sep) == 1 else line.split(sep)
    header = [h.strip() for h in header]
    cols = _resolve_columns(src, header, named, typed=fmt == "inter")
    spec = _Spec(sep, len(header), True, cols, encoding)
    used = sorted(p for p in cols.values() if p is not None)
    # Every column is parsed, even unused ones: with usecols the C engine
    # stops rejecting lines that have too many fields.
    kw = dict(header=0, engine="c", skip_blank_lines=True, encoding=_sig(encoding))
    if len(sep) == 1:
        kw["sep"] = sep
    else:
        raise ValueError(f"{src.name}: separator {sep!r} must be one character for files with a header")
    if fmt == "inter":
        kw["quoting"] = csv.QUOTE_NONE  # RecBole does not quote; titles may hold '"'
    df = _parse(src, spec, kw)
    df = df.iloc[:, used]
    # Columns come in file order; name them by role.
    by_pos = {p: role for role, p in cols.items() if p is not None}
    df.columns = [by_pos[p] for p in used]
    return _finish(src, df, {k: k if v is not None else None for k, v in cols.items()}, spec)


def _resolve_columns(src, header: list[str], named: dict, typed: bool) -> dict:
    """Map roles (user, item, rating, time) to column positions."""
    def norm(h):
        return (h.rsplit(":", 1)[0] if typed and ":" in h else h).strip()

    plain = [norm(h) for h in header]
    lower = [h.lower() for h in plain]
    found = ", ".join(repr(h) for h in header)
    out = {}
    for role, want in named.items():
        if want is not None:
            if want in header:
                out[role] = header.index(want)
            elif want in plain:
                out[role] = plain.index(want)
            else:
                raise ValueError(
                    f"{src.name}: no column {want!r} ({role}_col); found columns: {found}"
                )
            continue
        pos = next((lower.index(c.lower()) for c in _DEFAULT_COLS[role] if c.lower() in lower), None)
        if pos is None and role != "time":
            raise ValueError(
                f"{src.name}: cannot find the {role} column (tried "
                f"{', '.join(_DEFAULT_COLS[role])}); pass {role}_col=. Found columns: {found}"
            )
        out[role] = pos
    dup = [r for r in out if out[r] is not None and list(out.values()).count(out[r]) > 1]
    if dup:
        raise ValueError(f"{src.name}: roles {dup} all map to the same column; found columns: {found}")
    return out


def _read_parquet(src: _Source, named: dict):
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ImportError(
            "reading Parquet needs pyarrow: pip install 'mfjax[parquet]'"
        ) from e
    data = None
    if src.member:
        with src.open() as f:
            data = f.read()
    target = io.BytesIO(data) if data is not None else src.path
    try:
        header = pq.read_schema(target).names
    except Exception as e:  # pyarrow raises ArrowInvalid for non-Parquet bytes
        raise ValueError(f"{src.name}: not a readable Parquet file: {e}") from e
    cols = _resolve_columns(src, header, named, typed=False)
    if data is not None:
        target = io.BytesIO(data)
    names = {role: header[p] for role, p in cols.items() if p is not None}
    df = pq.read_table(target, columns=list(names.values())).to_pandas()
    df = df.rename(columns={v: k for k, v in names.items()})
    if not len(df):
        raise ValueError(f"{src.name}: no rows (no ratings)")
    return df, {k: k if k in names else None for k in cols}


def _parse(src: _Source, spec: _Spec, kw: dict) -> pd.DataFrame:
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


def _finish(src: _Source, df: pd.DataFrame, cols: dict, spec: _Spec | None) -> Ratings:
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


def _clip(line: str, n: int = 120) -> str:
    return repr(line if len(line) <= n else line[:n] + "...")


def _raise_bad_line(src: _Source, spec: _Spec | None, cause, df: pd.DataFrame | None = None):
    """Re-read the file line by line and raise a ValueError naming the first bad line."""
    found = _find_bad_line(src, spec) if spec is not None else None
    if found is not None:
        lineno, reason, line = found
        raise ValueError(f"{src.name}, line {lineno}: {reason}: {_clip(line)}") from (
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


def _find_bad_line(src: _Source, spec: _Spec):
    """The slow pass: (1-based line number, reason, text) of the first bad line, or None."""
    with src.open() as f:
        text = io.TextIOWrapper(f, encoding=_sig(spec.encoding), errors="replace", newline="")
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


def _check_fields(fields: list[str], spec: _Spec) -> str | None:
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
