"""Model files: IDs come back exactly, and tampered files raise ValueError naming the file."""

import json

import jax
import numpy as np
import pytest

import mfjax


def make_model(user_ids, item_ids=None, rank=3):
    item_ids = np.array([10, 20, 30]) if item_ids is None else item_ids
    p = mfjax.init_params(jax.random.PRNGKey(0), len(user_ids), len(item_ids), rank)
    seen_indptr = np.arange(len(user_ids) + 1, dtype=np.int64)
    seen_items = (np.arange(len(user_ids)) % len(item_ids)).astype(np.int32)
    return mfjax.Model(p, user_ids, item_ids, (1.0, 5.0), {"reg": 0.1, "bias_reg": 0.01, "rank": rank},
                       [{"epoch": 1, "loss": 0.5}], seen_indptr, seen_items)


def obj(*xs):
    a = np.empty(len(xs), dtype=object)
    a[:] = list(xs)
    return a


ID_TABLES = {
    "uint64-max": np.array([1, 2**64 - 1], np.uint64),
    "int64-extremes": np.array([-2**63, 0, 2**63 - 1], np.int64),
    "int32": np.array([7, -3], np.int32),
    "float": np.array([1.0, 2.5, -0.0]),
    "float32": np.array([1.5, 3.25], np.float32),
    "bool": np.array([True, False]),
    "big-int": obj(2**70, 3),
    "mixed": obj(2, "1", 1.5, True),
    "trailing-nul": obj("a\x00", "a", "\x00"),
    "unicode": obj("é", "日本", "a b", ""),
    "numpy-scalars": obj(np.int64(5), np.uint64(2**64 - 1), np.float32(0.5), np.str_("s"), np.bool_(True)),
    "fixed-width-str": np.array(["ab", "c"]),
}


@pytest.mark.parametrize("name", list(ID_TABLES))
def test_saved_ids_come_back_with_their_type_and_value(name, tmp_path):
    ids = ID_TABLES[name]
    model = make_model(ids)
    model.save(tmp_path / "m.npz")
    loaded = mfjax.load_model(tmp_path / "m.npz")
    assert loaded.user_ids.dtype == ids.dtype
    assert [(type(x), x) for x in loaded.user_ids.tolist()] == [(type(x), x) for x in ids.tolist()]
    if ids.dtype == object:
        assert [type(x) for x in loaded.user_ids] == [type(x) for x in ids]
    for raw in ids:
        assert loaded.predict(raw, 20) == model.predict(raw, 20)
        assert loaded.index_users(raw) == model.index_users(raw)


@pytest.mark.parametrize("bad", [obj("a", None), obj("a", (1, 2)), obj(b"x", "y"),
                                 np.array(["2020-01-01", "2021-01-01"], "datetime64[D]")])
def test_ids_that_cannot_be_saved_exactly_refuse_to_save(bad, tmp_path):
    with pytest.raises(ValueError, match="user_ids"):
        make_model(bad).save(tmp_path / "m.npz")
    assert not list(tmp_path.iterdir())


