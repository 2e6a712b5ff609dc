"""Parsed copies of downloaded data sets (mfjax.data.parsed): the same ratings back, and
never a copy that no longer matches its source or is damaged."""

import numpy as np
import pytest

import mfjax
from mfjax.data import parsed


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "ratings.whl"
    path.write_bytes(b"original source bytes")
    return str(path)


def titles_ratings():
    r, _ = mfjax.datasets.synthetic(30, 20, 300, seed=0)
    titles = np.array([f"Movie {j} (19{j:02d})" for j in range(r.n_items)], dtype=object)
    return mfjax.Ratings(r.users, r.items, r.ratings, np.arange(len(r), dtype=np.int64),
                         r.user_ids, titles)


def test_round_trip_keeps_every_array_and_string_ids(source):
    r = titles_ratings()
    assert parsed.load(source) is None  # nothing saved yet
    parsed.save(source, r)
    back = parsed.load(source)
    for f in ("users", "items", "ratings", "timestamps", "user_ids", "item_ids"):
        np.testing.assert_array_equal(getattr(back, f), getattr(r, f), err_msg=f)
    assert back.item_ids.dtype == object and back.item_ids[3] == "Movie 3 (1903)"


@pytest.mark.parametrize("damage", ["source changed", "truncated", "garbage"])
def test_a_stale_or_damaged_copy_is_not_used(source, damage):
    parsed.save(source, titles_ratings())
    copy = parsed.path_for(source)
    if damage == "source changed":
        with open(source, "ab") as f:
            f.write(b" and a newer release")
    elif damage == "truncated":
        data = open(copy, "rb").read()
        open(copy, "wb").write(data[: len(data) // 2])
    else:
        open(copy, "wb").write(b"PK\x03\x04 not an npz")
    assert parsed.load(source) is None
