"""Data conventions (mfjax.data.conventions): binarize, star-rating detection,
from_frame's default timestamp column, and duplicates= for click logs."""

import numpy as np
import pandas as pd
import pytest

from mfjax.data import Ratings
from mfjax.data.conventions import STAR_RATINGS_WARNING, looks_like_star_ratings


def test_binarize_keeps_rows_at_or_above_the_threshold_as_ones():
    r = Ratings.from_arrays(["a", "a", "b", "c"], [1, 2, 1, 3], [5.0, 3.0, 4.0, 1.0],
                            timestamps=[10, 20, 30, 40])
    b = r.binarize(4)
    assert b.to_frame().values.tolist() == [["a", 1, 1.0, 10], ["b", 1, 1.0, 30]]
    assert np.array_equal(b.user_ids, r.user_ids) and np.array_equal(b.item_ids, r.item_ids)
    assert len(r.binarize(6)) == 0
    for bad in (float("nan"), "4", None, True):
        with pytest.raises(ValueError, match="threshold"):
            r.binarize(bad)


@pytest.mark.parametrize("values, stars", [
    ([1, 2, 3, 4, 5, 5, 4], True),
    ([0.5, 1.5, 3.0, 4.5, 5.0], True),
    ([1, 1, 1, 1], False),                       # binarized / clicks
    (list(range(1, 60)), False),                 # counts: many distinct values
    ([0.3, 1.7, 2.2], False),                    # not whole or half steps
    ([1, 2, 50], False),                         # beyond any star scale
])
def test_looks_like_star_ratings(values, stars):
    r = Ratings.from_arrays(np.arange(len(values)), np.arange(len(values)), values)
    assert looks_like_star_ratings(r) is stars


def test_the_warning_says_how_to_binarize():
    assert "binarize(4)" in STAR_RATINGS_WARNING and "star ratings" in STAR_RATINGS_WARNING


@pytest.mark.parametrize("column", ["timestamp", "time", "ts"])
def test_from_frame_takes_a_time_column_by_default(column):
    df = pd.DataFrame({"user": [1, 2], "item": [3, 4], "rating": [5.0, 4.0], column: [100, 200]})
    assert Ratings.from_frame(df).timestamps.tolist() == [100, 200]
    assert Ratings.from_frame(df, timestamp=None).timestamps is None


def test_to_frame_round_trips_timestamps():
    r = Ratings.from_arrays([1, 2], [3, 4], [5.0, 4.0], timestamps=[7, 8])
    assert Ratings.from_frame(r.to_frame()).timestamps.tolist() == [7, 8]


CLICKS = pd.DataFrame({"user": [1, 1, 1, 2, 2], "item": ["a", "a", "b", "a", "a"],
                       "rating": [1.0, 2.0, 1.0, 4.0, 3.0], "ts": [5, 9, 7, 1, 2]})


@pytest.mark.parametrize("how, expected", [
    ("count", {(1, "a"): 2.0, (1, "b"): 1.0, (2, "a"): 2.0}),
    ("sum", {(1, "a"): 3.0, (1, "b"): 1.0, (2, "a"): 7.0}),
    ("last", {(1, "a"): 2.0, (1, "b"): 1.0, (2, "a"): 3.0}),
])
def test_duplicates(how, expected):
    if how == "last":
        with pytest.warns(UserWarning, match="duplicates='count'"):
            r = Ratings.from_frame(CLICKS, duplicates=how)
    else:
        r = Ratings.from_frame(CLICKS, duplicates=how)
    f = r.to_frame()
    assert dict(zip(zip(f.user, f.item), f.rating)) == expected
    if how != "last":  # the latest time of each pair
        assert dict(zip(zip(f.user, f.item), f.timestamp)) == {(1, "a"): 9, (1, "b"): 7,
                                                               (2, "a"): 2}


def test_duplicates_raise_and_bad_value():
    with pytest.raises(ValueError, match="repeated .user, item. rows, the first at row 0"):
        Ratings.from_frame(CLICKS, duplicates="raise")
    with pytest.raises(ValueError, match="duplicates must be one of"):
        Ratings.from_arrays([1], [2], [3.0], duplicates="first")
    assert len(Ratings.from_frame(CLICKS.iloc[[0, 2]], duplicates="raise")) == 2
