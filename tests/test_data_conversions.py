"""Ratings <-> pandas DataFrame and SciPy sparse matrices: round trips and bad input."""

import numpy as np
import pandas as pd
import pytest

from mfjax import datasets
from mfjax.data import Ratings

sp = pytest.importorskip("scipy.sparse")

LOG = pd.DataFrame({
    "uid": ["bob", "ann", "ann", "cy", "bob"],
    "sku": [7, 7, 9, 3, 3],
    "stars": [3.0, 4.0, 5.0, 0.0, 1.5],
    "when": [30, 10, 20, 40, 50],
})


def same(a: Ratings, b: Ratings, timestamps=True):
    for name in ("users", "items", "ratings", "user_ids", "item_ids"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    if timestamps:
        np.testing.assert_array_equal(a.timestamps, b.timestamps)


# ------------------------------------------------------------------ from_frame


@pytest.mark.parametrize("timestamp", [None, "when"])
def test_from_frame_matches_from_arrays(timestamp):
    r = Ratings.from_frame(LOG, user="uid", item="sku", rating="stars", timestamp=timestamp)
    t = LOG["when"] if timestamp else None
    same(r, Ratings.from_arrays(LOG["uid"], LOG["sku"], LOG["stars"], t))
    assert (r.timestamps is None) == (timestamp is None)


@pytest.mark.parametrize("r", [
    Ratings.from_arrays(LOG["uid"], LOG["sku"], LOG["stars"], LOG["when"]),
    Ratings.from_arrays([3, 1, 2], ["x", "y", "x"], [1.0, 2.0, 3.0], [5, 6, 7]),
], ids=["str-users", "str-items"])
def test_frame_round_trip(r):
    same(Ratings.from_frame(r.to_frame(), timestamp="timestamp"), r)


def test_from_frame_implicit_feedback_is_all_ones():
    r = Ratings.from_frame(LOG, user="uid", item="sku", rating=None)
    assert r.ratings.dtype == np.float32 and r.ratings.tolist() == [1.0] * 5
    assert r.timestamps is None


def test_from_frame_deduplicates_like_from_arrays():
    df = pd.DataFrame({"user": [1, 1], "item": [2, 2], "rating": [1.0, 4.0], "t": [9, 3]})
    with pytest.warns(UserWarning, match="dropped 1 duplicate"):
        r = Ratings.from_frame(df, timestamp="t")
    assert r.ratings.tolist() == [1.0]  # latest by time


@pytest.mark.parametrize("kwargs, match", [
    (dict(user="user_id", item="sku"), r"no column 'user_id' \(user=\); found columns: 'uid'"),
    (dict(user="uid", item="sku", rating="score"), r"no column 'score' \(rating=\)"),
    (dict(user="uid", item="sku", rating="stars", timestamp="ts"), r"no column 'ts' \(timestamp=\)"),
])
def test_from_frame_missing_column(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Ratings.from_frame(LOG, **kwargs)


def test_from_frame_rejects_non_frames_and_bad_values():
    with pytest.raises(TypeError, match="DataFrame"):
        Ratings.from_frame(LOG.to_dict(), user="uid", item="sku")
    bad = LOG.assign(stars=[1.0, np.nan, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="not finite"):
        Ratings.from_frame(bad, user="uid", item="sku", rating="stars")


# ---------------------------------------------------------------------- to_csr


def test_to_csr_layout():
    r = Ratings.from_frame(LOG, user="uid", item="sku", rating="stars")
    m = r.to_csr()
    assert isinstance(m, sp.csr_matrix) and m.dtype == np.float32
    assert m.shape == (3, 3) and m.has_sorted_indices
    dense = m.toarray()
    for u, i, x in zip(LOG["uid"], LOG["sku"], LOG["stars"]):
        assert dense[r.index_users(u), r.index_items(i)] == x
    assert m.nnz == len(r)  # cy's 0.0 rating is stored, not dropped


def test_to_csr_keeps_the_whole_id_space():
    r, _ = datasets.synthetic(20, 30, 100, seed=0)
    sub = r.subset(r.users < 5)
    m = sub.to_csr(duplicates="sum")
    assert m.shape == (20, 30)
    assert m[5:].nnz == 0


def test_to_csr_duplicates():
    r = Ratings([0, 0, 1], [1, 1, 0], [2.0, 3.0, 1.0], None, np.array([10, 11]), np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"1 repeated \(user, item\) pairs, e.g. \(10, 'b'\)"):
        r.to_csr()
    assert r.to_csr(duplicates="sum").toarray().tolist() == [[0.0, 5.0], [1.0, 0.0]]
    with pytest.raises(ValueError, match="duplicates must be"):
        r.to_csr(duplicates="last")


def test_to_csr_of_empty_ratings():
    r = Ratings.from_arrays([1, 2], [3, 4], [1.0, 2.0]).subset(np.zeros(2, bool))
    m = r.to_csr()
    assert m.shape == (2, 2) and m.nnz == 0


# -------------------------------------------------------------------- from_csr


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "lil"])
def test_csr_round_trip(fmt):
    r = Ratings.from_frame(LOG, user="uid", item="sku", rating="stars")
    m = r.to_csr().asformat(fmt)
    back = Ratings.from_csr(m, user_ids=r.user_ids, item_ids=r.item_ids)
    # Same observations (row-major order here), same ID space, explicit zero kept.
    assert back.to_frame().sort_values(["user", "item"]).reset_index(drop=True).equals(
        r.to_frame().sort_values(["user", "item"]).reset_index(drop=True))
    np.testing.assert_array_equal(back.user_ids, r.user_ids)
    assert (back.to_csr() != r.to_csr()).nnz == 0


def test_from_csr_default_ids_and_empty_rows():
    m = sp.csr_matrix(np.array([[0, 4, 0], [0, 0, 0], [2, 0, 1]], dtype=np.int64))
    r = Ratings.from_csr(m)
    assert (r.n_users, r.n_items, len(r)) == (3, 3, 3)
    assert r.user_ids.tolist() == [0, 1, 2] and r.item_ids.tolist() == [0, 1, 2]
    assert list(zip(r.users.tolist(), r.items.tolist(), r.ratings.tolist())) == [
        (0, 1, 4.0), (2, 0, 2.0), (2, 2, 1.0)]
    assert r.ratings.dtype == np.float32 and r.timestamps is None


def test_from_csr_explicit_zeros_are_observations():
    m = sp.csr_matrix((np.array([0.0, 3.0]), (np.array([0, 1]), np.array([0, 1]))), shape=(2, 2))
    assert len(Ratings.from_csr(m)) == 2
    m.eliminate_zeros()
    assert len(Ratings.from_csr(m)) == 1


def test_from_csr_sums_duplicate_entries_and_leaves_input_alone():
    m = sp.coo_matrix((np.array([1.0, 2.0]), (np.array([0, 0]), np.array([1, 1]))), shape=(1, 2))
    r = Ratings.from_csr(m)
    assert r.ratings.tolist() == [3.0]
    assert m.nnz == 2  # the caller's matrix is not canonicalised in place


def test_from_csr_boolean_matrix():
    r = Ratings.from_csr(sp.csr_matrix(np.array([[True, False], [False, True]])))
    assert r.ratings.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("kwargs, match", [
    (dict(user_ids=["a", "b"]), "user_ids has 2 entries but the matrix has 3 rows"),
    (dict(item_ids=[1, 2, 3, 4]), "item_ids has 4 entries but the matrix has 2 columns"),
    (dict(user_ids=["a", "b", "a"]), "user_ids repeats an ID"),
    (dict(user_ids=np.zeros((3, 1))), "must be 1-D"),
])
def test_from_csr_validates_ids(kwargs, match):
    m = sp.csr_matrix(np.ones((3, 2)))
    with pytest.raises(ValueError, match=match):
        Ratings.from_csr(m, **kwargs)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_from_csr_rejects_non_finite(value):
    m = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, value]]))
    with pytest.raises(ValueError, match=r"entry \(1, 1\) = .* is not finite"):
        Ratings.from_csr(m)


@pytest.mark.parametrize("bad", [np.ones((2, 2)), [[1, 0]], np.ones((2, 2, 2))])
def test_from_csr_needs_a_sparse_matrix(bad):
    with pytest.raises(TypeError, match="need a scipy.sparse matrix"):
        Ratings.from_csr(bad)


def test_from_csr_rejects_non_2d_sparse():
    if not hasattr(sp, "coo_array"):
        pytest.skip("no sparse arrays in this SciPy")
    try:
        v = sp.coo_array(np.array([1.0, 0.0, 2.0]))
    except (ValueError, TypeError):
        pytest.skip("this SciPy has no 1-D sparse arrays")
    if v.ndim != 1:
        pytest.skip("this SciPy makes 1-D input 2-D")
    with pytest.raises(ValueError, match="must be 2-D"):
        Ratings.from_csr(v)
