"""Model selection (#19): cross_validate, search, vectorized trials, Gibbs validation.

conftest.py enables float64 for the whole session, so the explicit ALS comparisons
run in float64; the iALS solver keeps float32 factors (its host initialisation), and
its vectorized trials are compared to fit's at that precision.
"""
import dataclasses

import numpy as np
import pytest

import mfjax
from mfjax.cli import selection as cli
from mfjax.selection import metrics, vectorized
from mfjax.selection.search import trial_model
from mfjax.solvers.als.layout import make_layout
from mfjax.training.config import resolve

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def explicit():
    r, _ = mfjax.datasets.synthetic(120, 80, 3000, rank=4, noise=0.5, seed=3)
    return r


@pytest.fixture(scope="module")
def implicit(explicit):
    r = explicit
    keep = r.ratings >= np.median(r.ratings)
    return mfjax.Ratings(r.users[keep], r.items[keep], np.ones(int(keep.sum()), np.float32),
                         None, r.user_ids, r.item_ids)


def _group(train, specs):
    res = [resolve(train, s, seed=0) for s in specs]
    return [x[0] for x in res], res[0][1]


def _close(a, b, tol):
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


@pytest.mark.parametrize("cg_steps", [0, 2])
def test_vectorized_ials_equals_each_fit(implicit, cg_steps):
    train, val = mfjax.split.per_user(implicit, 0.2, seed=0)
    base = mfjax.ImplicitALS(rank=6, epochs=3, cg_steps=cg_steps, kernel=False)
    specs = [dataclasses.replace(base, reg=g, unobserved_weight=w, alpha=a, nu=n)
             for g, w, a, n in [(0.01, 0.3, 1.0, 1.0), (0.1, 1.0, 3.0, 0.5), (0.03, 0.1, 0.5, 0.0)]]
    group, run = _group(train, specs)
    out = vectorized.train_group(train, group, run)
    for s, (params, history) in zip(specs, out):
        m = mfjax.fit(train, s, progress=False)
        _close(params, m.params, 2e-5)
        assert [h["loss"] for h in history] == pytest.approx([h["loss"] for h in m.history], rel=1e-5)
        vm = trial_model(train, s, run, params, history, "vectorized")
        a = mfjax.evaluate_ranking(vm, train, val, k=5, threshold=None)["ndcg@5"]
        b = mfjax.evaluate_ranking(m, train, val, k=5, threshold=None)["ndcg@5"]
        assert abs(a - b) <= 1e-6


def test_vectorized_als_equals_each_fit_float64(explicit):
    train, val = mfjax.split.holdout(explicit, 0.2, seed=0)
    base = mfjax.ALS(rank=5, epochs=3, kernel=False)
    specs = [dataclasses.replace(base, reg=g, bias_reg=b) for g, b in [(0.02, None), (0.3, 1.0)]]
    group, run = _group(train, specs)
    assert np.dtype(run.dtype) == np.float64
    out = vectorized.train_group(train, group, run)
    for s, (params, _) in zip(specs, out):
        m = mfjax.fit(train, s, progress=False)
        _close(params, m.params, 1e-9)
        vm = trial_model(train, s, run, params, [], "vectorized")
        assert abs(mfjax.evaluate(vm, val)["rmse"] - mfjax.evaluate(m, val)["rmse"]) <= 1e-6


def test_memory_budget_splits_a_group_without_changing_results(implicit):
    base = mfjax.ImplicitALS(rank=4, epochs=2, cg_steps=0, kernel=False)
    specs = [dataclasses.replace(base, reg=g) for g in (0.01, 0.1, 1.0)]
    group, run = _group(implicit, specs)
    batches = []
    split = vectorized.train_group(implicit, group, run, budget=1, on_batch=batches.append)
    whole = vectorized.train_group(implicit, group, run)
    assert batches == [1, 1, 1]
    for (a, _), (b, _) in zip(split, whole):
        _close(a, b, 1e-6)


def test_shape_key_groups_only_continuous_fields():
    a = mfjax.ImplicitALS(rank=8, reg=0.1, alpha=2.0)
    assert vectorized.shape_key(a) == vectorized.shape_key(dataclasses.replace(a, reg=3.0, nu=0.5))
    assert vectorized.shape_key(a) != vectorized.shape_key(dataclasses.replace(a, rank=4))
    assert vectorized.route_of(mfjax.MF())[0] is False


