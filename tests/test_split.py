"""Splits: sizes, disjointness, coverage, shared ID space, determinism, validation."""

import numpy as np
import pytest

import mfjax
from mfjax import split
from mfjax.data import Ratings


def make(n=1000, n_users=50, n_items=40, seed=0, timestamps=True):
    """Ratings whose timestamps are 0..n-1 in a shuffled order, so each row has a unique id."""
    rng = np.random.default_rng(seed)
    ts = rng.permutation(n).astype(np.int64) if timestamps else None
    return Ratings(rng.integers(0, n_users, n), rng.integers(0, n_items, n),
                   rng.uniform(1, 5, n).astype(np.float32), ts,
                   np.arange(100, 100 + n_users), np.array([f"i{j}" for j in range(n_items)]))


def row_ids(r):
    return r.timestamps


def assert_partition(parent, parts):
    ids = np.concatenate([row_ids(p) for p in parts])
    assert len(ids) == len(parent)
    assert np.array_equal(np.sort(ids), np.sort(row_ids(parent)))
    for p in parts:
        assert p.n_users == parent.n_users and p.n_items == parent.n_items
        assert np.shares_memory(p.user_ids, parent.user_ids)
        assert np.shares_memory(p.item_ids, parent.item_ids)
        # rows are unchanged (same user/item/rating for the same row id)
        pos = np.argsort(row_ids(parent))[row_ids(p)]
        np.testing.assert_array_equal(p.users, parent.users[pos])
        np.testing.assert_array_equal(p.ratings, parent.ratings[pos])


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5])
def test_holdout(fraction):
    r = make()
    train, test = split.holdout(r, test_fraction=fraction, seed=3)
    assert len(test) == round(fraction * len(r))
    assert_partition(r, [train, test])
    again = split.holdout(r, test_fraction=fraction, seed=3)[1]
    np.testing.assert_array_equal(row_ids(again), row_ids(test))
    other = split.holdout(r, test_fraction=fraction, seed=4)[1]
    assert not np.array_equal(row_ids(other), row_ids(test))


@pytest.mark.parametrize("k", [2, 3, 5])
def test_kfold_disjoint_and_covering(k):
    r = make(n=1001)
    folds = split.kfold(r, k=k, seed=1)
    assert len(folds) == k
    tests = [t for _, t in folds]
    assert_partition(r, tests)  # disjoint, and together every rating once
    sizes = [len(t) for t in tests]
    assert max(sizes) - min(sizes) <= 1
    for train, test in folds:
        assert_partition(r, [train, test])
    again = split.kfold(r, k=k, seed=1)
    for (_, a), (_, b) in zip(folds, again):
        np.testing.assert_array_equal(row_ids(a), row_ids(b))


def test_per_user_counts():
    r = make(n=2000, n_users=60)
    train, test = split.per_user(r, test_fraction=0.25, seed=0, min_train=2)
    assert_partition(r, [train, test])
    counts = np.bincount(r.users, minlength=r.n_users)
    got = np.bincount(test.users, minlength=r.n_users)
    want = np.clip(np.floor(0.25 * counts + 0.5), 0, np.maximum(counts - 2, 0))
    np.testing.assert_array_equal(got, want)
    assert (np.bincount(train.users, minlength=r.n_users)[counts > 0] >= np.minimum(counts, 2)[counts > 0]).all()
    again = split.per_user(r, test_fraction=0.25, seed=0, min_train=2)[1]
    np.testing.assert_array_equal(row_ids(again), row_ids(test))


def test_per_user_keeps_small_users_in_train():
    # user 0: one rating; user 1: two; user 2: ten.
    users = np.array([0] + [1] * 2 + [2] * 10)
    r = Ratings(users, np.zeros(13, int), np.ones(13, np.float32), np.arange(13),
                np.arange(3), np.arange(1))
    train, test = split.per_user(r, test_fraction=0.5, min_train=1)
    assert np.bincount(test.users, minlength=3).tolist() == [0, 1, 5]
    train, test = split.per_user(r, test_fraction=0.5, min_train=0)
    assert np.bincount(test.users, minlength=3).tolist() == [1, 1, 5]


def test_temporal_cut():
    r = make()
    train, test = split.temporal(r, test_fraction=0.2)
    assert_partition(r, [train, test])
    assert train.timestamps.max() < test.timestamps.min()
    assert len(test) == 200


