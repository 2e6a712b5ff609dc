"""The :class:`Ratings` container: an immutable log of (user, item, rating[, time]) with its ID tables.

Users bring logs with arbitrary user and item IDs (ints or strings); the core
needs contiguous indices. :class:`Ratings` holds both: index arrays
``users``/``items`` in ``[0, n)`` for the model, and ``user_ids``/``item_ids``
that map each index back to its raw ID. Subsets and splits keep the parent's
ID tables, so a model trained on one split can score another.

Conversions: :meth:`Ratings.from_arrays` (raw ID columns),
:meth:`Ratings.from_frame` / :meth:`Ratings.to_frame` (pandas), and
:meth:`Ratings.from_csr` / :meth:`Ratings.to_csr` (a SciPy sparse
user x item matrix, as the ``implicit`` library takes). Files are read by
:func:`mfjax.data.load_ratings`.

Example:
    >>> from mfjax.data import Ratings
    >>> r = Ratings.from_arrays(["ann", "bob", "ann"], [7, 7, 9], [4.0, 3.0, 5.0])
    >>> r
    Ratings(3 ratings, 2 users, 2 items, without timestamps)
    >>> r.to_csr().toarray().tolist()
    [[4.0, 5.0], [3.0, 0.0]]

References:
    SciPy sparse matrices: https://docs.scipy.org/doc/scipy/reference/sparse.html;
    implicit (user x item CSR input): https://benfred.github.io/implicit/
"""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np
import pandas as pd

from .columns import as_1d, int_timestamps, numeric_ratings, warn
from .conventions import binarize_mask, resolve_duplicates
from .ids import IdSpace, check_unique, factorize, id_array, id_column, remember_unique

__all__ = ["Ratings", "IdSpace"]

#: Column names :meth:`Ratings.from_frame` takes as timestamps by default, in order.
TIME_COLUMNS = ("timestamp", "time", "ts")


