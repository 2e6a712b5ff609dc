"""One fallback for users without training rows (mfjax.serving.fallback), everywhere.

evaluate_ranking must score exactly the lists Model.recommend serves; unknown IDs and
IDs present without training rows get the same list; filter_items blocks items.
"""

import numpy as np
import pytest

import mfjax
from mfjax.evaluation.metrics import evaluate_fold_in, evaluate_ranking


def _temporal_data(seed=0):
    """Synthetic ratings with times; users 50.. only act late, so a temporal split has
    test users without training rows (kept in the full ID table)."""
    r, _ = mfjax.datasets.synthetic(70, 50, 2500, rank=3, noise=0.3, seed=seed)
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 1000, len(r))
    t[r.users >= 60] += 10_000  # late users: only in the test part
    return mfjax.Ratings(r.users, r.items, np.ones(len(r), np.float32), t, r.user_ids, r.item_ids)


def _ndcg_of_lists(lists, test, k):
    out = []
    for raw_u, top in lists.items():
        rel = set(test.item_ids[test.items[test.user_ids[test.users] == raw_u]].tolist())
        gains = [1.0 if x in rel else 0.0 for x in top.tolist()]
        dcg = sum(g / np.log2(j + 2) for j, g in enumerate(gains))
        idcg = sum(1 / np.log2(j + 2) for j in range(min(k, len(rel))))
        out.append(dcg / idcg)
    return float(np.mean(out))


@pytest.fixture(scope="module")
def ials_split():
    r = _temporal_data()
    train, test = mfjax.split.temporal(r, 0.2)
    # A user ID the model never saw, with test rows on the least popular items.
    model = mfjax.fit(train, objective="ials", rank=3, epochs=3, progress=False)
    return model, train, test


def test_evaluate_ranking_scores_exactly_what_recommend_serves(ials_split):
    model, train, test = ials_split
    ghost = mfjax.Ratings.from_arrays(np.array([9999] * 3), model.item_ids[:3], np.ones(3))
    both = mfjax.Ratings.from_arrays(
        np.concatenate([test.user_ids[test.users], [9999] * 3]),
        np.concatenate([test.item_ids[test.items], ghost.item_ids[ghost.items]]),
        np.ones(len(test) + 3))
    k = 5
    got = evaluate_ranking(model, train, both, k=k, threshold=None)
    no_rows = np.diff(model.seen_indptr) == 0
    assert got["n_unknown_users"] >= 2 and no_rows[model.index_users(both.user_ids[:-1])].any()
    ids, _ = model.recommend(list(both.user_ids), n=k)
    lists = {u: ids[j] for j, u in enumerate(both.user_ids)}
    assert got[f"ndcg@{k}"] == pytest.approx(_ndcg_of_lists(lists, both, k))


def test_unknown_and_rowless_users_get_the_same_popular_list(ials_split):
    model, train, _ = ials_split
    rowless = model.user_ids[np.flatnonzero(np.diff(model.seen_indptr) == 0)[0]]
    a, sa = model.recommend(rowless, n=6)
    b, sb = model.recommend("nobody" if model.user_ids.dtype == object else 123456, n=6)
    counts = np.bincount(train.items, minlength=train.n_items)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, model.item_ids[np.argsort(-counts, kind="stable")[:6]])
    assert (sa == 0).all() and (sb == 0).all()


def test_unknown_user_is_not_ranked_in_item_id_order():
    # Issue #22 item 5: a zero vector scored every item 0 and the tie-break gave
    # items 0, 1, 2 first, so an unknown user whose relevant items are 0, 1, 2
    # scored NDCG@5 = 1. Items 0-2 are made the least popular here.
    rng = np.random.default_rng(1)
    users = np.concatenate([np.repeat(np.arange(30), 6), [0, 1, 2]])
    items = np.concatenate([3 + rng.integers(0, 17, 180), [0, 1, 2]])  # 0-2: one row each
    users, items = np.unique(np.stack([users, items]), axis=1)  # one row per pair
    train = mfjax.Ratings.from_arrays(users, items, np.ones(len(users)))
    model = mfjax.fit(train, objective="ials", rank=2, epochs=2, progress=False)
    test = mfjax.Ratings.from_arrays(np.array([500] * 3), np.array([0, 1, 2]), np.ones(3))
    got = evaluate_ranking(model, train, test, k=5, threshold=None)
    counts = np.bincount(train.items, minlength=train.n_items)
    top = np.argsort(-counts, kind="stable")[:5]
    expect = sum(1 / np.log2(j + 2) for j, i in enumerate(top) if i < 3) / \
        sum(1 / np.log2(j + 2) for j in range(3))
    assert got["ndcg@5"] == pytest.approx(expect) and got["ndcg@5"] < 1.0
    assert got["n_unknown_users"] == 1


