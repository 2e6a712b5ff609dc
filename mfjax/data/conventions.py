"""Data conventions: star ratings vs. interaction values, binarizing, repeated pairs.

- :func:`looks_like_star_ratings` tells a star scale (few distinct values, all
  whole or half steps between 0 and 10, more than one of them) from counts or
  clicks; ``fit`` warns with :data:`STAR_RATINGS_WARNING` when an implicit
  objective is given data that looks like stars (iALS would read 1-5 stars as
  confidences 1 + α·r: on ML-1M NDCG@10 0.283 instead of 0.321 binarized).
- :func:`binarize_mask` is :meth:`mfjax.Ratings.binarize`'s row selection.
- :func:`resolve_duplicates` is what ``from_arrays``/``from_frame`` do with
  repeated (user, item) pairs: keep the last (explicit ratings), sum the
  values, count the rows (click logs), or refuse.

Example:
    >>> import numpy as np
    >>> looks_like_star_ratings_values(np.array([1.0, 3.0, 5.0, 4.0]))
    True
    >>> looks_like_star_ratings_values(np.array([1.0, 1.0, 1.0]))
    False
"""

from __future__ import annotations

import numpy as np

__all__ = ["looks_like_star_ratings", "looks_like_star_ratings_values", "STAR_RATINGS_WARNING",
           "binarize_mask", "DUPLICATES", "resolve_duplicates"]

#: fit's warning for an implicit objective given what looks like star ratings.
STAR_RATINGS_WARNING = (
    "these values look like star ratings (a few distinct whole or half steps), but an "
    "implicit objective reads each value as an interaction strength (iALS: confidence "
    "1 + alpha * value; BPR: every rated item is a positive, low stars included). To "
    "learn from 'liked' items, binarize first, e.g. train = train.binarize(4) keeps "
    "ratings >= 4 as interactions of value 1.")

#: Accepted ``duplicates=`` values.
DUPLICATES = ("last", "sum", "count", "raise")


def looks_like_star_ratings_values(values) -> bool:
    """Whether values [n] look like a star scale (see :func:`looks_like_star_ratings`)."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return False
    distinct = np.unique(v)
    if len(distinct) < 2 or len(distinct) > 20:
        return False
    return bool(distinct.min() >= 0 and distinct.max() <= 10
                and np.all(np.abs(distinct * 2 - np.round(distinct * 2)) < 1e-6))


def looks_like_star_ratings(ratings) -> bool:
    """Whether ``ratings`` (an :class:`mfjax.Ratings`) holds star ratings, not interactions.

    True when its values take 2 to 20 distinct values, all multiples of 0.5 in
    [0, 10] (1-5 stars, 0.5-5 in half steps, 1-10). All-ones data (binarized
    or clicks) is False, and so are counts with many distinct values; small
    counts (1-5 clicks) can be True: the answer is a hint for a warning, not
    a refusal.
    """
    return looks_like_star_ratings_values(ratings.ratings)


def binarize_mask(values, threshold) -> np.ndarray:
    """Rows kept by ``binarize(threshold)``: value ≥ threshold (a finite number)."""
    if (not isinstance(threshold, (int, float, np.integer, np.floating))
            or isinstance(threshold, (bool, np.bool_)) or not np.isfinite(threshold)):
        raise ValueError(f"binarize: threshold must be a finite number, got {threshold!r}")
    return np.asarray(values) >= threshold


def resolve_duplicates(u, i, r, t, n_items, how, where="Ratings.from_arrays"):
    """Repeated (u, i) pairs resolved by ``how``; returns (u, i, r, t, n_repeated_rows).

    ``"last"``: keep the latest by timestamp (ties or no timestamps: the last
    row); ``"sum"``: one row with the values summed; ``"count"``: one row whose
    value is the number of rows (values ignored); ``"raise"``: ValueError
    naming the first repeated pair. ``"sum"``/``"count"`` keep the latest
    timestamp of each pair. The row order of the result is that of each
    pair's kept (``last``) or first (``sum``/``count``) occurrence.
    """
    if how not in DUPLICATES:
        raise ValueError(f"{where}: duplicates must be one of {DUPLICATES}, got {how!r}")
    key = u.astype(np.int64) * n_items + i
    uniq, first, inverse, counts = np.unique(key, return_index=True, return_inverse=True,
                                             return_counts=True)
    n_rep = len(key) - len(uniq)
    if n_rep == 0:
        return u, i, r, t, 0
    if how == "raise":
        j = int(np.flatnonzero(counts[inverse] > 1)[0])
        raise ValueError(f"{where}: {n_rep:,} repeated (user, item) rows, the first at row {j}; "
                         "pass duplicates='last', 'sum' or 'count'")
    if how == "last":
        from .columns import dedup_keep

        keep = dedup_keep(u, i, n_items, t)
        return u[keep], i[keep], r[keep], (None if t is None else t[keep]), n_rep
    inverse = inverse.reshape(-1)
    order = np.argsort(first, kind="stable")  # groups in order of first occurrence
    if how == "sum":
        values = np.bincount(inverse, weights=np.asarray(r, np.float64), minlength=len(uniq))
    else:
        values = counts.astype(np.float64)
    out_t = None
    if t is not None:
        out_t = np.full(len(uniq), np.iinfo(np.int64).min, np.int64)
        np.maximum.at(out_t, inverse, t)
        out_t = out_t[order]
    return (u[first][order], i[first][order], values[order].astype(np.float32), out_t, n_rep)
