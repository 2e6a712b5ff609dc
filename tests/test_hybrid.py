"""BPR / WARP with LightFM-style features (#28 item 3): the chain-rule gradient, zero
features train plain BPR, feature-only rows are their feature sums, cold items are
ranked from features, persistence, partial fits and refusals."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfjax
from mfjax.evaluation.gradcheck import check_gradient_terms
from mfjax.models.bpr.hybrid import (HybridParams, default_rank_weights, hybrid_objective,
                                     hybrid_terms, layout_of)
from mfjax.models.bpr.losses import OBJECTIVE

N_USERS, N_ITEMS, K, D = 200, 120, 6, 8
SPEC = dict(rank=K, epochs=12, batch_size=512, learning_rate=0.05, reg=0.0, bias_reg=0.0)


def planted(seed=0, n_extra=0):
    """Each user's top 10 % items by <x_u, B g_i>, g binary item features.
    Returns (ratings, G [items + extra, D])."""
    rng = np.random.default_rng(seed)
    G = rng.integers(0, 2, (N_ITEMS + n_extra, D)).astype(float)
    Y = G @ rng.normal(size=(K, D)).T
    S = rng.normal(size=(N_USERS, K)) @ Y[:N_ITEMS].T
    u, i = np.nonzero(S > np.quantile(S, 0.9, axis=1, keepdims=True))
    return mfjax.Ratings.from_arrays(u, i, np.ones(len(u))), G


def item_features(G, ids=None):
    ids = np.arange(len(G)) if ids is None else np.asarray(ids)
    return mfjax.Features.from_csr(items=(ids, G[ids]))


@pytest.fixture(scope="module")
def cold():
    r, G = planted(0, n_extra=5)
    train, test = mfjax.split.cold_items(r, 0.25, seed=0)
    F = item_features(G)  # 5 IDs known only from features, never rated
    only = mfjax.fit(train, mfjax.BPR(**SPEC, loss="warp", identity_features=False),
                     features=F, progress=False)
    hybrid = mfjax.fit(train, mfjax.BPR(**SPEC), features=F, progress=False)
    return r, G, train, test, F, only, hybrid


def small_problem(seed=0):
    """A layout with feature-only rows (mask 0), a float64 θ and 30 triples."""
    rng = np.random.default_rng(seed)
    n_users, n_items, d, k = 5, 8, 4, 3
    G = rng.integers(0, 2, (n_items, d)).astype(float) * rng.uniform(0.5, 1.5, (n_items, d))
    F = mfjax.Features.from_csr(items=(np.arange(n_items), G))
    active = np.arange(n_items) % 3 != 0  # some rows features alone (mask 0)
    layout, (du, di) = layout_of(F, np.arange(n_users), np.arange(n_items),
                                 np.ones(n_users, bool), active, True, np.float64)
    layout = jax.tree.map(jnp.asarray, layout)
    draw = lambda *s: jnp.asarray(rng.normal(size=s) * 0.8)
    theta = HybridParams(draw(n_users, k), draw(n_items, k), draw(n_items), draw(du, k),
                         draw(di, k), draw(di))
    users, pos, neg = (rng.integers(0, m, 30) for m in (n_users, n_items, n_items))
    return layout, theta, users, pos, neg


# jax.grad, finite differences and check_grads (10-20 s of compile on the shared CPU):
# the slow run; the default run compares the chain rule with jax.grad below.
@pytest.mark.slow
@pytest.mark.parametrize("loss", ["bpr", "warp"])
def test_hybrid_gradient_is_the_chain_rule(loss):
    layout, theta, users, pos, neg = small_problem()
    report = check_gradient_terms(hybrid_objective(OBJECTIVE, layout, loss), theta, users, pos,
                                  np.zeros(30), neg, {"reg": 0.05, "bias_reg": 0.02}, order=1)
    assert report.ok, str(report)
    assert report.manual_vs_numerical is not None and report.dtype == "float64"


@pytest.mark.parametrize("loss", ["bpr", "warp"])
def test_hybrid_gradient_equals_jax_grad(loss):
    layout, theta, users, pos, neg = small_problem(1)
    r = default_rank_weights(len(users))
    f, g = hybrid_terms(layout, loss, users, pos, neg, r, reg=0.05, bias_reg=0.02)
    auto, hand = jax.jit(jax.grad(f))(theta), jax.jit(g)(theta)
    for name, a, b in zip(theta._fields, auto, hand):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-11, atol=1e-11,
                                   err_msg=name)
        if name == "user_feature_factors":  # no user features: the inert embedding
            assert not np.asarray(a).any()
        else:
            assert np.abs(np.asarray(a)).max() > 1e-3, name  # every part gets a gradient


@pytest.mark.slow
def test_features_that_say_nothing_train_plain_bpr():
    r, _ = planted(1)
    ids = np.asarray(r.item_ids)  # no feature-only rows: the same item table as plain BPR
    zero = mfjax.Features.from_csr(items=(ids, np.zeros((len(ids), D))))
    spec = mfjax.BPR(rank=K, epochs=3, batch_size=512)
    plain = mfjax.fit(r, spec, progress=False)
    hybrid = mfjax.fit(r, spec, features=zero, progress=False)
    for a, b in zip(plain.params, hybrid.params):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)


def test_feature_only_rows_are_their_feature_sums(cold):
    r, G, train, test, F, only, hybrid = cold
    assert len(hybrid.item_ids) == N_ITEMS + 5  # the feature-only IDs joined the table
    for model in (only, hybrid):
        Gm = G[np.asarray(model.item_ids)]
        V = np.column_stack([np.asarray(model.params.item_factors, np.float64),
                             np.asarray(model.params.item_bias, np.float64)])
        warm = np.bincount(train.items, minlength=len(V)) > 0
        pure = ~warm if model is hybrid else np.ones(len(V), bool)
        W = np.linalg.lstsq(Gm[pure], V[pure], rcond=None)[0]
        np.testing.assert_allclose(Gm[pure] @ W, V[pure], atol=2e-5)  # V = G [E, β] exactly
        if model is hybrid:  # the warm rows keep their own embeddings on top
            assert np.abs(Gm[warm] @ W - V[warm]).max() > 1e-2


def test_cold_items_are_ranked_from_features(cold):
    r, G, train, test, F, only, hybrid = cold
    cold_ids = np.unique(test.item_ids[test.items])
    for model in (only, hybrid):
        got = mfjax.evaluate_ranking(model, train, test, k=20, threshold=None,
                                     candidates=cold_ids, auc=True)
        assert got["auc"] > 0.8, got
    recs, _ = only.recommend(train.user_ids[:3], 5, items=cold_ids)
    assert set(np.ravel(recs)) <= set(cold_ids)


def test_save_load_round_trip(cold, tmp_path):
    *_, F, only, hybrid = cold
    for model in (only, hybrid):
        path = str(tmp_path / "m")
        model.save(path)
        back = mfjax.load_model(path)
        ids = np.asarray(model.item_ids)
        users = np.repeat(model.user_ids[:4], len(ids))
        np.testing.assert_array_equal(back.predict(users, np.tile(ids, 4)),
                                      model.predict(users, np.tile(ids, 4)))
        assert back.features.items.n_rows == F.items.n_rows and back.spec == model.spec


def test_a_new_item_with_features_is_served_as_its_feature_sum(cold):
    r, G, train, test, F, only, hybrid = cold
    twin = N_ITEMS + 2  # a feature-only row: its vector is its feature sum
    new = mfjax.Features.from_csr(items=(np.array([10_000]), G[[twin]]))
    users = only.user_ids[:6]
    for model in (only, hybrid):
        grown = model.partial_fit_items(features=new)
        assert grown.item_ids[-1] == 10_000
        np.testing.assert_allclose(grown.predict(users, np.full(6, 10_000)),
                                   model.predict(users, np.full(6, twin)), atol=1e-5)
        np.testing.assert_allclose(model.predict(users, np.full(6, 10_000), features=new),
                                   model.predict(users, np.full(6, twin)), atol=1e-5)


def test_fit_refusals():
    r, G = planted(4)
    with pytest.raises(ValueError, match="identity_features=False"):
        mfjax.fit(r, mfjax.BPR(rank=4, epochs=1, identity_features=False), progress=False)


def test_serving_refuses_other_columns(cold):
    *_, only, hybrid = cold
    other = mfjax.Features.from_csr(items=(np.array([10_001]), np.ones((1, D + 1))))
    with pytest.raises(ValueError, match="columns"):
        only.partial_fit_items(features=other)
    with pytest.raises(ValueError, match="trained on"):
        only.predict(only.user_ids[0], 10_001, features=other)
