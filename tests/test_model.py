"""Model: predict with fallbacks, evaluate across ID spaces, save/load."""

import json
import os
import zipfile

import numpy as np
import pytest

import mfjax
from mfjax import split


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    users = np.array([f"u{j}" for j in rng.integers(0, 80, 4000)])
    items = rng.integers(1000, 1060, 4000)
    ratings = rng.integers(1, 6, 4000).astype(float)
    with pytest.warns(UserWarning):  # random pairs repeat
        r = mfjax.Ratings.from_arrays(users, items, ratings)
    train, test = split.holdout(r, 0.2, seed=0)
    model = mfjax.fit(train, solver="optax", rank=4, epochs=3, progress=False)
    return model, train, test


def test_predict_is_clipped_and_matches_the_core(trained):
    model, train, _ = trained
    u, i = train.user_ids[train.users[:50]], train.item_ids[train.items[:50]]
    got = model.predict(u, i, clip=False)
    want = mfjax.predict(model.params, train.users[:50], train.items[:50])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    big = model.params._replace(global_bias=model.params.global_bias + 100)
    clipped = mfjax.Model(big, model.user_ids, model.item_ids, model.rating_range).predict(u, i)
    assert np.all(clipped == model.rating_range[1])
    assert isinstance(model.predict(u[0], i[0]), float)


def test_unknown_ids_fall_back_to_known_biases(trained):
    model, train, _ = trained
    p = model.params
    known_u, known_i = train.user_ids[0], train.item_ids[0]
    pred, counts = model.predict(["nobody", known_u, "nobody"], [known_i, 99999, 99999],
                                 clip=False, return_fallbacks=True)
    mu = float(p.global_bias)
    np.testing.assert_allclose(pred, [mu + float(p.item_bias[0]), mu + float(p.user_bias[0]), mu],
                               rtol=1e-6)
    assert counts == {"n_unknown_users": 2, "n_unknown_items": 2}
    with pytest.raises(KeyError, match="nobody"):
        model.index_users("nobody")


def test_evaluate_in_the_same_and_in_a_raw_id_space(trained):
    model, _, test = trained
    same = mfjax.evaluate(model, test)
    df = test.to_frame()
    extra = {"user": ["ghost"], "item": [1000], "rating": [3.0]}
    raw = mfjax.Ratings.from_arrays(list(df["user"]) + extra["user"],
                                    list(df["item"]) + extra["item"],
                                    list(df["rating"]) + extra["rating"])
    other = mfjax.evaluate(model, raw)
    assert other["n"] == same["n"] + 1 and other["n_unknown_users"] == 1
    assert same["n_unknown_users"] == 0 and same["n_unknown_items"] == 0
    pred = model.predict(df["user"].to_numpy(), df["item"].to_numpy())
    rmse = float(np.sqrt(np.mean((pred - df["rating"].to_numpy()) ** 2)))
    assert abs(same["rmse"] - rmse) < 1e-6 and same["mae"] > 0


def test_save_load_round_trip(trained, tmp_path):
    model, train, _ = trained
    path = tmp_path / "sub" / "model.npz"
    model.save(path)
    loaded = mfjax.load_model(path)
    u, i = train.user_ids[train.users[:100]], train.item_ids[train.items[:100]]
    np.testing.assert_array_equal(loaded.predict(u, i), model.predict(u, i))
    assert loaded.config == model.config and loaded.history == model.history
    assert loaded.rating_range == model.rating_range
    np.testing.assert_array_equal(loaded.seen_items, model.seen_items)
    assert list(loaded.user_ids) == list(model.user_ids)
    assert [p for p in os.listdir(path.parent)] == ["model.npz"]  # no temp files left


def test_int_ids_survive_a_round_trip(tmp_path):
    r, _ = mfjax.datasets.synthetic(30, 20, 500, seed=0)
    model = mfjax.fit(r, solver="optax", rank=2, epochs=1, progress=False)
    model.save(tmp_path / "m.npz")
    loaded = mfjax.load_model(tmp_path / "m.npz")
    assert loaded.user_ids.dtype == np.int64
    assert loaded.predict(r.user_ids[3], r.item_ids[2]) == model.predict(r.user_ids[3], r.item_ids[2])


