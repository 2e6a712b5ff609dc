"""evaluate_ranking: a hand-computed example, ID spaces, and agreement with recommend."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import mfjax

ITEMS = np.array(list("abcdef"), dtype=object)
USERS = np.array(["u1", "u2", "u3", "u4"], dtype=object)


def hand_model():
    """Scores μ + b_i only (factors and user biases 0): every user ranks a > b > ... > f."""
    params = mfjax.Params(
        user_factors=jnp.zeros((4, 2)),
        item_factors=jnp.zeros((6, 2)),
        user_bias=jnp.zeros(4),
        item_bias=jnp.array([0.6, 0.5, 0.4, 0.3, 0.2, 0.1]),
        global_bias=jnp.asarray(3.0),
    )
    return mfjax.Model(params, USERS, ITEMS, (1.0, 5.0))


TRAIN = [("u1", "a", 4.0), ("u2", "b", 3.0), ("u2", "c", 5.0), ("u3", "f", 2.0)]
TEST = [
    ("u1", "c", 5.0), ("u1", "f", 4.0),                      # Rel = {c, f}
    ("u2", "a", 4.0), ("u2", "d", 2.0), ("u2", "e", 4.5),    # Rel = {a, e}; d is not relevant
    ("u3", "c", 4.0), ("u3", "z", 5.0),                      # Rel = {c, z}; z unknown to the model
    ("u4", "a", 3.0),                                        # no relevant item: skipped
    ("u5", "d", 5.0),                                        # unknown user: bias list a, b, c
]

# k = 3. Top-3 lists (training items excluded), hits marked *:
#   u1: b  c* d    h=1  P=1/3  R=1/2  DCG=1/log2(3)            AP=(1/2)(1/2)        = 1/4
#   u2: a* d  e*   h=2  P=2/3  R=2/2  DCG=1+1/log2(4)=1.5      AP=(1/2)(1/1 + 2/3)  = 5/6
#   u3: a  b  c*   h=1  P=1/3  R=1/2  DCG=1/log2(4)=0.5        AP=(1/2)(1/3)        = 1/6
#   u5: a  b  c    h=0  P=0    R=0    DCG=0                    AP=0
# |Rel| = 2 for u1..u3, so IDCG = 1 + 1/log2(3) = 1.6309298; NDCG:
#   u1 0.6309298/1.6309298 = 0.3868528, u2 1.5/1.6309298 = 0.9197208,
#   u3 0.5/1.6309298 = 0.3065736, u5 0.
# Means over the 4 evaluated users:
EXPECTED = {
    "precision@3": (1 / 3 + 2 / 3 + 1 / 3 + 0) / 4,          # 1/3
    "recall@3": (0.5 + 1.0 + 0.5 + 0) / 4,                  # 0.5
    "ndcg@3": (0.3868528 + 0.9197208 + 0.3065736 + 0) / 4,  # 0.4032868
    "map@3": (1 / 4 + 5 / 6 + 1 / 6 + 0) / 4,               # 0.3125
    "hit_rate@3": 3 / 4,
    "coverage": 5 / 6,                                      # a..e are listed, f never
    "n_users": 4,
    "n_skipped": 1,                                         # u4
    "n_unknown_users": 1,                                   # u5
}


def ratings(rows):
    u, i, r = zip(*rows)
    return mfjax.Ratings.from_arrays(np.array(u, object), np.array(i, object), np.array(r))


def in_model_space(model, rows):
    u, i, r = zip(*rows)
    return mfjax.Ratings(model.index_users(np.array(u, object)),
                         model.index_items(np.array(i, object)), np.array(r), None,
                         model.user_ids, model.item_ids)


def check(got, expected):
    assert set(got) == set(expected)
    for key, want in expected.items():
        assert got[key] == pytest.approx(want, abs=1e-6), key


@pytest.mark.parametrize("train_space", ["raw", "model"])
@pytest.mark.parametrize("batch_size", [1, 2, None])
def test_hand_example(train_space, batch_size):
    model = hand_model()
    train = ratings(TRAIN) if train_space == "raw" else in_model_space(model, TRAIN)
    got = mfjax.evaluate_ranking(model, train, ratings(TEST), k=3, batch_size=batch_size)
    check(got, EXPECTED)


def test_threshold_changes_relevance():
    # threshold 5: Rel u1 = {c}, u2 = {} (skipped), u3 = {z}, u5 = {d}.
    #   u1: b c* d -> P 1/3, R 1, NDCG (1/log2 3)/1 = 0.6309298, AP 1/2, hit
    #   u3: a b c  -> 0;   u5: a b c -> 0
    got = mfjax.evaluate_ranking(hand_model(), ratings(TRAIN), ratings(TEST), k=3, threshold=5)
    assert got["n_users"] == 3 and got["n_skipped"] == 2
    assert got["precision@3"] == pytest.approx(1 / 9)
    assert got["recall@3"] == pytest.approx(1 / 3)
    assert got["ndcg@3"] == pytest.approx(0.6309298 / 3, abs=1e-6)
    assert got["map@3"] == pytest.approx(0.5 / 3)
    assert got["hit_rate@3"] == pytest.approx(1 / 3)


def test_k_larger_than_the_candidates_counts_missing_positions_as_misses():
    # k = 6: u2 has 4 candidates (a d e f), hits a(1) e(3): P = 2/6, R = 1,
    # NDCG = (1 + 1/log2 4) / (1 + 1/log2 3) = 0.9197208, AP = (1/2)(1 + 2/3) = 5/6.
    model = hand_model()
    train = ratings([("u2", "b", 3.0), ("u2", "c", 5.0)])
    test = ratings([("u2", "a", 4.0), ("u2", "e", 4.5)])
    got = mfjax.evaluate_ranking(model, train, test, k=6)
    assert got["precision@6"] == pytest.approx(2 / 6)
    assert got["recall@6"] == pytest.approx(1.0)
    assert got["ndcg@6"] == pytest.approx(0.9197208, abs=1e-6)
    assert got["map@6"] == pytest.approx(5 / 6)
    assert got["coverage"] == pytest.approx(4 / 6)


@pytest.mark.parametrize("huge", [10 ** 12, 2 ** 62])
def test_a_huge_k_costs_the_catalogue_not_k(huge):
    # The lists hold every candidate at any k >= 6, so each metric equals its k = 60
    # value, precision rescaled (it divides by k).
    model, train, test = hand_model(), ratings(TRAIN), ratings(TEST)
    big = mfjax.evaluate_ranking(model, train, test, k=huge)
    ref = mfjax.evaluate_ranking(model, train, test, k=60)
    for name in ("recall", "ndcg", "map", "hit_rate"):
        assert big[f"{name}@{huge}"] == pytest.approx(ref[f"{name}@60"]), name
    assert big[f"precision@{huge}"] == pytest.approx(ref["precision@60"] * 60 / huge)
    assert big["coverage"] == ref["coverage"]


def test_no_relevant_user_gives_nan_and_bad_arguments_raise():
    model = hand_model()
    got = mfjax.evaluate_ranking(model, ratings(TRAIN), ratings([("u1", "b", 1.0)]), k=2)
    assert got["n_users"] == 0 and got["n_skipped"] == 1 and math.isnan(got["ndcg@2"])
    with pytest.raises(ValueError, match="k must be a positive integer"):
        mfjax.evaluate_ranking(model, ratings(TRAIN), ratings(TEST), k=0)
    with pytest.raises(ValueError, match="threshold"):
        mfjax.evaluate_ranking(model, ratings(TRAIN), ratings(TEST), threshold=float("nan"))
    with pytest.raises(TypeError, match="test must be an mfjax.Ratings"):
        mfjax.evaluate_ranking(model, ratings(TRAIN), [("u1", "a", 5.0)])


def test_matches_a_per_user_loop_over_model_recommend():
    ratings_all, _ = mfjax.datasets.synthetic(150, 90, 6000, rank=4, noise=0.3, seed=5)
    train, test = mfjax.split.holdout(ratings_all, 0.25, seed=1)
    model = mfjax.fit(train, solver="optax", rank=4, epochs=5, batch_size=512, progress=False)
    k, thr = 5, 4.0
    got = mfjax.evaluate_ranking(model, train, test, k=k, threshold=thr, batch_size=16)
    prec, rec, hit, listed = [], [], [], set()
    for u in np.unique(test.users):
        rel = set(test.items[(test.users == u) & (test.ratings >= thr)].tolist())
        if not rel:
            continue
        top, _ = model.recommend(model.user_ids[u], n=k)
        listed |= set(top.tolist())
        h = len(rel & set(top.tolist()))
        prec.append(h / k), rec.append(h / min(k, len(rel))), hit.append(h > 0)
    assert got["n_users"] == len(prec) > 50
    assert got[f"precision@{k}"] == pytest.approx(np.mean(prec))
    assert got[f"recall@{k}"] == pytest.approx(np.mean(rec))
    assert got[f"hit_rate@{k}"] == pytest.approx(np.mean(hit))
    assert got["coverage"] == pytest.approx(len(listed) / model.n_items)


def test_k_smaller_than_the_relevant_set():
    # k = 1, Rel u2 = {a, e}, list [a]: P = 1; recall, IDCG and AP normalize by
    # min(k, |Rel|) = 1: R = 1 (not 1/|Rel| = 1/2), NDCG = 1, AP = 1 (not 1/2).
    model = hand_model()
    got = mfjax.evaluate_ranking(model, ratings([("u2", "b", 3.0), ("u2", "c", 5.0)]),
                                 ratings([("u2", "a", 4.0), ("u2", "e", 4.5)]), k=1)
    check(got, {"precision@1": 1.0, "recall@1": 1.0, "ndcg@1": 1.0,
                "map@1": 1.0,
                "hit_rate@1": 1.0, "coverage": 1 / 6, "n_users": 1, "n_skipped": 0,
                "n_unknown_users": 0})


def _implicit_split(seed=2):
    r, _ = mfjax.datasets.synthetic(80, 60, 2500, rank=3, noise=0.3, seed=seed)
    r = mfjax.Ratings(r.users, r.items, np.ones(len(r), np.float32), None, r.user_ids,
                      r.item_ids)
    train, test = mfjax.split.per_user(r, 0.3, seed=0)
    model = mfjax.fit(train, mfjax.ImplicitALS(rank=4, epochs=3), progress=False)
    return model, train, test


def _brute_auc(model, train, test, candidates):
    """LightFM's AUC by its definition: every (positive, negative) pair compared."""
    S = np.asarray(model.params.user_factors) @ np.asarray(model.params.item_factors).T
    aucs = []
    for u in np.unique(test.users):
        seen = set(train.items[train.users == u])
        listed = [i for i in candidates if i not in seen]
        pos = set(test.items[test.users == u])
        P, N = [i for i in listed if i in pos], [i for i in listed if i not in pos]
        if P and N:
            aucs.append(np.mean([[S[u, p] > S[u, n] for n in N] for p in P]))
    return np.mean(aucs)