def _readonly(a: np.ndarray) -> np.ndarray:
    # A view, so the caller's own array is not frozen as a side effect.
    a = a.view()
    a.setflags(write=False)
    return a


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Ratings(IdSpace):
    """An immutable set of (user, item, rating[, timestamp]) observations.

    Construct it with :meth:`from_arrays` (raw IDs), :meth:`from_frame`,
    :meth:`from_csr` or :func:`~mfjax.data.load_ratings`;
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
        user_ids = id_array(self.user_ids)
        item_ids = id_array(self.item_ids)
        check_unique(user_ids, "Ratings: user_ids")
        check_unique(item_ids, "Ratings: item_ids")
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
        if r.size and (not np.issubdtype(r.dtype, np.number) or r.dtype.kind == "c"):
            raise ValueError(f"Ratings: ratings must be real numbers, got dtype {r.dtype}")
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
        remember_unique(self.user_ids)
        remember_unique(self.item_ids)

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
    def from_arrays(cls, raw_users, raw_items, ratings, timestamps=None, *,
                    duplicates: str = "last") -> "Ratings":
        """Build Ratings from raw IDs, assigning contiguous indices.

        Indices follow the sorted order of the unique raw IDs (first-seen
        order if the IDs have mixed, unorderable types). Repeated
        (user, item) pairs are resolved by ``duplicates``
        (:func:`mfjax.data.conventions.resolve_duplicates`): ``"last"`` (the
        default, for explicit ratings: the latest by timestamp, otherwise the
        last occurrence, with a warning saying how many were dropped),
        ``"sum"`` (values added: weights, watch time), ``"count"`` (the value
        is the number of rows: a click log), ``"raise"``.

        Args:
            raw_users, raw_items: raw IDs [n], one type per column (ints or strings).
            ratings: numeric ratings [n]; must be finite.
            timestamps: optional times [n]: integers (Unix seconds), integral
                floats, or datetimes.
            duplicates: ``"last"``, ``"sum"``, ``"count"`` or ``"raise"``.

        Raises:
            ValueError: on empty input, unequal lengths, missing or mixed-type IDs,
                non-numeric or non-finite ratings, or bad timestamps.
        """
        users = id_column(raw_users, "raw_users")
        items = id_column(raw_items, "raw_items")
        # a list keeps its entries' types (np.asarray would make [3.0, True] floats)
        r = as_1d(np.asarray(ratings, dtype=object) if isinstance(ratings, (list, tuple))
                  else ratings, "ratings")
        lengths = {"raw_users": len(users), "raw_items": len(items), "ratings": len(r)}
        t = None
        if timestamps is not None:
            t = as_1d(timestamps, "timestamps")
            lengths["timestamps"] = len(t)
        if len(set(lengths.values())) > 1:
            raise ValueError(f"Ratings.from_arrays: array lengths differ: {lengths}")
        if len(r) == 0:
            raise ValueError("Ratings.from_arrays: no ratings (empty input)")
        r = numeric_ratings(r)
        if t is not None:
            t = int_timestamps(t)

        u_idx, user_ids = factorize(users, "user")
        i_idx, item_ids = factorize(items, "item")
        u_idx, i_idx, r, t, n_rep = resolve_duplicates(u_idx, i_idx, r, t, len(item_ids),
                                                       duplicates)
        if n_rep and duplicates == "last":
            warn(
                f"dropped {n_rep:,} duplicate (user, item) ratings, keeping the "
                f"{'latest by timestamp' if t is not None else 'last occurrence'} of each "
                f"(a click log? pass duplicates='count')"
            )
        return cls(u_idx, i_idx, r, t, user_ids, item_ids)

    def binarize(self, threshold: float) -> "Ratings":
        """Implicit feedback from ratings: rows with rating ≥ ``threshold`` become
        interactions of value 1; the rows below are dropped.

        IDs tables and timestamps are kept (a subset: indices mean the same).
        Use it before ``fit(objective="ials"|"bpr")`` on star ratings, e.g.
        ``train.binarize(4)`` on MovieLens.

        Raises:
            ValueError: ``threshold`` is not a finite number.
        """
        kept = self.subset(binarize_mask(self.ratings, threshold))
        return Ratings(kept.users, kept.items, np.ones(len(kept), np.float32), kept.timestamps,
                       self.user_ids, self.item_ids)


    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        *,
        user: str = "user",
        item: str = "item",
        rating: str | None = "rating",
        timestamp: str | None = "auto",
        duplicates: str = "last",
    ) -> "Ratings":
        """Build Ratings from the columns of a pandas DataFrame (raw IDs, as :meth:`from_arrays`).

        The inverse of :meth:`to_frame`: ``Ratings.from_frame(r.to_frame())``
        has the same rows, IDs, timestamps and indices as ``r`` (for ``r`` built
        by :meth:`from_arrays` or a loader, which sort the IDs).

        Args:
            df: the log, one row per observation.
            user, item: names of the user and item ID columns.
            rating: name of the rating column, or None for implicit feedback:
                every row then gets rating 1.0.
            timestamp: name of a time column (see :meth:`from_arrays`); ``"auto"``
                (default): the first of ``timestamp``, ``time``, ``ts`` that
                exists, else none; None: no timestamps.
            duplicates: repeated (user, item) pairs, as in :meth:`from_arrays`
                (``"count"`` for a click log).

        Returns:
            The ratings.

        Raises:
            TypeError: ``df`` is not a DataFrame.
            ValueError: a named column is missing (the message lists those
                found), or any check of :meth:`from_arrays` fails.

        Example:
            >>> import pandas as pd
            >>> clicks = pd.DataFrame({"uid": [1, 1, 2], "sku": ["a", "b", "a"]})
            >>> Ratings.from_frame(clicks, user="uid", item="sku", rating=None).ratings.tolist()
            [1.0, 1.0, 1.0]
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"Ratings.from_frame: need a pandas DataFrame, got {type(df).__name__}")
        if timestamp == "auto":
            timestamp = next((c for c in TIME_COLUMNS if c in df.columns), None)
        roles = {"user": user, "item": item, "rating": rating, "timestamp": timestamp}
        for role, col in roles.items():
            if col is not None and col not in df.columns:
                found = ", ".join(repr(c) for c in df.columns)
                raise ValueError(f"Ratings.from_frame: no column {col!r} ({role}=); found columns: {found}")
        r = df[rating] if rating is not None else np.ones(len(df), dtype=np.float32)
        t = df[timestamp] if timestamp is not None else None
        return cls.from_arrays(df[user], df[item], r, t, duplicates=duplicates)

    def to_csr(self, duplicates: str = "raise"):
        """The ratings as a SciPy CSR matrix [n_users, n_items], float32 (rows are users).

        Entry (u, i) holds the rating of index pair (u, i); the shape is the
        whole ID space, so users or items without ratings are empty rows or
        columns. A rating of 0.0 is kept as an explicit (stored) zero, so
        ``matrix.nnz == len(self)`` and :meth:`from_csr` gives it back. This is
        the layout the ``implicit`` library's ``fit(user_items)`` takes.

        Args:
            duplicates: what to do with repeated (user, item) pairs, which
                :class:`Ratings` built directly (by the constructor, e.g.
                from a click log with repeats) may hold: ``"raise"``
                (ValueError) or ``"sum"`` (add them up, e.g. for click counts).

        Returns:
            ``scipy.sparse.csr_matrix`` with sorted column indices.

        Raises:
            ValueError: repeated pairs with ``duplicates="raise"``, or a bad ``duplicates``.
            ImportError: SciPy is not installed (``pip install 'mfjax[sparse]'``).

        Example:
            >>> Ratings.from_arrays([1, 2], [5, 6], [4.0, 0.0]).to_csr().nnz
            2
        """
        from .sparse import ratings_to_csr

        return ratings_to_csr(self, duplicates)

    @classmethod
    def from_csr(cls, matrix, user_ids=None, item_ids=None) -> "Ratings":
        """Build Ratings from a SciPy sparse user x item matrix (the inverse of :meth:`to_csr`).

        Every stored entry is one observation, explicit zeros included (so a
        rating of 0.0 survives a round trip); entries not stored are
        unobserved. To treat stored zeros as unobserved, call
        ``matrix.eliminate_zeros()`` first. Duplicate stored entries (a
        non-canonical matrix) are summed, as SciPy itself reads them. Row u
        becomes user index u and column i item index i, so the ID space is the
        full shape, including empty rows and columns. The result has no
        timestamps and its ratings are in row-major order.

        Args:
            matrix: any 2-D ``scipy.sparse`` matrix or array (CSR, CSC, COO, ...).
            user_ids: raw ID of each row [n_rows], unique; default ``0..n_rows-1``.
            item_ids: raw ID of each column [n_cols], unique; default ``0..n_cols-1``.

        Returns:
            The ratings (float32), sharing no memory with ``matrix``.

        Raises:
            TypeError: ``matrix`` is not a SciPy sparse matrix (e.g. a dense array).
            ValueError: ``matrix`` is not 2-D, an ID table has the wrong length
                or repeats an ID, or a stored value is NaN/inf.
            ImportError: SciPy is not installed.

        Example:
            >>> import scipy.sparse as sp
            >>> r = Ratings.from_csr(sp.csr_matrix([[0, 4], [3, 0]]), user_ids=["ann", "bob"])
            >>> r.to_frame()["user"].tolist(), r.to_frame()["item"].tolist()
            (['ann', 'bob'], [1, 0])
        """
        from .sparse import ratings_from_csr

        return ratings_from_csr(cls, matrix, user_ids, item_ids)