def test_search_grid_table_best_and_refit(explicit, capsys):
    # vectorize=True: the vmapped route also on a CPU (where "auto" fits one by one)
    train, val = mfjax.split.per_user(explicit, 0.2, seed=0)
    res = mfjax.search(train, mfjax.ALS(rank=4, epochs=2), {"reg": [0.01, 0.1, 1.0],
                       "bias_reg": [0.01, 1.0]}, validation=val, metric="rmse", refit=True,
                       vectorize=True, progress=True)
    assert "vectorized" in capsys.readouterr().out  # the route is said
    t = res.table
    assert len(t) == 6 and set(t.columns) >= {"reg", "bias_reg", "rmse", "fit_s", "route"}
    assert t["rmse"].is_monotonic_increasing  # lower is better, best first
    assert (res.best.reg, res.best.bias_reg) == (t["reg"][0], t["bias_reg"][0])
    assert res.model is not None and res.model.spec.reg == res.best.reg
    assert mfjax.evaluate(res.model, val)["rmse"] == pytest.approx(t["rmse"][0], abs=1e-6)


def test_search_ranking_metric_is_higher_better_and_sequential_route_said(implicit, capsys):
    train, val = mfjax.split.per_user(implicit, 0.2, seed=0)
    res = mfjax.search(train, mfjax.ImplicitALS(rank=4, epochs=2), {"reg": [0.01, 1.0, 100.0]},
                       validation=val, metric="ndcg@5", vectorize=False, progress=True)
    assert "sequential fit" in capsys.readouterr().out
    assert res.table["ndcg@5"].is_monotonic_decreasing
    assert (res.table["route"] == "sequential").all()  # the words once, not per row
    assert res.routes == {"sequential": "sequential fit (vectorize=False)"}


def test_auto_fits_one_by_one_on_a_cpu(implicit, capsys):
    train, val = mfjax.split.per_user(implicit, 0.2, seed=0)
    res = mfjax.search(train, mfjax.ImplicitALS(rank=4, epochs=1), {"reg": [0.01, 0.1]},
                       validation=val, metric="ndcg@5", progress=True)
    assert "vectorize='auto' on a CPU" in capsys.readouterr().out
    assert (res.table["route"] == "sequential").all()
    assert res.routes["sequential"].startswith("sequential fit")


def test_random_search_draws_lists_distributions_and_callables(implicit):
    from scipy import stats

    train, val = mfjax.split.per_user(implicit, 0.2, seed=0)
    space = {"reg": stats.loguniform(1e-3, 1.0), "alpha": lambda rng: float(rng.uniform(0, 2)),
             "nu": [0.0, 1.0]}
    kw = dict(validation=val, metric="ndcg@5", method="random", n_trials=4, seed=5,
              vectorize=True, progress=False)
    a = mfjax.search(train, mfjax.ImplicitALS(rank=4, epochs=1), space, **kw)
    b = mfjax.search(train, mfjax.ImplicitALS(rank=4, epochs=1), space, **kw)
    assert len(a.table) == 4
    assert a.table.equals(b.table.assign(fit_s=a.table["fit_s"]))  # seeded
    assert a.table["nu"].isin([0.0, 1.0]).all() and (a.table["reg"] < 1.0).all()