def test_version_1_files_still_load(tmp_path):
    model = make_model(obj("u1", "u2"))
    meta = {"format": "mfjax-model", "version": 1, "rating_range": [1.0, 5.0],
            "config": model.config, "history": model.history,
            "user_id_kind": "str", "item_id_kind": "int"}
    arrays = {f"params/{k}": np.asarray(v) for k, v in model.params._asdict().items()}
    arrays.update(user_ids=np.array(["u1", "u2"]), item_ids=np.array([10, 20, 30], np.int64),
                  seen_indptr=model.seen_indptr, seen_items=model.seen_items,
                  meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    np.savez(tmp_path / "v1.npz", **arrays)
    loaded = mfjax.load_model(tmp_path / "v1.npz")
    assert list(loaded.user_ids) == ["u1", "u2"] and loaded.item_ids.dtype == np.int64
    assert loaded.predict("u2", 30) == model.predict("u2", 30)


# ------------------------------------------------------------------ tampered files
def _set(key, value):
    def f(arrays, meta):
        arrays[key] = value(arrays[key]) if callable(value) else value
    return f


def _drop(key):
    return lambda arrays, meta: arrays.pop(key)


def _meta(**kw):
    def f(arrays, meta):
        meta.update(kw)
    return f


def _meta_drop(key):
    return lambda arrays, meta: meta.pop(key)


def _raw_meta(text):
    def f(arrays, meta):
        meta.clear()
        meta["__raw__"] = text
    return f


DEEP = '{"format": "mfjax-model", "version": 2, "config": ' + "[" * 100_000 + "]" * 100_000 + "}"

TAMPERINGS = {
    "user_bias shorter than the ID table": _set("params/user_bias", lambda a: a[:-1]),
    "item_bias longer": _set("params/item_bias", lambda a: np.concatenate([a, a])),
    "item_factors of another rank": _set("params/item_factors", lambda a: a[:, :-1]),
    "user_factors 1-D": _set("params/user_factors", lambda a: a[:, 0]),
    "user_factors 3-D": _set("params/user_factors", lambda a: a[:, :, None]),
    "global_bias a vector": _set("params/global_bias", np.zeros(2, np.float32)),
    "int params": _set("params/user_bias", lambda a: a.astype(np.int64)),
    "string params": _set("params/item_bias", lambda a: a.astype(str)),
    "complex params": _set("params/global_bias", lambda a: a.astype(np.complex64)),
    "mixed float dtypes": _set("params/user_factors", lambda a: a.astype(np.float16)),
    "NaN factor": _set("params/user_factors", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 1,
                                                                 np.nan, a).astype(a.dtype)),
    "inf global bias": _set("params/global_bias", lambda a: np.asarray(np.inf, a.dtype)),
    "missing item_bias": _drop("params/item_bias"),
    "missing user_ids": _drop("user_ids"),
    "missing seen_items only": _drop("seen_items"),
    "meta is a list": _raw_meta("[1, 2]"),
    "meta is a string": _raw_meta('"mfjax-model"'),
    "meta is null": _raw_meta("null"),
    "meta is not JSON": _raw_meta("{format: mfjax"),
    "meta nested too deep": _raw_meta(DEEP),
    "meta not UTF-8": _raw_meta(b"\xff\xfe{}"),
    "meta as float array": lambda arrays, meta: meta.update(__array__=np.zeros(4)),
    "reversed rating_range": _meta(rating_range=[5.0, 1.0]),
    "NaN rating_range": _meta(rating_range=[float("nan"), 5.0]),
    "infinite rating_range": _meta(rating_range=[1.0, float("inf")]),
    "rating_range of three": _meta(rating_range=[1, 2, 3]),
    "rating_range a string": _meta(rating_range="1-5"),
    "rating_range of strings": _meta(rating_range=["1", "5"]),
    "rating_range of bools": _meta(rating_range=[False, True]),
    "rating_range nested": _meta(rating_range=[[1], {"a": 5}]),
    "missing rating_range": _meta_drop("rating_range"),
    "config a string": _meta(config="reg=0.1"),
    "config a list": _meta(config=[["reg", 0.1]]),
    "config reg a string": _meta(config={"reg": "0.1"}),
    "config reg negative": _meta(config={"reg": -1}),
    "config reg nested garbage": _meta(config={"reg": {"a": [1, {"b": None}]}}),
    "config bias_reg NaN": _meta(config={"reg": 0.1, "bias_reg": float("nan")}),
    "config rank a float": _meta(config={"rank": 2.5}),
    "config rank bool": _meta(config={"rank": True}),
    "history a dict": _meta(history={"loss": 1}),
    "history of numbers": _meta(history=[1, 2]),
    "version a string": _meta(version="2"),
    "version from the future": _meta(version=99),
    "version zero": _meta(version=0),
    "version null": _meta(version=None),
    "format tag a dict": _meta(format={"a": 1}),
    "ids header missing": _meta_drop("ids"),
    "ids header a list": _meta(ids=[1, 2]),
    "ids header wrong dtype": _meta(ids={"user": {"encoding": "array", "dtype": "<f8"},
                                         "item": {"encoding": "array", "dtype": "<i8"}}),
    "ids header garbage dtype": _meta(ids={"user": {"encoding": "array", "dtype": "zz"},
                                           "item": {"encoding": "array", "dtype": [1]}}),
    "ids header unknown encoding": _meta(ids={"user": {"encoding": "pickle", "dtype": "|O"},
                                              "item": {"encoding": "array", "dtype": "<i8"}}),
    "duplicate user IDs": _set("user_ids", lambda a: np.full_like(a, a[0])),
    "fewer user IDs": _set("user_ids", lambda a: a[:-1]),
    "2-D user IDs": _set("user_ids", lambda a: a.reshape(1, -1)),
    "user IDs as strings": _set("user_ids", lambda a: a.astype(str)),
    "object user IDs": _set("user_ids", np.array([1, "a", 3, 4], dtype=object)),
    "seen_indptr too short": _set("seen_indptr", lambda a: a[:-1]),
    "seen_indptr decreasing": _set("seen_indptr", lambda a: a[::-1].copy()),
    "seen_items out of range": _set("seen_items", lambda a: a + 100),
    "seen_items negative": _set("seen_items", lambda a: a - 5),
    "seen_items floats": _set("seen_items", lambda a: a.astype(float)),
}


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "good.npz"
    make_model(np.array([1, 2, 3, 4], np.int64)).save(path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(bytes(arrays.pop("meta")).decode())


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_tampered_model_files_raise_value_error_naming_the_file(name, good_file, tmp_path):
    arrays, meta = good_file
    arrays, meta = dict(arrays), json.loads(json.dumps(meta))
    TAMPERINGS[name](arrays, meta)
    if "__raw__" in meta:
        raw = meta["__raw__"]
        arrays["meta"] = np.frombuffer(raw if isinstance(raw, bytes) else raw.encode(), np.uint8)
    elif "__array__" in meta:
        arrays["meta"] = meta["__array__"]
    else:
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    path = tmp_path / "tampered-model.npz"
    np.savez(path, **arrays)  # allow_pickle: the "object" tampering writes a pickled array
    with pytest.raises(ValueError, match="tampered-model.npz"):
        mfjax.load_model(path)


# ------------------------------------------------------------- untrusted npz members
def _add_member(path, name, dtype, shape, chunk=np.zeros(1 << 20, np.uint8)):
    """Append an npy member ``name`` of ``dtype``/``shape`` holding zeros, deflated."""
    import zipfile

    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": shape}
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as z, \
            z.open(name + ".npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, nbytes, chunk.size):
            f.write(chunk[:min(chunk.size, nbytes - start)].tobytes())


@pytest.mark.parametrize("member", ["junk", "params/user_factors"])
def test_a_small_file_with_a_huge_deflated_member_is_refused_without_inflating_it(member, tmp_path):
    import tracemalloc

    path = tmp_path / "bomb.npz"
    make_model(np.array([1, 2, 3, 4], np.int64)).save(path)
    if member != "junk":  # replace a member the format defines by 128 MB of zeros
        import zipfile

        with zipfile.ZipFile(path) as z:
            kept = {i.filename: z.read(i) for i in z.infolist() if i.filename != member + ".npy"}
        with zipfile.ZipFile(path, "w") as z:
            for name, data in kept.items():
                z.writestr(name, data)
    _add_member(path, member, np.float64, (1 << 24, 1))
    assert path.stat().st_size < 2 << 20  # 128 MB inflated
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="bomb.npz") as e:
            mfjax.load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak
    assert member in str(e.value) or "inflate" in str(e.value)


def test_a_member_whose_npy_header_disagrees_with_its_size_is_refused(tmp_path):
    import zipfile

    path = tmp_path / "lying.npz"
    make_model(np.array([1, 2, 3, 4], np.int64)).save(path)
    with zipfile.ZipFile(path) as z:
        kept = {i.filename: z.read(i) for i in z.infolist()}
    assert b"(4,)" in kept["params/user_bias.npy"]
    kept["params/user_bias.npy"] = kept["params/user_bias.npy"].replace(b"(4,)", b"(9,)")
    with zipfile.ZipFile(path, "w") as z:
        for name, blob in kept.items():
            z.writestr(name, blob)
    with pytest.raises(ValueError, match=r"lying.npz.*user_bias.*needs"):
        mfjax.load_model(path)


def test_a_model_recompressed_by_hand_still_loads(tmp_path):
    model = make_model(np.array([1, 2, 3, 4], np.int64))
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as z:
        np.savez_compressed(tmp_path / "small.npz", **{k: z[k] for k in z.files})
    assert mfjax.load_model(tmp_path / "small.npz").predict(2, 20) == model.predict(2, 20)


@pytest.mark.parametrize("text", ["user,item,rating\n1,2,3\n", "", "\x93NUMPY junk"])
def test_a_file_that_is_not_an_npz_gets_our_error_not_a_pickle_hint(text, tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match="ratings.csv is not a readable mfjax-model file") as e:
        mfjax.load_model(path)
    assert "pickle" not in str(e.value)


# ------------------------------------------------- custom optimizers; config agreement
def _tiny_ratings():
    return mfjax.datasets.synthetic(30, 20, 300, rank=2, seed=0)[0]


@pytest.mark.parametrize("spec, recorded", [
    (dict(optimizer="sgd", optimizer_name="my-sgd"), {"optimizer": "my-sgd"}),
    (dict(schedule="cosine", optimizer_name="adam-cosine"), {"schedule": "adam-cosine (schedule)"}),
])
def test_a_model_trained_with_a_custom_optimizer_or_schedule_saves_and_loads(spec, recorded,
                                                                            tmp_path):
    import optax

    objects = {"sgd": optax.sgd(0.01), "cosine": optax.cosine_decay_schedule(0.01, 10)}
    spec = {k: objects.get(v, v) for k, v in spec.items()}
    model = mfjax.fit(_tiny_ratings(), mfjax.MF(rank=2, epochs=1, **spec), progress=False)
    model.save(tmp_path / "m.npz")
    loaded = mfjax.load_model(tmp_path / "m.npz")
    for field, name in recorded.items():
        assert loaded.config[field] == {"recorded": name}
        assert getattr(loaded.spec, field) == mfjax.specs.Recorded(name)
    assert loaded.spec.optimizer_name == spec["optimizer_name"]
    assert loaded.predict(0, 1) == model.predict(0, 1)


def _spec_model(spec, rank=3):
    model = make_model(np.array([1, 2, 3, 4], np.int64), rank=rank)
    model.config = {**spec.to_dict(), "objective": spec.objective, "solver": spec.solver}
    return model


def _edited(config, **changes):
    config = dict(config)
    for k, v in changes.items():
        config.pop(k) if v is None else config.__setitem__(k, v)
    return config


CONFIG_EDITS = {  # name: (spec saved, edit of its config, words the error must hold)
    "iALS edited to the explicit objective": (mfjax.ImplicitALS(rank=3), dict(objective="explicit"),
                                              "objective"),
    "iALS without its objective": (mfjax.ImplicitALS(rank=3), dict(objective=None), "objective"),
    "ALS edited to model BPR": (mfjax.ALS(rank=3), dict(model="BPR"), "BPR"),
    "ALS edited to model MF": (mfjax.ALS(rank=3), dict(model="MF"), "solver"),
    "ALS edited to BayesianMF": (mfjax.ALS(rank=3), dict(model="BayesianMF", solver="gibbs"),
                                 "reg"),
    "rank 7 on rank-3 arrays": (mfjax.ALS(rank=3), dict(rank=7), "rank"),
    "a bogus objective": (mfjax.MF(rank=3, ensemble=1), dict(objective="bogus"), "objective"),
    "a legacy config with a list objective": (mfjax.MF(rank=3, ensemble=1), dict(model=None,
                                                                      objective=["explicit"]),
                                              "objective"),
    "a legacy config with list options": (mfjax.MF(rank=3, ensemble=1), dict(model=None, options=[1]),
                                          "options"),
}


@pytest.mark.parametrize("name", list(CONFIG_EDITS))
def test_a_config_that_disagrees_with_itself_or_the_arrays_is_refused_at_load(name, tmp_path):
    spec, changes, words = CONFIG_EDITS[name]
    model = _spec_model(spec)
    model.save(tmp_path / "m.npz")
    assert mfjax.load_model(tmp_path / "m.npz").spec == spec  # the unedited file loads
    with np.load(tmp_path / "m.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(bytes(arrays["meta"]))
    meta["config"] = _edited(meta["config"], **changes)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(tmp_path / "edited-model.npz", **arrays)
    with pytest.raises(ValueError, match="edited-model.npz") as e:
        mfjax.load_model(tmp_path / "edited-model.npz")
    assert words in str(e.value)


# --------------------------------------------- Gibbs posteriors: the samples' row priors
PRIORS = ("user_prior_mean", "user_prior_prec", "item_prior_mean", "item_prior_prec")


@pytest.fixture(scope="module")
def gibbs():
    r = mfjax.datasets.synthetic(60, 40, 1500, rank=3, noise=0.3, seed=4)[0]
    return mfjax.fit(r, mfjax.BayesianMF(rank=2, burn_in=3, samples=3), progress=False), r


def _members(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _same_model(a, b):
    for x, y in zip(a.params, b.params):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert sorted(a.posterior) == sorted(b.posterior)
    for k in a.posterior:
        np.testing.assert_array_equal(a.posterior[k], b.posterior[k])


@pytest.mark.parametrize("side", ["users", "items"])
def test_gibbs_partial_fit_after_save_and_load_equals_partial_fit_without(gibbs, side, tmp_path):
    model, r = gibbs
    model.save(tmp_path / "g.npz")
    back = mfjax.load_model(tmp_path / "g.npz")
    assert set(PRIORS) <= set(back.posterior)
    hist = r.subset(r.users < 20) if side == "users" else r.subset(r.items < 10)
    _same_model(getattr(back, f"partial_fit_{side}")(hist),
                getattr(model, f"partial_fit_{side}")(hist))


def test_an_old_gibbs_file_without_priors_loads_and_refreshes_with_the_ridge(gibbs, tmp_path):
    from mfjax.models.bayesian_mf.parts import FOLD_IN_REG

    model, r = gibbs
    model.save(tmp_path / "g.npz")
    arrays = _members(tmp_path / "g.npz")
    for k in PRIORS:  # as written before the priors were kept
        del arrays[f"posterior/{k}"]
    np.savez(tmp_path / "old.npz", **arrays)
    old = mfjax.load_model(tmp_path / "old.npz")
    assert not set(PRIORS) & set(old.posterior)
    hist = r.subset(r.users < 20)
    with pytest.warns(UserWarning, match="ridge.*no prior hyperparameters") as caught:
        out = old.partial_fit_users(hist)
    assert len(caught) == 1  # one warning for the call, not one per row
    mine = hist.users == 7
    p, b = model.fold_in(hist.item_ids[hist.items[mine]], hist.ratings[mine], reg=FOLD_IN_REG,
                         bias_reg=FOLD_IN_REG)  # the ridge, as documented
    np.testing.assert_allclose(np.asarray(out.params.user_factors)[7], p, rtol=1e-6, atol=1e-9)
    assert float(out.params.user_bias[7]) == pytest.approx(b, abs=1e-9)
    np.testing.assert_array_equal(out.posterior["user_bias"][:, 7], b)  # b in every sample
    with pytest.warns(UserWarning, match="no prior hyperparameters"):
        old.fold_in(hist.item_ids[hist.items[mine]], hist.ratings[mine])
    with pytest.warns(UserWarning, match="no prior hyperparameters"):
        old.partial_fit_items(r.subset(r.items < 5))


def _indefinite(a):
    a = a.copy()
    a[0] = -a[0]
    return a


def _asymmetric(a):
    a = a.copy()
    a[0, 0, 1] += 1.0
    return a


PRIOR_EDITS = {  # name: (member, edit, words the error must hold)
    "one prior left out": ("posterior/item_prior_prec", None, "all or none"),
    "an indefinite precision": ("posterior/user_prior_prec", _indefinite, "positive definite"),
    "an asymmetric precision": ("posterior/item_prior_prec", _asymmetric, "symmetric"),
    "a prior mean of the wrong width": ("posterior/user_prior_mean", lambda a: a[:, :-1],
                                        "shape"),
    "a NaN prior mean": ("posterior/item_prior_mean", lambda a: a * np.nan, "finite"),
}


@pytest.mark.parametrize("name", list(PRIOR_EDITS))
def test_tampered_gibbs_priors_are_refused_at_load(gibbs, name, tmp_path):
    member, edit, words = PRIOR_EDITS[name]
    gibbs[0].save(tmp_path / "g.npz")
    arrays = _members(tmp_path / "g.npz")
    if edit is None:
        del arrays[member]
    else:
        arrays[member] = edit(arrays[member])
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="bad.npz") as e:
        mfjax.load_model(tmp_path / "bad.npz")
    assert words in str(e.value)
