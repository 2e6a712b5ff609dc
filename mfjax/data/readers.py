"""Reading rating files: :func:`load_ratings` and format detection.

Formats: MovieLens (``u.data``, ``ratings.dat``, ``ratings.csv``, also inside
the official zip archives), RecBole ``.inter`` files, any CSV/TSV with named
columns, and Parquet. Parsing uses pandas' C engine; only when that fails (or
leaves holes) does a slow line-by-line pass run (:mod:`mfjax.data.parsing`),
to name the file and line of the first bad record.

Example:
    >>> from mfjax.data import load_ratings
    >>> r = load_ratings("ml-100k.zip")        # doctest: +SKIP
    >>> r = load_ratings("log.csv", user_col="customer", item_col="sku")  # doctest: +SKIP

References:
    MovieLens file formats: F. M. Harper, J. A. Konstan, "The MovieLens
    Datasets: History and Context", ACM TiiS 5(4), 2015,
    https://files.grouplens.org/datasets/movielens/; RecBole atomic files:
    https://recbole.io/docs/user_guide/data/atomic_files.html
"""

from __future__ import annotations

import csv
import io
import os
import zipfile

from .parsing import Spec, clip, first_line, parse_frame, text_encoding, to_ratings
from .ratings import Ratings
from .streams import ZIP_ERRORS, ReplaceStream, Source, is_zip_error, sniff_binary

__all__ = ["load_ratings", "FORMATS"]

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


def _detect_format(src: Source, encoding: str) -> tuple[str, str | None]:
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
    line = first_line(src, encoding)
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

    Text rules: IDs are read as text unless the whole column is plain
    integers (no leading zeros, no ``+``), which are read as ints; so
    ``007`` and ``7`` stay apart, and ``NA``/``null``/``nan`` are IDs (only an
    empty field is missing). Quotes are literal characters in tab-, space-
    and ``::``-separated files; in other CSVs an ID that spans lines (a quote
    left open) is an error. Lines longer than 1 MiB
    (:data:`mfjax.data.streams.MAX_LINE`) stop the read with an error, so an
    endless stream cannot exhaust memory. Repeated (user, item) pairs keep
    the latest rating (see :meth:`Ratings.from_arrays`).

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
            malformed line, a NaN/inf or out-of-range rating or timestamp, a
            line over 1 MiB (the message names the file and the 1-based line
            number); a compressed, binary or corrupt file or archive member
            (the message says which).
        ImportError: Parquet without pyarrow.
    """
    path = os.fspath(path)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"ratings file not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory; pass the ratings file (or zip archive) itself")
    # Only a regular file can be a zip: is_zipfile reads a device such as
    # /dev/zero to its (missing) end.
    if member is not None or os.path.isfile(path) and zipfile.is_zipfile(path) and not (
        path.lower().endswith((".parquet", ".pq"))
    ):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except ZIP_ERRORS as e:
            if not is_zip_error(e):
                raise
            raise ValueError(f"{path}: not a valid zip archive ({e})") from None
        if member is None:
            member = _pick_member(path, names)
        elif member not in names:
            raise FileNotFoundError(f"{path}: archive has no member {member!r}")
        src = Source(path, member)
    else:
        src = Source(path)
    if format != "parquet" and not src.filename.lower().endswith((".parquet", ".pq")):
        sniff_binary(src, encoding)

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
        return to_ratings(src, df, cols, spec=None)
    if fmt in ("udata", "dat"):
        if any(v is not None for v in named.values()):
            raise ValueError(
                f"{src.name}: {fmt!r} files have no header, so user_col/item_col/"
                f"rating_col/time_col do not apply; use format='csv' for a file with a header"
            )
        return _read_headerless(src, fmt, sep, encoding)
    return _read_header(src, fmt, sep, named, encoding)


def _read_headerless(src: Source, fmt: str, sep: str, encoding: str) -> Ratings:
    line = first_line(src, encoding)
    if line is None:
        raise ValueError(f"{src.name}: file is empty (no ratings)")
    fields = line.split() if sep in (" ", "\t") and fmt == "udata" else line.split(sep)
    n = len(fields)
    if n not in (3, 4):
        raise ValueError(
            f"{src.name}, first line: expected 3 or 4 fields (user, item, rating[, timestamp]) "
            f"separated by {sep!r}, found {n}: {clip(line)}"
        )
    names = ["user", "item", "rating", "time"][:n]
    cols = {k: i for i, k in enumerate(names)}
    cols.setdefault("time", None)
    spec = Spec(sep, n, False, cols, encoding, whitespace=sep in (" ", "\t") and fmt == "udata")
    kw = dict(header=None, engine="c", skip_blank_lines=True, encoding=text_encoding(encoding))
    if sep == "::":
        # The C engine needs a 1-char separator: feed it the bytes with
        # "::" turned into a tab (ratings.dat never holds tabs).
        kw.update(sep="\t", names=names)
        spec.opener = lambda: io.BufferedReader(ReplaceStream(src.open(), b"::", b"\t"))
    elif sep in (" ", "\t") and fmt == "udata":
        kw.update(sep=r"\s+", names=names)
    else:
        kw.update(sep=sep, names=names)
    df = parse_frame(src, spec, kw)
    df.columns = names
    return to_ratings(src, df, {k: k if v is not None else None for k, v in cols.items()}, spec)


def _read_header(src: Source, fmt: str, sep: str, named: dict, encoding: str) -> Ratings:
    line = first_line(src, encoding)
    if line is None:
        raise ValueError(f"{src.name}: file is empty (no ratings)")
    spec = Spec(sep, 0, True, {}, encoding)
    if len(sep) == 1:
        header = next(csv.reader([line], delimiter=sep, quoting=spec.quoting))
    else:
        header = line.split(sep)
    header = [h.strip() for h in header]
    spec.n_fields = len(header)
    spec.cols = cols = _resolve_columns(src, header, named, typed=fmt == "inter")
    used = sorted(p for p in cols.values() if p is not None)
    # Every column is parsed, even unused ones: with usecols the C engine
    # stops rejecting lines that have too many fields.
    kw = dict(header=0, engine="c", skip_blank_lines=True, encoding=text_encoding(encoding))
    if len(sep) == 1:
        kw["sep"] = sep
    else:
        raise ValueError(f"{src.name}: separator {sep!r} must be one character for files with a header")
    # Our own column names (the header may repeat a name); quotes are literal
    # in tab-separated files such as RecBole's (titles may hold '"').
    kw["names"] = [f"c{j}" for j in range(len(header))]
    df = parse_frame(src, spec, kw)
    df = df.iloc[:, used]
    # Columns come in file order; name them by role.
    by_pos = {p: role for role, p in cols.items() if p is not None}
    df.columns = [by_pos[p] for p in used]
    return to_ratings(src, df, {k: k if v is not None else None for k, v in cols.items()}, spec)


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


def _read_parquet(src: Source, named: dict):
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