def test_corrupt_or_foreign_files_raise_value_error(trained, tmp_path):
    model, _, _ = trained
    good = tmp_path / "good.npz"
    model.save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:1000])
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.arange(3))
    tagged = tmp_path / "tagged.npz"
    np.savez(tagged, meta=np.frombuffer(json.dumps({"format": "other"}).encode(), np.uint8))
    text = tmp_path / "text.npz"
    text.write_text("hello")
    for path in (truncated, foreign, tagged, text):
        with pytest.raises(ValueError, match=str(path.name)):
            mfjax.load_model(path)
    with pytest.raises(FileNotFoundError):
        mfjax.load_model(tmp_path / "missing.npz")


def test_a_failed_save_leaves_nothing_behind(trained, tmp_path, monkeypatch):
    model, _, _ = trained
    path = tmp_path / "model.npz"
    model.save(path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.npz"]


def test_lookup_of_a_mixed_type_list_keeps_each_ids_type(trained):
    model, train, _ = trained
    known = train.user_ids[0]
    idx = model.index_users([known, 4, "ghost"], missing="ignore")
    assert idx[0] == 0 and idx[1] == -1 and idx[2] == -1
    ints = mfjax.Ratings.from_arrays([3, 4, 5], [1, 2, 3], [1.0, 2.0, 3.0])
    assert list(ints.index_users(["ghost", 4], missing="ignore")) == [-1, 1]


@pytest.fixture(scope="module")
def small():
    import jax

    p = mfjax.init_params(jax.random.PRNGKey(0), 3, 3, 2)
    model = mfjax.Model(p, np.array([0, 1, 2]), np.array([0, 1, 2]), (1.0, 5.0), {"reg": 0.1},
                        [], np.array([0, 1, 2, 3]), np.array([0, 1, 2], np.int32))
    return model, mfjax.Ratings.from_arrays([0, 1], [0, 1], [4.0, 5.0])


BAD_CALLS = {
    "fold_in string ratings": (lambda m, r: m.fold_in([0, 1], ["5", "1"]), ValueError, "fold_in: ratings"),
    "fold_in bool ratings": (lambda m, r: m.fold_in([0, 1], [True, False]), ValueError, "fold_in: ratings"),
    "fold_in complex ratings": (lambda m, r: m.fold_in([0, 1], [1j, 2]), ValueError, "fold_in: ratings"),
    "recommend_for_ratings string ratings": (lambda m, r: m.recommend_for_ratings([0], ["x"]),
                                             ValueError, "recommend_for_ratings: ratings"),
    "evaluate with a list as test": (lambda m, r: mfjax.evaluate(m, [(0, 0, 1.0)]), TypeError, "test"),
    "evaluate with a list as model": (lambda m, r: mfjax.evaluate([m], r), TypeError, "evaluate: model"),
    "evaluate_ranking with a str model": (lambda m, r: mfjax.evaluate_ranking("m", r, r), TypeError,
                                          "evaluate_ranking: model"),
    "evaluate_ranking bad batch_size": (lambda m, r: mfjax.evaluate_ranking(m, r, r, batch_size="x"),
                                        ValueError, "evaluate_ranking: batch_size"),
    "evaluate_ranking bool threshold": (lambda m, r: mfjax.evaluate_ranking(m, r, r, threshold=True),
                                        ValueError, "threshold"),
    "predict unhashable user": (lambda m, r: m.predict({"a": 1}, 0), TypeError, "predict: raw_users"),
    "recommend unhashable user": (lambda m, r: m.recommend({"a": 1}), TypeError, "recommend: raw_user_ids"),
    "similar_items unhashable": (lambda m, r: m.similar_items({"a": 1}), TypeError, "similar_items"),
    "save to None": (lambda m, r: m.save(None), TypeError, "Model.save: path"),
    "load_model of a float": (lambda m, r: mfjax.load_model(3.5), TypeError, "load_model: path"),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_arguments_raise_errors_naming_the_argument(small, name):
    call, exc, match = BAD_CALLS[name]
    with pytest.raises(exc, match=match):
        call(*small)


@pytest.fixture(scope="module")
def implicit_models():
    rng = np.random.default_rng(0)
    pairs = rng.choice(60 * 40, 600, replace=False)
    clicks = mfjax.Ratings.from_arrays(pairs // 40, pairs % 40, np.ones(600))
    return clicks, {obj: mfjax.fit(clicks, objective=obj, rank=8, epochs=2, progress=False)
                    for obj in ("ials", "bpr")}


@pytest.mark.parametrize("objective", ["ials", "bpr"])
def test_implicit_scores_are_not_clipped_nor_scored_by_rmse(implicit_models, objective):
    clicks, models = implicit_models
    m = models[objective]
    u, i = clicks.user_ids[clicks.users[:100]], clicks.item_ids[clicks.items[:100]]
    np.testing.assert_array_equal(m.predict(u, i), m.predict(u, i, clip=False))
    assert np.unique(m.predict(u, i)).size > 1  # binary clicks: clipping made every score 1.0
    with pytest.raises(ValueError, match="evaluate_ranking"):
        mfjax.evaluate(m, clicks)


@pytest.mark.parametrize("objective", ["ials", "bpr"])
@pytest.mark.parametrize("reg", [-1.0, float("nan"), float("inf"), "x", True, 1j, None])
def test_implicit_fold_in_checks_reg(implicit_models, objective, reg):
    clicks, models = implicit_models
    m, items = models[objective], clicks.item_ids[:5]
    kw = dict(bias_reg=0.1) if reg is None else dict(reg=reg)  # None: bias_reg is refused
    with pytest.raises(ValueError, match="bias_reg" if reg is None else "reg must be"):
        m.fold_in(items, None, **kw)
    with pytest.raises(ValueError, match="bias_reg" if reg is None else "reg must be"):
        m.recommend_for_ratings(items, None, **kw)


@pytest.mark.parametrize("objective", ["ials", "bpr"])
@pytest.mark.parametrize("reg,value", [(1e9, 1.0), (0.01, 1e9), (0.0, 1.0)])
def test_implicit_fold_in_is_finite_at_extremes(implicit_models, objective, reg, value):
    clicks, models = implicit_models
    p, b = models[objective].fold_in(clicks.item_ids[:5], np.full(5, value), reg=reg)
    assert np.isfinite(np.asarray(p)).all() and b == 0.0


def test_implicit_fold_in_non_finite_result_raises(implicit_models, monkeypatch):
    from mfjax.models.implicit_als import fold_in as ials_fold_in

    clicks, models = implicit_models
    monkeypatch.setattr(ials_fold_in, "ials_rows", lambda *a, **k: np.full((1, 8), np.nan))
    with pytest.raises(ValueError, match="non-finite"):
        models["ials"].fold_in(clicks.item_ids[:5], None)


@pytest.mark.timeout(120)
def test_an_id_of_the_wrong_type_is_refused_not_served_as_unknown():
    """predict('196', '242') on integer IDs used to return the global mean (#30 item 5)."""
    ratings, _ = mfjax.datasets.synthetic(30, 20, 400, seed=0)
    model = mfjax.fit(ratings, mfjax.ALS(rank=2, epochs=1), progress=False)
    u, i = int(ratings.user_ids[0]), int(ratings.item_ids[0])
    assert np.isfinite(model.predict(u, i))
    for call in (lambda: model.predict(str(u), str(i)), lambda: model.recommend(str(u), 3),
                 lambda: model.predict([u, str(u)], [i, i]),
                 lambda: model.similar_items(str(i))):
        with pytest.raises(TypeError, match=rf"'{u}' has type str.*integers: pass {u}|"
                                            rf"'{i}' has type str.*integers: pass {i}"):
            call()
    named = mfjax.Ratings(ratings.users, ratings.items, ratings.ratings, None,
                          np.array([str(x) for x in ratings.user_ids], object), ratings.item_ids)
    m2 = mfjax.fit(named, mfjax.ALS(rank=2, epochs=1), progress=False)
    with pytest.raises(TypeError, match=f"user ID {u} has type int.*strings: pass '{u}'"):
        m2.recommend(u, 3)
    assert m2.recommend("nobody", 3)[0].shape == (3,)  # an unknown ID of the right type: fallback
    assert model.recommend("nobody", 3)[0].shape == (3,)  # matches no ID either way: unknown