def test_temporal_ties_stay_together():
    ts = np.array([1, 2, 2, 2, 3])
    r = Ratings(np.zeros(5, int), np.zeros(5, int), np.ones(5, np.float32), ts,
                np.arange(1), np.arange(1))
    train, test = split.temporal(r, test_fraction=0.4)
    assert train.timestamps.tolist() == [1] and test.timestamps.tolist() == [2, 2, 2, 3]
    same = Ratings(np.zeros(3, int), np.zeros(3, int), np.ones(3, np.float32), np.ones(3, int),
                   np.arange(1), np.arange(1))
    with pytest.raises(ValueError, match="same timestamp"):
        split.temporal(same)


def test_temporal_needs_timestamps():
    with pytest.raises(ValueError, match="no timestamps"):
        split.temporal(make(timestamps=False))


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, float("nan")])
@pytest.mark.parametrize("fn", [split.holdout, split.per_user, split.temporal])
def test_bad_fraction(fn, fraction):
    with pytest.raises(ValueError, match="test_fraction must be in"):
        fn(make(n=20), test_fraction=fraction)


@pytest.mark.parametrize("k", [1, 0, -2, 2.5])
def test_kfold_bad_k(k):
    with pytest.raises(ValueError, match="k must be an integer >= 2"):
        split.kfold(make(n=20), k=k)


def test_too_few_ratings():
    with pytest.raises(ValueError, match="at least k=5"):
        split.kfold(make(n=3), k=5)
    with pytest.raises(ValueError, match="at least 2 ratings"):
        split.holdout(make(n=1))
    with pytest.raises(ValueError, match="min_train"):
        split.per_user(make(n=20), min_train=-1)


@pytest.mark.parametrize("call,match", [
    (lambda r: split.leave_k_out(r, k=float("nan")), r"leave_k_out: k must be an integer"),
    (lambda r: split.leave_k_out(r, k=None), r"leave_k_out: k must be an integer"),
    (lambda r: split.leave_k_out(r, k="2"), r"leave_k_out: k must be an integer"),
    (lambda r: split.leave_k_out(r, k=1.5), r"leave_k_out: k must be an integer"),
    (lambda r: split.leave_k_out(r, seed=-1), r"leave_k_out: seed must be an integer >= 0"),
    (lambda r: split.leave_k_out(r, seed=1.5), r"leave_k_out: seed"),
    (lambda r: split.leave_k_out([1, 2]), r"leave_k_out: r must be a Ratings"),
    (lambda r: split.users(r, n_test_users=float("nan")), r"users: n_test_users must be an integer"),
    (lambda r: split.users(r, n_test_users=None), r"users: n_test_users must be an integer"),
    (lambda r: split.users(r, n_test_users=50), r"users: n_test_users must be an integer in \[1, 49\]"),
    (lambda r: split.users(r, 5, seed=-1), r"users: seed must be an integer >= 0"),
    (lambda r: split.users(r, 5, fold_in_fraction=1.0), r"users: fold_in_fraction must be in"),
])
def test_newer_splits_name_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call(make())


def test_newer_splits_accept_integral_floats_as_before():
    assert len(split.leave_k_out(make(), k=2.0)[1]) == len(split.leave_k_out(make(), k=2)[1])
    assert len(split.users(make(), 5.0)[0]) == len(split.users(make(), 5)[0])


@pytest.mark.parametrize("kind", ["cold_items", "cold_users"])
def test_cold_splits_move_every_interaction_of_the_drawn_side(kind):
    r, _ = mfjax.datasets.synthetic(50, 40, 800, seed=0)
    train, test = getattr(mfjax.split, kind)(r, 0.25, seed=1)
    side = "items" if kind == "cold_items" else "users"
    cold = np.unique(getattr(test, side))
    n_active = len(np.unique(getattr(r, side)))
    assert len(cold) == round(0.25 * n_active)
    assert not np.isin(getattr(train, side), cold).any()  # cold: no training interaction
    assert len(train) + len(test) == len(r)
    assert np.isin(getattr(r, side), cold).sum() == len(test)  # all of theirs in test
    again = getattr(mfjax.split, kind)(r, 0.25, seed=1)[1]
    np.testing.assert_array_equal(np.unique(getattr(again, side)), cold)
    other = getattr(mfjax.split, kind)(r, 0.25, seed=2)[1]
    assert not np.array_equal(np.unique(getattr(other, side)), cold)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, "0.2", None])
def test_cold_items_refuses_bad_fractions(fraction):
    r, _ = mfjax.datasets.synthetic(20, 10, 100, seed=0)
    with pytest.raises(ValueError, match="cold_items: fraction"):
        mfjax.split.cold_items(r, fraction)
