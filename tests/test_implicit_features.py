"""Feature-aware iALS (#28 items 1 and 2): the prior row solve, the ridge maps, items
known only from features, serving, persistence and refusals."""
import numpy as np
import pytest
import jax.numpy as jnp
from scipy.optimize import minimize

import mfjax
from mfjax.models.implicit_als.row_solves import cg_rows, cholesky_rows

N_USERS, N_ITEMS, K, D = 240, 160, 6, 8


def planted(seed=0, n_extra=0):
    """Interactions whose item vectors are a linear map of binary item features:
    each user's top 10 % items by <x_u, B g_i>. Returns (ratings, G [items + extra, D])."""
    rng = np.random.default_rng(seed)
    G = rng.integers(0, 2, (N_ITEMS + n_extra, D)).astype(float)
    Y = G @ rng.normal(size=(K, D)).T
    S = rng.normal(size=(N_USERS, K)) @ Y[:N_ITEMS].T
    u, i = np.nonzero(S > np.quantile(S, 0.9, axis=1, keepdims=True))
    return mfjax.Ratings.from_arrays(u, i, np.ones(len(u))), G


def item_features(G, ids=None):
    ids = np.arange(len(G)) if ids is None else np.asarray(ids)
    return mfjax.Features.from_csr(items=(ids, G[ids]))


def row_objective(x, Y, obs, conf, m, lam, a0):
    """Σ_obs c (1 − x·y)² + α0 Σ_all (x·y)² + λ ‖x − m‖², one row, brute force."""
    s = Y @ x
    return np.sum(conf * (1 - s[obs]) ** 2) + a0 * np.sum(s ** 2) + lam * np.sum((x - m) ** 2)


@pytest.mark.parametrize("method", ["cholesky", "cg"])
@pytest.mark.parametrize("nu", [0.0, 1.0])
def test_prior_row_solve_minimises_the_row_objective(method, nu):
    rng = np.random.default_rng(1)
    n, n_other, k = 5, 30, 4
    Y = rng.normal(size=(n_other, k))
    counts = np.array([3, 1, 4, 2, 5])
    indptr = np.concatenate([[0], np.cumsum(counts)])
    cols = np.concatenate([rng.choice(n_other, c, replace=False) for c in counts])
    vals = rng.uniform(0, 3, len(cols))
    rows = np.repeat(np.arange(n), counts)
    prior = rng.normal(size=(n, k))
    hp = dict(alpha=2.0, unobserved_weight=0.3, reg=0.5, nu=nu)
    args = (jnp.asarray(Y), jnp.asarray(indptr), jnp.asarray(rows), jnp.asarray(cols),
            jnp.asarray(vals))
    if method == "cholesky":
        x = cholesky_rows(*args, **hp, chunk_rows=2, chunk_nnz=4, block=2,
                          prior=jnp.asarray(prior))
    else:
        x = cg_rows(*args, jnp.zeros((n, k)), **hp, steps=k, chunk_rows=2, chunk_nnz=4,
                    prior=jnp.asarray(prior))
    for r in range(n):
        obs = cols[indptr[r]:indptr[r + 1]]
        conf = 1 + hp["alpha"] * vals[indptr[r]:indptr[r + 1]]
        lam = hp["reg"] * (counts[r] + hp["unobserved_weight"] * n_other) ** nu
        f = lambda z: row_objective(z, Y, obs, conf, prior[r], lam, hp["unobserved_weight"])
        best = minimize(f, np.zeros(k), method="BFGS", options={"gtol": 1e-12}).x
        np.testing.assert_allclose(np.asarray(x[r]), best, atol=1e-5)
        assert np.linalg.norm(best - prior[r]) > 1e-3  # the prior matters but is not all


def ridge(G, X, rows, reg):
    F = np.column_stack([G, np.ones(len(G))])[rows]
    return np.linalg.solve(F.T @ F + reg * np.eye(F.shape[1]), F.T @ X[rows])


@pytest.fixture(scope="module")
def cold_fit():
    r, G = planted(0, n_extra=6)
    train, test = mfjax.split.cold_items(r, 0.2, seed=0)
    F = item_features(G)  # 6 IDs known only from features, never rated
    spec = mfjax.ImplicitALS(rank=K, epochs=6, cg_steps=0, reg=0.05, feature_reg=0.5)
    with_f = mfjax.fit(train, spec, features=F, progress=False)
    without = mfjax.fit(train, spec, progress=False)
    return r, G, train, test, F, with_f, without


@pytest.mark.parametrize("feature_reg", [0.5])
def test_feature_only_rows_are_the_ridge_map_of_the_warm_rows(cold_fit, feature_reg):
    r, G, train, test, F, model, _ = cold_fit
    assert len(model.item_ids) == N_ITEMS + 6  # the feature-only IDs joined the table
    Q = np.asarray(model.params.item_factors, np.float64)
    Gm = G[np.asarray(model.item_ids)]  # the model's rows' features
    warm = np.bincount(train.items, minlength=len(Q)) > 0
    W = ridge(Gm, Q, warm, feature_reg)
    cold = np.flatnonzero(~warm)
    assert len(cold) > 6
    np.testing.assert_allclose(Q[cold], np.column_stack([Gm, np.ones(len(Gm))])[cold] @ W,
                               atol=1e-8)


