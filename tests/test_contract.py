"""The contract every registered model passes by being registered (mfjax.models.REGISTRY).

One suite, parametrized over the registry (the pattern of implicit's shared test mixin and
LensKit's contract tests): fit, predict, recommend, save/load, partial fits, fold-in,
checkpoint-resume, cross-validation, search and gradients. A model added to the registry
runs all of it; model-specific tests stay in their own files.
"""
import dataclasses

import numpy as np
import pytest

import mfjax

NAMES = sorted(mfjax.models.REGISTRY)


def small_spec(record, **changes):
    """The model's spec at rank 4 with few steps (fast on tiny data), other fields default."""
    fields = set(record.spec.field_names())
    kw = {"rank": 4}
    kw.update({k: v for k, v in (("epochs", 3), ("burn_in", 2), ("samples", 4), ("ensemble", 1))
               if k in fields})
    kw.update(changes)
    return record.spec(**kw)


def data_for(record, seed=0):
    """String-ID ratings (explicit) or interactions (ranking objectives) for ``record``."""
    r, _ = mfjax.datasets.synthetic(120, 80, 3000, rank=4, noise=0.3, seed=seed)
    r = mfjax.Ratings(r.users, r.items, r.ratings, None,
                      np.array([f"u{x}" for x in r.user_ids], object),
                      np.array([f"i{x}" for x in r.item_ids], object))
    if record.objective_record.ranking:
        r = r.binarize(float(np.median(r.ratings)))
    return r


@pytest.fixture(scope="module", params=NAMES)
def trained(request):
    record = mfjax.models.REGISTRY[request.param]
    ratings = data_for(record)
    train, test = mfjax.split.holdout(ratings, 0.2, seed=0)
    model = mfjax.fit(train, small_spec(record), progress=False)
    return record, model, train, test


@pytest.mark.timeout(300)
def test_fit_returns_the_registered_model(trained):
    record, model, train, _ = trained
    assert record.spec is mfjax.models.REGISTRY[record.name].spec
    assert type(model.spec) is record.spec and model.record is record
    assert model.objective is record.objective_record
    assert len(model.history) == model.spec.n_steps
    assert all(np.isfinite(h["loss"]) for h in model.history)
    assert isinstance(model.params, record.params_type)
    assert list(model.user_ids) == list(train.user_ids)


@pytest.mark.timeout(300)
def test_predict_is_the_records_score(trained):
    record, model, train, _ = trained
    u, i = train.user_ids[train.users[:50]], train.item_ids[train.items[:50]]
    got = model.predict(u, i, clip=False)
    want = np.asarray(record.score(model.params, train.users[:50], train.items[:50]))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    assert np.isfinite(got).all()


@pytest.mark.timeout(300)
def test_recommend_follows_the_one_and_batch_contract(trained):
    _, model, train, _ = trained
    users = train.user_ids[:3]
    one_items, one_scores = model.recommend(users[0], n=5)
    items, scores = model.recommend(users, n=5)
    assert one_items.shape == (5,) and items.shape == (3, 5) and scores.shape == (3, 5)
    np.testing.assert_array_equal(items[0], one_items)
    np.testing.assert_allclose(scores[0], one_scores, rtol=1e-6)
    seen = set(train.item_ids[train.items[train.users == 0]])
    assert not seen & set(one_items)  # training items are excluded
    assert set(items.ravel()) <= set(train.item_ids)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


@pytest.mark.timeout(300)
def test_save_load_returns_the_same_model_and_ids(trained, tmp_path):
    _, model, train, _ = trained
    path = tmp_path / "m.npz"
    model.save(path)
    back = mfjax.load_model(path)
    assert back.spec == model.spec and type(back.params) is type(model.params)
    assert list(back.user_ids) == list(model.user_ids)
    assert list(back.item_ids) == list(model.item_ids)
    u, i = train.user_ids[train.users[:20]], train.item_ids[train.items[:20]]
    np.testing.assert_array_equal(back.predict(u, i), model.predict(u, i))
    np.testing.assert_array_equal(back.recommend(u[0], n=5)[0], model.recommend(u[0], n=5)[0])


@pytest.mark.timeout(300)
def test_partial_fit_and_fold_in_use_the_records_row_solve(trained):
    record, model, train, _ = trained
    user = train.user_ids[0]
    history = train.subset(train.users == 0)
    if record.row_solve is None:
        with pytest.raises(ValueError, match="refit"):
            model.partial_fit_users(history)
        return
    new = model.partial_fit_users(history)
    assert list(new.user_ids) == list(model.user_ids)
    np.testing.assert_array_equal(np.asarray(new.params.user_factors)[1:],
                                  np.asarray(model.params.user_factors)[1:])
    assert np.isfinite(np.asarray(new.params.user_factors)[0]).all()
    items = history.item_ids[history.items]
    p, b = model.fold_in(items, history.ratings)
    assert p.shape == (model.params.user_factors.shape[1],) and np.isfinite(p).all()
    got, _ = model.recommend_for_ratings(items, history.ratings, n=5)
    assert got.shape == (5,) and not set(got) & set(items)
    assert user in set(new.user_ids)


@pytest.mark.timeout(300)
def test_checkpoint_resume_returns_the_finished_run(trained, tmp_path):
    record, model, train, _ = trained
    spec = small_spec(record)
    first = mfjax.fit(train, spec, checkpoint_dir=tmp_path, progress=False)
    again = mfjax.fit(train, spec, checkpoint_dir=tmp_path, resume=True, progress=False)
    assert [h["loss"] for h in again.history] == [h["loss"] for h in first.history]
    for a, b in zip(again.params, first.params):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.timeout(300)
def test_cross_validate_and_search_take_every_model(trained):
    record, _, train, test = trained
    spec = small_spec(record)
    table = mfjax.cross_validate(train, spec, folds=2, progress=False)
    assert len(table) >= 2
    metric = "ndcg@10" if record.objective_record.ranking else "rmse"
    assert np.isfinite(table[metric].iloc[:2]).all()
    field = "init_scale" if "init_scale" in spec.field_names() else spec.field_names()[0]
    values = [getattr(spec, field), getattr(spec, field) * 2]
    result = mfjax.search(train, spec, {field: values}, validation=test, metric=metric,
                          progress=False)
    assert len(result.table) == 2 and type(result.best) is record.spec


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", NAMES)
def test_every_objective_verifies_its_gradient(name):
    record = mfjax.models.REGISTRY[name]
    ratings = data_for(record).subset(np.arange(60))
    report = mfjax.verify_gradients(small_spec(record, rank=3), ratings, order=1, seed=1)
    assert report.ok, str(report)
    assert report.manual_vs_numerical is not None and report.dtype == "float64"


@pytest.mark.parametrize("name", NAMES)
def test_the_record_is_whole(name):
    record = mfjax.models.REGISTRY[name]
    assert record.name == record.spec.__name__ and record.spec.objective == record.objective
    assert record.spec().solver in record.solvers
    assert record.objective in mfjax.models.objective_names()
    assert record.memory_bytes(record.spec(), n_users=10, n_items=10, nnz=100) > 0
    assert mfjax.models.spec_from_dict(record.spec().to_dict()) == record.spec()
    for field, value in record.cli_defaults.items():
        assert getattr(record.spec(), field) == value
    assert dataclasses.is_dataclass(record.spec) and record.spec.__dataclass_params__.frozen
