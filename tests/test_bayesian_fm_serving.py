"""BayesianFM served from features (#27 item 4): users with features and no ratings are
predicted and recommended from them (not μ + b_i), feature-only IDs at fit and by
partial fits, partial fits that lean on features, persistence, and refusals."""
import numpy as np
import pandas as pd
import pytest

import mfjax
from mfjax.models.bayesian_fm.posterior import check_posterior
from mfjax.models.bayesian_fm.serving import compose_rows, feature_theta_rows, feature_vectors
from mfjax.objectives.explicit import Params

N_USERS, N_HELD, N_ITEMS, PER_USER = 120, 20, 30, 12
SPEC = dict(rank=2, burn_in=8, samples=12, implicit_features=False, kernel=False)


def planted(seed=0):
    """Users in two groups (the user feature ``g``): group 0 likes items 0..14 and
    dislikes the others, group 1 the reverse (±1.5 stars around 3 + b_i), noise 0.3.
    The last N_HELD users are held out: their features are known, their ratings not.
    Returns (train frame, held-out frame, the user frame, user groups [N_USERS])."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, N_USERS)
    b_i = rng.normal(0, 0.3, N_ITEMS)
    u = np.repeat(np.arange(N_USERS), PER_USER)
    i = np.concatenate([rng.choice(N_ITEMS, PER_USER, replace=False) for _ in range(N_USERS)])
    like = np.where((i < N_ITEMS // 2) == (g[u] == 0), 1.5, -1.5)
    r = 3 + b_i[i] + like + 0.3 * rng.normal(size=len(u))
    df = pd.DataFrame({"user": u, "item": i, "rating": r})
    held = df.user >= N_USERS - N_HELD
    users = pd.DataFrame({"user_id": np.arange(N_USERS), "g": [f"g{x}" for x in g]})
    return df[~held], df[held], users, g


# ------------------------------------------------ the serving math, without a fit (fast)
def test_composed_rows_score_the_mean_of_the_samples_predictions():
    rng = np.random.default_rng(0)
    S, n, k = 4, 6, 3
    th_u, th_i = rng.normal(size=(S, n, k + 1)), rng.normal(size=(S, n, k + 1))
    (pu, bu, sbu), (qi, bi, sbi) = compose_rows(th_u, k), compose_rows(th_i, k)
    per_sample = 3.0 + th_u[..., k] + th_i[..., k] + np.sum(th_u[..., :k] * th_i[..., :k], -1)
    np.testing.assert_allclose(3.0 + bu + bi + np.sum(pu * qi, 1), per_sample.mean(0))
    np.testing.assert_allclose(sbu, th_u[..., k])
    assert pu.shape == (n, S * k)


def test_feature_rows_are_the_prior_mean_plus_the_coefficients():
    rng = np.random.default_rng(1)
    S, m, K = 3, 4, 3
    mean, coef = rng.normal(size=(S, K)), rng.normal(size=(S, m, K))
    X = np.array([[1.0, 0, 0, 0.5], [0, 0, 0, 0]])
    theta = feature_theta_rows(X, mean, coef)
    np.testing.assert_allclose(theta[:, 0], mean + coef[:, 0] + 0.5 * coef[:, 3])
    np.testing.assert_allclose(theta[:, 1], mean)  # no features: the ID prior's mean


def _posterior_arrays(S=3, k=2, m=4, n_users=5, n_items=6):
    rng = np.random.default_rng(2)
    bu, bi, mu = rng.normal(size=(S, n_users)), rng.normal(size=(S, n_items)), rng.normal(size=S)
    params = Params(rng.normal(size=(n_users, S * k)), rng.normal(size=(n_items, S * k)),
                    bu.mean(0), bi.mean(0), mu.mean())
    arrays = {"posterior/user_bias": bu, "posterior/item_bias": bi, "posterior/global_bias": mu,
              "posterior/tau": np.full(S, 2.0), "posterior/user_row_mean": rng.normal(size=(S, k + 1)),
              "posterior/user_row_prec": np.ones((S, k + 1)),
              "posterior/user_feature_coef": rng.normal(size=(S, m, k + 1))}
    return arrays, params


def test_posterior_feature_maps_are_checked_on_load():
    arrays, params = _posterior_arrays()
    got = check_posterior(arrays, params, "load")
    assert got["user_feature_coef"].shape == (3, 4, 3)
    old = {k: v for k, v in arrays.items() if "row_" not in k and "feature" not in k}
    assert "user_row_mean" not in check_posterior(old, params, "load")  # older files load
    for name, bad, words in [
            ("user_feature_coef", lambda a: a[..., :-1], "posterior/user_feature_coef must be"),
            ("user_row_prec", lambda a: -a, "posterior/user_row_prec must be > 0"),
            ("user_row_mean", lambda a: a * np.nan, "posterior/user_row_mean must be finite"),
            ("user_row_mean", None, "needs posterior/user_row_mean")]:
        broken = dict(arrays)
        if bad is None:
            del broken[f"posterior/{name}"]
        else:
            broken[f"posterior/{name}"] = bad(arrays[f"posterior/{name}"])
        with pytest.raises(ValueError, match=words.replace("/", "/")):
            check_posterior(broken, params, "load m.npz")


# ------------------------------------------------ fitted models (a BayesianFM fit
# compiles its sweep: 7-11 s on the loaded 2-core machine, so these run with -m slow)
def rmse(model, frame, **kw):
    p = model.predict(frame.user.to_numpy(), frame.item.to_numpy(), clip=False, **kw)
    return float(np.sqrt(np.mean((p - frame.rating.to_numpy()) ** 2)))


@pytest.fixture(scope="module")
def served():
    train, held, users, g = planted()
    f_train = mfjax.Features.from_frames(users=users[users.user_id < N_USERS - N_HELD])
    f_all = mfjax.Features.from_frames(users=users)
    model = mfjax.fit(mfjax.Ratings.from_frame(train), mfjax.BayesianFM(**SPEC),
                      features=f_train, progress=False, seed=0)
    return model, train, held, f_all, g


@pytest.mark.slow
def test_held_out_users_are_predicted_from_their_features(served):
    model, train, held, f_all, _ = served
    from_features = rmse(model, held, features=f_all)
    fallback = rmse(model, held)  # no features for them: μ + b_i
    trained = rmse(model, train)
    assert from_features < 0.4 * fallback, (from_features, fallback)
    assert from_features < 1.6 * trained + 0.05, (from_features, trained)
    ev = mfjax.evaluate(model, mfjax.Ratings.from_frame(held), features=f_all)
    assert ev["rmse"] == pytest.approx(from_features, rel=1e-6)


@pytest.mark.slow
def test_feature_only_user_is_recommended_its_groups_items(served):
    model, _, _, f_all, g = served
    grown = model.partial_fit_users(None, features=f_all)
    for u in range(N_USERS - N_HELD, N_USERS):
        top = np.asarray(grown.recommend(u, 5)[0])
        liked = top < N_ITEMS // 2 if g[u] == 0 else top >= N_ITEMS // 2
        assert liked.all(), (u, g[u], top)
    popular = np.asarray(model.recommend(N_USERS + 7, 5)[0])  # unknown: μ + b_i order
    assert any(not np.array_equal(np.asarray(grown.recommend(u, 5)[0]), popular)
               for u in range(N_USERS - N_HELD, N_USERS))


@pytest.mark.slow
def test_partial_fit_rows_are_the_feature_scores(served):
    model, _, held, f_all, _ = served
    grown = model.partial_fit_users(None, features=f_all)
    assert len(grown.user_ids) == N_USERS and grown.posterior["user_bias"].shape[1] == N_USERS
    u, i = held.user.to_numpy(), held.item.to_numpy()
    np.testing.assert_allclose(grown.predict(u, i, clip=False),
                               model.predict(u, i, clip=False, features=f_all), atol=1e-5)
    mean, std = grown.predict(u[:5], i[:5], return_std=True)
    assert np.isfinite(std).all() and (std > 0).all()


@pytest.mark.slow
def test_partial_fit_with_few_ratings_leans_on_features(served):
    model, _, held, f_all, _ = served
    two = held.groupby("user").head(2)
    rest = held.drop(two.index)
    ratings = mfjax.Ratings.from_frame(two)
    with_f = rmse(model.partial_fit_users(ratings, features=f_all), rest)
    without = rmse(model.partial_fit_users(ratings), rest)
    assert with_f < 0.6 * without, (with_f, without)


@pytest.mark.slow
def test_fit_time_feature_only_rows_hold_their_exact_posterior_mean():
    train, held, users, _ = planted(1)
    f_all = mfjax.Features.from_frames(users=users)
    model = mfjax.fit(mfjax.Ratings.from_frame(train), mfjax.BayesianFM(**SPEC),
                      features=f_all, progress=False, seed=0)
    ids = np.arange(N_USERS - N_HELD, N_USERS)
    assert len(model.user_ids) == N_USERS
    rows = model.index_users(ids)
    vec, bias, sample_bias, known = feature_vectors(model, f_all, "users", ids)
    assert known.all()
    np.testing.assert_allclose(np.asarray(model.params.user_factors)[rows], vec, atol=1e-5)
    np.testing.assert_allclose(np.asarray(model.params.user_bias)[rows], bias, atol=1e-5)
    np.testing.assert_allclose(model.posterior["user_bias"][:, rows], sample_bias, atol=1e-5)
    assert rmse(model, held) < 0.4 * float(np.std(held.rating))


@pytest.mark.slow
def test_save_load_keeps_serving_from_features_exactly(served, tmp_path):
    model, _, held, f_all, _ = served
    model.save(tmp_path / "m.npz")
    back = mfjax.load_model(tmp_path / "m.npz")
    assert sorted(back.posterior) == sorted(model.posterior)
    u, i = held.user.to_numpy(), held.item.to_numpy()
    assert np.array_equal(back.predict(u, i, features=f_all), model.predict(u, i, features=f_all))
    grown = model.partial_fit_users(None, features=f_all)
    grown.save(tmp_path / "g.npz")
    again = mfjax.load_model(tmp_path / "g.npz")
    assert np.array_equal(again.recommend(u[0], 5)[0], grown.recommend(u[0], 5)[0])


@pytest.mark.slow
def test_file_without_feature_maps_loads_and_falls_back(served, tmp_path):
    model, _, held, f_all, _ = served
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as z:
        arrays = {k: z[k] for k in z.files if "row_" not in k and "feature_coef" not in k}
    np.savez(tmp_path / "old.npz", **arrays)  # as saved before the maps were kept
    old = mfjax.load_model(tmp_path / "old.npz")
    u, i = held.user.to_numpy(), held.item.to_numpy()
    np.testing.assert_allclose(old.predict(u, i, features=f_all), model.predict(u, i), atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("field, bad", [("user_feature_coef", "shape"),
                                        ("user_row_prec", "negative"),
                                        ("user_row_mean", "nan")])
def test_corrupt_feature_maps_are_refused_naming_the_field(served, tmp_path, field, bad):
    model, *_ = served
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as z:
        arrays = {k: z[k] for k in z.files}
    a = arrays[f"posterior/{field}"]
    arrays[f"posterior/{field}"] = (a[..., :-1] if bad == "shape" else -a if bad == "negative"
                                    else np.where(a == a.flat[0], np.nan, a).astype(a.dtype))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=f"posterior/{field}"):
        mfjax.load_model(tmp_path / "bad.npz")


@pytest.mark.slow
def test_features_with_other_columns_are_refused_naming_them(served):
    model, _, held, _, _ = served
    other = mfjax.Features.from_frames(users=pd.DataFrame(
        {"user_id": [200, 201], "g": ["g0", "g1"], "age": ["old", "young"]}))
    with pytest.raises(ValueError, match=r"unknown columns \['age=old', 'age=young'\]"):
        model.predict([200, 201], [0, 1], features=other)
    fewer = mfjax.Features.from_frames(users=pd.DataFrame({"user_id": [200, 201],
                                                           "h": ["a", "b"]}))
    with pytest.raises(ValueError, match=r"unknown columns \['h=a', 'h=b'\]; lacks the "
                                         r"columns \['g=g0', 'g=g1'\]"):
        model.partial_fit_users(None, features=fewer)
    with pytest.raises(ValueError, match=r"BayesianFM: the new user features: unknown columns \['h=a', 'h=b'\]; "
                                         r"lacks the columns \['g=g0', 'g=g1'\]"):
        model.predict([200], [0], features=fewer)
    with pytest.raises(TypeError):
        model.predict([1], [1], features="users.csv")


@pytest.mark.slow
def test_cross_validate_and_search_take_features(served):
    _, train, _, f_all, _ = served
    r = mfjax.Ratings.from_frame(train)
    cv = mfjax.cross_validate(r, mfjax.BayesianFM(**SPEC), folds=2, progress=False,
                              features=f_all)
    assert len(cv) == 2 and (cv.rmse < 0.6).all()
    res = mfjax.search(r, mfjax.BayesianFM(**SPEC), {"rank": [1, 2]}, validation=r,
                       metric="rmse", progress=False, features=f_all, refit=True)
    assert res.model.features is f_all


@pytest.mark.slow
def test_cli_trains_bayesian_fm_from_feature_files(tmp_path, capsys):
    from mfjax.cli import train as cli

    train, held, users, _ = planted()
    pd.concat([train, held]).to_csv(tmp_path / "r.csv", index=False)
    users.to_csv(tmp_path / "users.csv", index=False)
    rc = cli.main(["--data", str(tmp_path / "r.csv"), "--user-col", "user", "--item-col",
                   "item", "--rating-col", "rating", "--user-features",
                   str(tmp_path / "users.csv"), "--rank", "2", "--burn-in", "3", "--samples",
                   "5", "--quiet", "--out", str(tmp_path / "run")], prog="mfjax train")
    assert rc == 0, capsys.readouterr().err
    model = mfjax.load_model(tmp_path / "run" / "model.npz")
    assert model.record.name == "BayesianFM" and model.features is not None


@pytest.mark.slow
def test_rows_without_ratings_or_features_are_set_from_later_features():
    train, held, users, g = planted(2)
    full = mfjax.Ratings.from_frame(pd.concat([train, held]))
    keep = full.users < N_USERS - N_HELD      # the held-out users stay in the ID table
    fit_set = full.subset(np.flatnonzero(keep))
    f_train = mfjax.Features.from_frames(users=users[users.user_id < N_USERS - N_HELD])
    f_all = mfjax.Features.from_frames(users=users)
    model = mfjax.fit(fit_set, mfjax.BayesianFM(**SPEC), features=f_train, progress=False)
    assert len(model.user_ids) == N_USERS
    grown = model.partial_fit_users(None, features=f_all)
    assert len(grown.user_ids) == N_USERS
    u, i = held.user.to_numpy(), held.item.to_numpy()
    np.testing.assert_allclose(grown.predict(u, i, clip=False),
                               model.predict(u, i, clip=False, features=f_all), atol=1e-5)
    top = np.asarray(grown.recommend(int(u[0]), 3)[0])
    assert ((top < N_ITEMS // 2) == (g[u[0]] == 0)).all(), top


@pytest.mark.slow
def test_cli_cv_takes_feature_files(tmp_path, capsys):
    from mfjax.cli import selection

    train, held, users, _ = planted()
    pd.concat([train, held]).to_csv(tmp_path / "r.csv", index=False)
    users.to_csv(tmp_path / "users.csv", index=False)
    rc = selection.main(["cv", str(tmp_path / "r.csv"), "--model", "BayesianFM", "--set",
                         "rank=2", "--set", "burn_in=3", "--set", "samples=5", "--folds", "2",
                         "--user-features", str(tmp_path / "users.csv"), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "rmse" in out


@pytest.mark.slow
def test_a_resumed_fit_keeps_the_feature_maps(tmp_path):
    train, held, users, _ = planted()
    r = mfjax.Ratings.from_frame(train)
    f_all = mfjax.Features.from_frames(users=users)
    spec = mfjax.BayesianFM(**SPEC)
    first = mfjax.fit(r, spec, features=f_all, checkpoint_dir=tmp_path, progress=False)
    again = mfjax.fit(r, spec, features=f_all, checkpoint_dir=tmp_path, resume=True,
                      progress=False)
    assert sorted(again.posterior) == sorted(first.posterior)
    for k, v in first.posterior.items():
        np.testing.assert_array_equal(again.posterior[k], v)
    u, i = held.user.to_numpy(), held.item.to_numpy()
    np.testing.assert_array_equal(again.predict(u, i), first.predict(u, i))


@pytest.mark.slow
def test_feature_only_items_are_scored_and_similar_to_their_kind():
    rng = np.random.default_rng(3)
    n_users, n_items, n_new = 80, 40, 5
    kind_i, kind_u = rng.integers(0, 2, n_items), rng.integers(0, 2, n_users)
    u = np.repeat(np.arange(n_users), 10)
    i = np.concatenate([rng.choice(n_items - n_new, 10, replace=False) for _ in range(n_users)])
    r = 3 + np.where(kind_i[i] == kind_u[u], 1.5, -1.5) + 0.3 * rng.normal(size=len(u))
    ratings = mfjax.Ratings.from_frame(pd.DataFrame({"user": u, "item": i, "rating": r}))
    items = pd.DataFrame({"item_id": np.arange(n_items), "kind": [f"k{x}" for x in kind_i]})
    f_train = mfjax.Features.from_frames(items=items[items.item_id < n_items - n_new])
    f_all = mfjax.Features.from_frames(items=items)
    model = mfjax.fit(ratings, mfjax.BayesianFM(**SPEC), features=f_train, progress=False)
    grown = model.partial_fit_items(None, features=f_all)
    new = np.arange(n_items - n_new, n_items)
    assert len(grown.item_ids) == n_items
    np.testing.assert_allclose(grown.predict(np.zeros(n_new, int), new, clip=False),
                               model.predict(np.zeros(n_new, int), new, clip=False,
                                             features=f_all), atol=1e-5)
    similar = np.asarray(grown.similar_items(int(new[0]), 5)[0])
    assert (kind_i[similar] == kind_i[new[0]]).all(), similar