@pytest.mark.parametrize("n_candidates", [None, 30])
def test_auc_is_the_share_of_positive_negative_pairs_in_order(n_candidates):
    model, train, test = _implicit_split()
    cands = np.arange(model.n_items if n_candidates is None else n_candidates)
    kw = {} if n_candidates is None else {"candidates": model.item_ids[cands]}
    got = mfjax.evaluate_ranking(model, train, test, k=5, threshold=None, auc=True, **kw)
    assert got["auc"] == pytest.approx(_brute_auc(model, train, test, cands), abs=1e-12)
    assert 0.55 < got["auc"] < 1


def test_candidates_restrict_the_lists_and_the_relevant_items():
    model, train, test = _implicit_split()
    cands = model.item_ids[10:25]
    got = mfjax.evaluate_ranking(model, train, test, k=5, threshold=None, candidates=cands)
    # The same numbers as a per-user loop over recommend(items=cands).
    rel = {}
    for u, i in zip(test.users, test.items):
        if 10 <= i < 25:
            rel.setdefault(u, set()).add(i)
    hits = []
    for u, items in rel.items():
        ids, _ = model.recommend(model.user_ids[u], 5, items=cands)
        listed = set(model.index_items(ids[ids != None]) if ids.dtype == object else
                     model.index_items(ids))
        hits.append(len(listed & items) / min(5, len(items)))
    assert got["n_users"] == len(rel)
    assert got["recall@5"] == pytest.approx(np.mean(hits))
    assert got["coverage"] <= 1 and got["n_skipped"] == len(np.unique(test.users)) - len(rel)
    with pytest.raises(KeyError, match="candidate item 99999"):
        mfjax.evaluate_ranking(model, train, test, candidates=[99999], threshold=None)
    with pytest.raises(ValueError, match="candidates repeat"):
        mfjax.evaluate_ranking(model, train, test, candidates=cands[[0, 0]], threshold=None)


def test_auc_is_a_selection_metric():
    model, train, test = _implicit_split()
    cv = mfjax.cross_validate(train, mfjax.ImplicitALS(rank=4, epochs=2), folds=2,
                              metrics=("AUC", "ndcg@5"), progress=False)
    assert "auc" in cv.columns
    assert ((cv["auc"] > 0.5) & (cv["auc"] <= 1)).all()