@pytest.mark.parametrize("k", [20])
def test_cold_items_rank_well_from_features_only(cold_fit, k):
    r, G, train, test, F, with_f, without = cold_fit
    cold = np.unique(test.item_ids[test.items])
    got = mfjax.evaluate_ranking(with_f, train, test, k=k, threshold=None, candidates=cold,
                                 auc=True)
    base = mfjax.evaluate_ranking(without, train, test, k=k, threshold=None, candidates=cold,
                                  auc=True)
    assert got["auc"] > 0.85, got
    assert base["auc"] < 0.6, base
    recs, _ = with_f.recommend(train.user_ids[:3], 5, items=cold)
    assert set(np.ravel(recs)) <= set(cold)
    near, _ = with_f.similar_items(cold[0], 3)
    assert len(near) == 3 and cold[0] not in near


@pytest.mark.parametrize("ratio", [0.98])
def test_warm_items_lose_nothing(ratio):
    r, G = planted(2)
    train, test = mfjax.split.holdout(r, 0.2, seed=0)
    spec = mfjax.ImplicitALS(rank=K, epochs=6, cg_steps=0, reg=0.05)
    ndcg = [mfjax.evaluate_ranking(mfjax.fit(train, spec, features=f, progress=False), train,
                                   test, k=20, threshold=None)["ndcg@20"]
            for f in (item_features(G), None)]
    assert ndcg[0] >= ratio * ndcg[1], ndcg


def test_save_load_round_trip(cold_fit, tmp_path):
    *_, F, model, _ = cold_fit
    path = str(tmp_path / "m")
    model.save(path)
    back = mfjax.load_model(path)
    ids = np.asarray(model.item_ids)
    users = np.repeat(model.user_ids[:4], len(ids))
    np.testing.assert_array_equal(back.predict(users, np.tile(ids, 4)),
                                  model.predict(users, np.tile(ids, 4)))
    assert back.features.items.n_rows == F.items.n_rows
    np.testing.assert_array_equal(back.item_ids, model.item_ids)


def test_partial_fit_items_adds_a_feature_only_item(cold_fit):
    r, G, train, test, F, model, _ = cold_fit
    g = np.zeros((1, D))
    g[0, :3] = 1
    new = mfjax.Features.from_csr(items=(np.array([10_000]), g))
    grown = model.partial_fit_items(features=new)
    assert grown.item_ids[-1] == 10_000 and len(grown.item_ids) == len(model.item_ids) + 1
    Q = np.asarray(model.params.item_factors, np.float64)
    warm = np.bincount(train.items, minlength=len(Q)) > 0
    y = np.append(g[0], 1.0) @ ridge(G[np.asarray(model.item_ids)], Q, warm,
                                     model.spec.feature_reg)
    x = np.asarray(model.params.user_factors, np.float64)[0]
    assert grown.predict(model.user_ids[0], 10_000) == pytest.approx(x @ y, rel=1e-6)
    # without partial_fit the same item is served from features passed to predict
    assert model.predict(model.user_ids[0], 10_000, features=new) == pytest.approx(x @ y)
    assert model.predict(model.user_ids[0], 10_000) == 0.0
    recs, _ = grown.recommend([model.user_ids[0]], 1, items=[10_000])
    assert recs[0][0] == 10_000


def test_unknown_user_with_features_is_served_from_them():
    r, G = planted(3)
    rng = np.random.default_rng(0)
    U = rng.integers(0, 2, (N_USERS + 1, 4)).astype(float)
    F = mfjax.Features.from_csr(users=(np.arange(N_USERS + 1), U), items=(np.arange(N_ITEMS), G))
    model = mfjax.fit(r, mfjax.ImplicitALS(rank=K, epochs=3, cg_steps=0), features=F,
                      progress=False)
    assert model.user_ids[-1] == N_USERS  # the feature-only user has a row
    P = np.asarray(model.params.user_factors, np.float64)
    W = ridge(U, P, np.arange(N_USERS), model.spec.feature_reg)
    np.testing.assert_allclose(P[-1], np.append(U[-1], 1.0) @ W, atol=1e-8)
    recs, scores = model.recommend([N_USERS], 3)
    q = np.asarray(model.params.item_factors)[model.index_items(recs[0])]
    np.testing.assert_allclose(scores[0], q @ P[-1], rtol=1e-6)  # its own row, not popularity


@pytest.mark.parametrize("spec, match", [
    (mfjax.ImplicitALS(rank=4, epochs=1, kernel=True), "kernel=True"),
    (mfjax.ImplicitALS(rank=4, epochs=1, solver="optax"), "solver='optax'"),
])
def test_fit_refusals(spec, match):
    r, G = planted(4)
    with pytest.raises(ValueError, match=match):
        mfjax.fit(r, spec, features=item_features(G), progress=False)


def test_feature_reg_is_validated():
    with pytest.raises(ValueError, match="feature_reg"):
        mfjax.ImplicitALS(feature_reg=-1.0)


def test_partial_fit_refusals(cold_fit):
    *_, model, without = cold_fit
    other = mfjax.Features.from_csr(items=(np.array([10_001]), np.ones((1, D + 1))))
    with pytest.raises(ValueError, match="columns"):
        model.partial_fit_items(features=other)
    with pytest.raises(ValueError, match="trained on"):
        model.predict(model.user_ids[0], 10_001, features=other)
    with pytest.raises(ValueError, match="ratings is None"):
        model.partial_fit_items()
    with pytest.raises(ValueError, match="no user table"):
        model.partial_fit_users(features=item_features(np.ones((3, D))))
    with pytest.raises(ValueError, match="does not use side information"):
        mfjax.fit(planted(5)[0], mfjax.LogisticMF(rank=4, epochs=1),
                  features=item_features(np.ones((N_ITEMS, D))), progress=False)