def test_evaluate_fold_in_counts_users_without_fold_in_rows(ials_split):
    model, train, test = ials_split
    empty_fold = test.subset(np.zeros(len(test), bool))
    got = evaluate_fold_in(model, empty_fold, test, k=5)
    assert got["n_unknown_users"] == got["n_users"] > 0
    # They get the popular list, as recommend gives a user without rows.
    rowless = model.user_ids[np.flatnonzero(np.diff(model.seen_indptr) == 0)[0]]
    ids, _ = model.recommend(rowless, n=5)
    lists = {u: ids for u in np.unique(test.user_ids[test.users])}
    assert got["ndcg@5"] == pytest.approx(_ndcg_of_lists(lists, test, 5))


def test_evaluate_fold_in_matches_recommend_for_ratings_per_user(ials_split):
    model, _, _ = ials_split
    r, _ = mfjax.datasets.synthetic(70, 50, 2500, rank=3, noise=0.3, seed=0)
    r = mfjax.Ratings(r.users, r.items, np.ones(len(r), np.float32), None, r.user_ids + 1000,
                      r.item_ids)
    fold, test = mfjax.split.holdout(r.subset(r.users < 12), 0.3, seed=0)
    got = evaluate_fold_in(model, fold, test, k=5)
    lists = {}
    for u in np.unique(test.users):
        mine = fold.users == u
        ids, _ = model.recommend_for_ratings(fold.item_ids[fold.items[mine]], None, n=5)
        lists[test.user_ids[u]] = ids
    assert got["n_users"] == len(lists) and got["n_unknown_users"] == 0
    assert got["ndcg@5"] == pytest.approx(_ndcg_of_lists(lists, test, 5), abs=1e-6)


def test_explicit_rowless_user_and_item_predict_as_unknown():
    r, _ = mfjax.datasets.synthetic(40, 30, 800, rank=3, noise=0.3, seed=3)
    train = r.subset((r.users != 0) & (r.items != 0))  # user 0 and item 0 keep table rows
    model = mfjax.fit(train, solver="optax", rank=3, epochs=2, progress=False)
    u0, i0 = model.user_ids[0], model.item_ids[0]
    ghost_u = 10_000
    assert model.predict(u0, 5) == pytest.approx(model.predict(ghost_u, 5))
    assert model.predict(3, i0) == pytest.approx(model.predict(3, 10_000))
    ids_row, _ = model.recommend(u0, n=4)
    ids_ghost, _ = model.recommend(ghost_u, n=4)
    np.testing.assert_array_equal(ids_row, ids_ghost)


def test_filter_items_is_a_blocklist_beside_the_allowlist(ials_split):
    model, _, _ = ials_split
    u = model.user_ids[0]
    full, _ = model.recommend(u, n=5)
    blocked, _ = model.recommend(u, n=5, filter_items=list(full[:2]) + ["not-an-item"])
    assert not set(full[:2].tolist()) & set(blocked.tolist())
    np.testing.assert_array_equal(blocked[:3], full[2:5])
    allowed = model.item_ids[:10]
    both, _ = model.recommend(u, n=20, items=allowed, filter_items=allowed[:4])
    assert set(both.tolist()) <= set(allowed[4:].tolist())
    with pytest.raises(ValueError, match="filter_items leaves no candidate"):
        model.recommend(u, n=3, items=allowed[:2], filter_items=allowed[:2])