@pytest.mark.parametrize("space, kw, match", [
    ({"rgularization": [1.0]}, {}, "has no field"),
    ({}, {}, "non-empty"),
    ({"reg": []}, {}, "empty"),
    ({"reg": [-1.0]}, {}, "reg"),
    ({"reg": [0.1]}, {"metric": "rmse"}, "ranks items"),
    ({"reg": [0.1]}, {"metric": "ndcg"}, "unknown metric"),
    ({"reg": [0.1]}, {"method": "random"}, "n_trials"),
    ({"reg": [0.1]}, {"method": "bayes"}, "method"),
])
def test_search_refuses_before_training(implicit, monkeypatch, space, kw, match):
    import importlib

    S = importlib.import_module("mfjax.selection.search")  # the module, not the function
    monkeypatch.setattr(S.V, "train_group", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setattr(S, "_fit_one", lambda *a, **k: pytest.fail("trained"))
    args = {"validation": implicit, "metric": "ndcg@10", "progress": False, **kw}
    with pytest.raises((ValueError, TypeError), match=match):
        mfjax.search(implicit, mfjax.ImplicitALS(rank=4), space, **args)


def test_cross_validate_explicit_defaults_and_given_folds(explicit, capsys):
    df = mfjax.cross_validate(explicit, mfjax.ALS(rank=4, epochs=2), folds=3, seed=1)
    assert list(df.columns) == ["fold", "rmse", "mae", "n_unknown_users", "n_unknown_items",
                                "fit_s", "test_s"] and len(df) == 3
    assert "Mean" in capsys.readouterr().out
    folds = mfjax.split.kfold(explicit, 3, seed=1)
    again = mfjax.cross_validate(None, mfjax.ALS(rank=4, epochs=2), folds=folds,
                                 metrics=["rmse", "ndcg@5"], seed=1, progress=False)
    np.testing.assert_allclose(again["rmse"], df["rmse"], rtol=1e-9)
    m = mfjax.fit(folds[0][0], mfjax.ALS(rank=4, epochs=2), seed=1, progress=False)
    want = mfjax.evaluate_ranking(m, folds[0][0], folds[0][1], k=5, threshold=4.0)["ndcg@5"]
    assert again["ndcg@5"][0] == pytest.approx(want, abs=1e-9)


def test_cross_validate_implicit_defaults_and_errors(implicit):
    df = mfjax.cross_validate(implicit, mfjax.ImplicitALS(rank=4, epochs=1), folds=2, progress=False)
    assert list(df.columns) == ["fold", "ndcg@10", "recall@20", "n_unknown_users",
                                "n_unknown_items", "fit_s", "test_s"]
    with pytest.raises(ValueError, match="ranks items"):
        mfjax.cross_validate(implicit, mfjax.ImplicitALS(), metrics=["rmse"], progress=False)
    with pytest.raises(TypeError, match="folds"):
        mfjax.cross_validate(implicit, folds="five", progress=False)
    with pytest.raises(TypeError, match="Ratings"):
        mfjax.cross_validate(None, folds=3, progress=False)


@pytest.mark.parametrize("kind", ["ALS", "ImplicitALS", "BayesianMF"])
def test_a_non_finite_trial_is_a_nan_row_and_the_search_goes_on(explicit, implicit, kind,
                                                                 capsys):
    # Non-finite in float64 (conftest): iALS' row systems overflow at reg=1e308; an
    # init_scale of 1e300 overflows ALS' normal equations and the Gibbs sampler's sums.
    data, base, field, bad = {
        "ALS": (explicit, mfjax.ALS(rank=4, epochs=2), "init_scale", 1e300),
        "ImplicitALS": (implicit, mfjax.ImplicitALS(rank=4, epochs=2), "reg", 1e308),
        "BayesianMF": (explicit, mfjax.BayesianMF(rank=4, burn_in=2, samples=2),
                       "init_scale", 1e300),
    }[kind]
    train, val = mfjax.split.per_user(data, 0.2, seed=0)
    metric = "ndcg@5" if kind == "ImplicitALS" else "rmse"
    res = mfjax.search(train, base, {field: [0.1, bad, 1.0]}, validation=val, metric=metric,
                       vectorize=False, progress=False)
    assert "search: trial 1 " in capsys.readouterr().out  # said as it happens
    t = res.table
    assert len(t) == 3 and t[metric].notna().sum() == 2
    failed = t[t[metric].isna()].iloc[0]
    assert failed["trial"] == 1 and failed[field] == bad and "non-finite" in failed["error"]
    assert t["error"][t[metric].notna()].isna().all()
    assert getattr(res.best, field) in (0.1, 1.0)


def test_vectorized_failed_trial_says_why(implicit):
    train, val = mfjax.split.per_user(implicit, 0.2, seed=0)
    res = mfjax.search(train, mfjax.ImplicitALS(rank=4, epochs=2), {"reg": [0.1, 1e308]},
                       validation=val, metric="ndcg@5", vectorize=True, progress=False)
    failed = res.table.iloc[1]
    assert res.table["route"].str.startswith("vectorized").all()
    assert np.isnan(failed["ndcg@5"]) and "non-finite" in failed["error"]


def test_a_search_whose_every_metric_is_nan_names_no_best(explicit):
    train, val = mfjax.split.per_user(explicit, 0.2, seed=0)
    with pytest.raises(ValueError, match=r"every trial's rmse is NaN.*trial 0: .*non-finite"):
        mfjax.search(train, mfjax.ALS(rank=4, epochs=1), {"init_scale": [1e300, 1e301]},
                     validation=val, metric="rmse", vectorize=False, progress=False)
    # a finite model whose metric is NaN: no validation rating reaches the threshold 4
    low = val.subset(val.ratings < 4.0)
    with pytest.raises(ValueError, match=r"every trial's ndcg@5 is NaN.*model is finite"):
        mfjax.search(train, mfjax.ALS(rank=4, epochs=1), {"reg": [0.1]}, validation=low,
                     metric="ndcg@5", vectorize=False, progress=False)


def test_cross_validate_counts_and_warns_about_unknown_test_ids(explicit):
    train, test = mfjax.split.per_user(explicit, 0.2, seed=0)
    foreign = mfjax.Ratings.from_arrays(np.array([f"x{u}" for u in test.users], object),
                                        test.items, test.ratings)
    spec = mfjax.ALS(rank=4, epochs=1)
    with pytest.warns(UserWarning, match=r"fold 2: .*\(100%\) have a user or item without"):
        df = mfjax.cross_validate(None, spec, folds=[(train, test), (train, foreign)],
                                  progress=False)
    assert df["n_unknown_users"].tolist() == [0, len(foreign)]
    assert df["n_unknown_items"][0] == 0


def test_cross_validate_takes_a_trained_model_as_search_does(explicit):
    trained = mfjax.fit(explicit, mfjax.ALS(rank=4, epochs=1), seed=0, progress=False)
    folds = mfjax.split.kfold(explicit, 2, seed=0)
    a = mfjax.cross_validate(None, trained, folds=folds, progress=False)
    b = mfjax.cross_validate(None, trained.spec, folds=folds, progress=False)
    np.testing.assert_allclose(a["rmse"], b["rmse"], rtol=1e-12)


def test_block_layout_is_bucketed_across_folds(explicit):
    shapes = set()
    for train, _ in mfjax.split.kfold(explicit, 5, seed=0):
        lay = make_layout(train.users, train.items, train.ratings, n_users=train.n_users,
                          n_items=train.n_items)
        shapes.add((lay.users.keys.shape, lay.items.keys.shape))
        assert float(np.sum(np.asarray(lay.users.weights))) == len(train)
    assert len(shapes) == 1


def test_gibbs_incremental_validation_matches_the_posterior_mean(explicit):
    train, val = mfjax.split.holdout(explicit, 0.2, seed=0)
    seen = []

    def check(epoch, row, params):
        model = dataclasses.replace(m0, params=params)
        seen.append((row["val_rmse"], mfjax.evaluate(model, val)["rmse"]))

    m0 = mfjax.fit(train, mfjax.BayesianMF(rank=3, burn_in=1, samples=1), progress=False)
    mfjax.fit(train, mfjax.BayesianMF(rank=3, burn_in=2, samples=4), validation=val,
              callbacks=[check], progress=False)
    assert len(seen) == 6
    for a, b in seen:
        assert a == pytest.approx(b, abs=1e-9)


@pytest.mark.parametrize("patience", [None, 50])
def test_gibbs_validation_builds_the_averaged_model_only_when_needed(explicit, monkeypatch,
                                                                      patience):
    """Scoring is incremental, so no sweep averages every kept sample (that cost 66% on
    top of the sweeps on ML-100K); only early stopping keeps (builds) the best model."""
    from mfjax.solvers.gibbs.solver import GibbsSolver

    train, val = mfjax.split.holdout(explicit, 0.2, seed=0)
    calls = []
    original = GibbsSolver.params
    monkeypatch.setattr(GibbsSolver, "params",
                        lambda self, state: calls.append(state.sweep) or original(self, state))
    m = mfjax.fit(train, mfjax.BayesianMF(rank=3, burn_in=2, samples=8), validation=val,
                  patience=patience, progress=False)
    assert len(m.history) == 10 and "val_rmse" in m.history[-1]
    if patience is None:
        assert calls == [10]  # the returned model only
    else:  # each improvement snapshots the best model; the RMSE falls most sweeps
        assert 10 in calls and len(calls) >= 3


def test_metric_names():
    assert metrics.parse_metric("recall@20") == ("recall", 20)
    assert metrics.lower_is_better("mae") and not metrics.lower_is_better("ndcg@3")
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.parse_metric("ndcg@0")


def test_cli_cv_and_search(explicit, tmp_path, capsys):
    path = tmp_path / "r.csv"
    explicit.to_frame().to_csv(path, index=False)
    out = tmp_path / "cv.csv"
    assert cli.main(["cv", str(path), "--model", "ALS", "--set", "rank=3", "--set", "epochs=1",
                     "--folds", "2", "--out", str(out), "--quiet"]) == 0
    assert len(open(out).read().splitlines()) == 3
    png = tmp_path / "s.png"
    assert cli.main(["search", str(path), "--model", "ALS", "--set", "rank=3", "--grid",
                     "reg=0.01,0.1", "--metric", "rmse", "--plot", str(png), "--quiet"]) == 0
    assert "best: ALS(" in capsys.readouterr().out and png.stat().st_size > 0
    assert cli.main(["search", str(path), "--model", "ALS", "--grid", "regg=1",
                     "--metric", "rmse", "--quiet"]) == 2


@pytest.fixture
def ratings_csv(explicit, tmp_path):
    path = tmp_path / "r.csv"
    explicit.to_frame().to_csv(path, index=False)
    return path


def _never(*args, **kwargs):
    raise AssertionError("the command should have refused before training")


SEARCH_ARGS = ["--grid", "reg=0.01,0.1", "--metric", "rmse"]


@pytest.mark.parametrize("command, args, flag", [
    ("cv", ["--folds", "2"], "--out"), ("search", SEARCH_ARGS, "--out"),
    ("search", SEARCH_ARGS, "--plot")])
def test_cv_and_search_refuse_to_overwrite_files_unasked(ratings_csv, tmp_path, capsys,
                                                         monkeypatch, command, args, flag):
    base = [command, str(ratings_csv), "--model", "ALS", "--set", "rank=3", "--set", "epochs=1",
            *args, "--quiet"]
    before = ratings_csv.read_bytes()
    other = tmp_path / ("old.csv" if flag == "--out" else "old.png")
    other.write_bytes(b"the user's file")
    monkeypatch.setattr(mfjax, "search", _never)
    monkeypatch.setattr(mfjax, "cross_validate", _never)
    for target, words in ((ratings_csv, "is the ratings file"), (other, "--overwrite")):
        assert cli.main([*base, flag, str(target)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and words in err, err
    assert ratings_csv.read_bytes() == before and other.read_bytes() == b"the user's file"
    assert cli.main([*base, flag, str(ratings_csv), "--overwrite"]) == 2  # never the input
    monkeypatch.undo()
    assert cli.main([*base, flag, str(other), "--overwrite"]) == 0
    assert other.read_bytes() != b"the user's file" and ratings_csv.read_bytes() == before


@pytest.mark.parametrize("extra, words", [
    (["--grid", "reg=0.01", "--grid", "reg=0.1"], "--grid reg= is given more than once"),
    (["--grid", "reg=0.01,0.1", "--set", "rank=2", "--set", "rank=3"],
     "--set rank= is given more than once"),
    (["--grid", "rank=2,3", "--set", "rank=3"], "both give rank"),
    (["--grid", "reg=0.01,0.1", "--plot", "curve.xyz"], "matplotlib cannot write .xyz"),
    (["--grid", "reg=0.01,0.1", "--plot", "curve"], "without an extension"),
])
def test_search_refuses_ambiguous_or_unwritable_arguments_before_searching(
        ratings_csv, tmp_path, capsys, monkeypatch, extra, words):
    monkeypatch.setattr(mfjax, "search", _never)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["search", str(ratings_csv), "--model", "ALS", "--metric", "rmse", "--quiet",
                     *extra]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and words in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]  # nothing written


@pytest.mark.parametrize("given, key", [("RMSE", "rmse"), ("Mae", "mae"), ("NDCG@5", "ndcg@5")])
def test_metric_names_in_any_case(explicit, given, key):
    """Surprise users write 'RMSE'; the results use the lower-case name."""
    assert metrics.parse_metric(given)[0] == key.split("@")[0]
    df = mfjax.cross_validate(explicit, mfjax.ALS(rank=2, epochs=1), folds=2, metrics=[given],
                              progress=False)
    assert key in df.columns


def test_search_with_folds_cross_validates_each_trial(explicit):
    """search(..., folds=k) as Surprise's GridSearchCV: each trial's mean over k folds."""
    spec = mfjax.ALS(rank=2, epochs=1)
    res = mfjax.search(explicit, spec, {"reg": [0.05, 5.0]}, folds=2, metric="RMSE",
                       progress=False)
    t = res.table
    assert res.metric == "rmse" and {"rmse", "rmse_std", "route"} <= set(t.columns)
    assert (t["route"] == "cross-validated").all()
    for _, row in t.iterrows():
        cv = mfjax.cross_validate(explicit, dataclasses.replace(spec, reg=row["reg"]), folds=2,
                                  metrics=["rmse"], progress=False)
        assert row["rmse"] == pytest.approx(cv["rmse"].mean(), abs=1e-9)
    with pytest.raises(TypeError, match="validation=.*or folds=k"):
        mfjax.search(explicit, spec, {"reg": [0.1]}, metric="rmse", progress=False)


def test_cross_validate_says_each_fold_as_it_finishes(explicit, capsys):
    mfjax.cross_validate(explicit, mfjax.ALS(rank=2, epochs=1), folds=3, progress=True)
    out = capsys.readouterr().out
    assert [f"fold {j}/3 of ALS: rmse" in out for j in (1, 2, 3)] == [True] * 3, out
    mfjax.cross_validate(explicit, mfjax.ALS(rank=2, epochs=1), folds=2, progress=False)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("word, spec", [("als", "ALS"), ("gibbs", "BayesianMF"),
                                        ("implicitals", "ImplicitALS"), ("optax", "MF")])
def test_cli_model_takes_the_train_vocabulary(word, spec):
    assert cli.model_name(word) == spec


def test_cli_search_error_is_one_line_without_a_doubled_prefix(explicit, tmp_path, capsys):
    path = tmp_path / "r.csv"
    explicit.to_frame().to_csv(path, index=False)
    assert cli.main(["search", str(path), "--model", "BayesianMF", "--grid", "reg=0.1,1",
                     "--metric", "rmse", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mfjax search: error: --grid reg: BayesianMF has no such field"), err
    assert "search: BayesianMF" not in err and len(err.splitlines()) == 1
    assert cli.library_words("search: folds is empty") == "folds is empty"


def test_search_with_fold_in_scores_held_out_users_folded_in(implicit):
    # Strong generalization (#28 item 5): validation users are not in train; each trial
    # folds them in before ranking, exactly as evaluate_fold_in does.
    train, fold, test = mfjax.split.users(implicit, 30, seed=0)
    res = mfjax.search(train, mfjax.ImplicitALS(rank=4, epochs=3), {"reg": [0.01, 3.0]},
                       validation=test, fold_in=fold, metric="ndcg@10", progress=False)
    for _, row in res.table.iterrows():
        m = mfjax.fit(train, mfjax.ImplicitALS(rank=4, epochs=3, reg=row["reg"]), seed=0,
                      progress=False)
        want = mfjax.evaluate_fold_in(m, fold, test, k=10)["ndcg@10"]
        assert row["ndcg@10"] == pytest.approx(want, rel=1e-6)
    # Without the fold-in, the same users are unknown: the popular list, another number.
    plain = mfjax.search(train, mfjax.ImplicitALS(rank=4, epochs=3), {"reg": [0.01]},
                         validation=test, metric="ndcg@10", progress=False)
    assert plain.table["ndcg@10"][0] != pytest.approx(res.table.set_index("reg")
                                                       .loc[0.01, "ndcg@10"])
    with pytest.raises(ValueError, match="with fold_in=, metric must be a NAME@K"):
        mfjax.search(train, mfjax.ImplicitALS(rank=4), {"reg": [0.1]}, validation=test,
                     fold_in=fold, metric="auc", progress=False)
    with pytest.raises(TypeError, match="fold_in= goes with validation="):
        mfjax.search(train, mfjax.ImplicitALS(rank=4), {"reg": [0.1]}, folds=2,
                     fold_in=fold, metric="ndcg@10", progress=False)
