"""Model specs (mfjax.specs) and fit's spec contract: validation, shorthand, round trips."""

import dataclasses
import json

import numpy as np
import optax
import pytest

import mfjax
from mfjax.models import SPECS, default_record, spec_from_dict
from mfjax.models.bayesian_mf import GIBBS_MAX_RATINGS
from mfjax.specs import Recorded


def default_spec(train):
    return default_record(train).spec()

ALL = [mfjax.MF, mfjax.ALS, mfjax.BayesianMF, mfjax.BayesianFM, mfjax.FM, mfjax.ImplicitALS, mfjax.BPR,
       mfjax.LogisticMF]


@pytest.fixture(scope="module")
def ratings():
    r, _ = mfjax.datasets.synthetic(60, 40, 1200, rank=3, noise=0.3, seed=0)
    return r


@pytest.fixture(scope="module")
def clicks():
    rng = np.random.default_rng(1)
    key = np.unique(rng.integers(0, 60 * 40, 900))
    return mfjax.Ratings.from_arrays(key // 40, key % 40, np.ones(key.size))


# ------------------------------------------------------------------ the dataclass contract
@pytest.mark.parametrize("cls", ALL)
def test_specs_are_frozen_hashable_comparable_and_replaceable(cls):
    a, b = cls(), cls()
    assert a == b and hash(a) == hash(b) and repr(a).startswith(cls.__name__ + "(")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.rank = 3
    c = dataclasses.replace(a, rank=4)
    assert c.rank == 4 and c != a and a.rank == cls().rank
    assert {a: 1}[b] == 1


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("field,bad,error", [
    ("rank", -3, ValueError), ("rank", 0, ValueError), ("rank", 1.5, TypeError),
    ("rank", "3", TypeError), ("rank", True, TypeError), ("rank", 10 ** 9, ValueError),
    ("init_scale", 0.0, ValueError), ("init_scale", float("nan"), ValueError),
    ("init_scale", "x", TypeError),
])
def test_every_spec_validates_its_common_fields_naming_them(cls, field, bad, error):
    with pytest.raises(error, match=f"{cls.__name__}: {field}"):
        cls(**{field: bad})


@pytest.mark.parametrize("cls,field,bad", [
    (mfjax.MF, "reg", -1.0), (mfjax.MF, "reg", float("inf")), (mfjax.MF, "epochs", 0),
    (mfjax.MF, "optimizer", "adamm"), (mfjax.MF, "gradient", "fast"), (mfjax.MF, "sort_by", "x"),
    (mfjax.MF, "ensemble", 3), (mfjax.MF, "batch_size", 0), (mfjax.MF, "learning_rate", 0.0),
    (mfjax.ALS, "reg", -0.1), (mfjax.ALS, "kernel", "yes"), (mfjax.ALS, "epochs", -1),
    (mfjax.BayesianMF, "burn_in", -1), (mfjax.BayesianMF, "samples", 0),
    (mfjax.BayesianFM, "implicit_features", 1), (mfjax.BayesianFM, "rank", 0),
    (mfjax.BayesianFM, "kernel", "yes"),
    (mfjax.ImplicitALS, "alpha", -5.0), (mfjax.ImplicitALS, "nu", 50.0),
    (mfjax.ImplicitALS, "unobserved_weight", -1.0), (mfjax.ImplicitALS, "cg_steps", -2),
    (mfjax.ImplicitALS, "cg_steps", 65), (mfjax.ImplicitALS, "solver", "gibbs"),
    (mfjax.BPR, "batch_size", 0), (mfjax.BPR, "reg", float("nan")),
])
def test_bad_values_fail_at_construction_naming_the_field(cls, field, bad):
    with pytest.raises((TypeError, ValueError), match=field):
        cls(**{field: bad})


def _float_fields(cls):
    """The fields of ``cls`` that take a real number (they accept 0.5)."""
    out = []
    for f in cls.field_names():
        try:
            cls(**{f: 0.5})
        except (TypeError, ValueError):
            continue
        out.append(f)
    return out


@pytest.mark.parametrize("cls", ALL)
def test_a_huge_int_in_a_float_field_is_a_value_error_naming_it(cls):
    fields = _float_fields(cls)
    assert "init_scale" in fields
    for f in fields:
        with pytest.raises(ValueError, match=f"{cls.__name__}: {f} .*finite"):
            cls(**{f: 10 ** 400})


@pytest.mark.parametrize("cls,field,value", [
    (mfjax.BayesianMF, "burn_in", 1.5), (mfjax.BayesianMF, "samples", "3"),
    (mfjax.BayesianMF, "samples", True), (mfjax.ImplicitALS, "cg_steps", 2 ** 63),
])
def test_integers_are_never_truncated(cls, field, value):
    with pytest.raises((TypeError, ValueError), match=field):
        cls(**{field: value})


def test_numpy_scalars_become_plain_python_values():
    s = mfjax.ImplicitALS(rank=np.int64(8), cg_steps=np.int32(3), alpha=np.float32(2.0))
    assert type(s.rank) is int and type(s.cg_steps) is int and type(s.alpha) is float
    json.dumps(s.to_dict())


def test_fields_that_do_not_apply_to_the_solver_are_refused():
    with pytest.raises(ValueError, match="solver='optax' only"):
        mfjax.ImplicitALS(learning_rate=0.1)
    with pytest.raises(ValueError, match="solver='als' only"):
        mfjax.ImplicitALS(solver="optax", cg_steps=3)
    with pytest.raises(ValueError, match="learning_rate/schedule apply to optimizer names"):
        mfjax.MF(optimizer=optax.sgd(0.1), learning_rate=0.1)
    with pytest.raises(ValueError, match="both given"):
        mfjax.BPR(learning_rate=0.1, schedule=optax.constant_schedule(0.1))


@pytest.mark.parametrize("cls", ALL)
def test_to_dict_round_trips(cls):
    spec = cls(rank=8) if cls is not mfjax.MF else cls(rank=8, ensemble=2)
    assert spec_from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert set(SPECS) == {c.__name__ for c in ALL}


def test_a_custom_optimizer_is_recorded_by_name():
    spec = mfjax.MF(optimizer=optax.sgd(0.1), optimizer_name="my-sgd")
    back = spec_from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back.optimizer == Recorded("my-sgd")


# ----------------------------------------------------------------------- fit's contract
def test_default_spec_depends_on_the_data_alone(ratings, clicks):
    assert type(default_spec(ratings)) is mfjax.BayesianMF
    assert type(default_spec(clicks)) is mfjax.ImplicitALS
    big = mfjax.Ratings(np.zeros(GIBBS_MAX_RATINGS + 1, np.int32),
                        np.zeros(GIBBS_MAX_RATINGS + 1, np.int32),
                        np.full(GIBBS_MAX_RATINGS + 1, 3.0, np.float32), None, [0], [0])
    assert type(default_spec(big)) is mfjax.MF


@pytest.mark.timeout(300)
def test_fit_and_fit_with_a_keyword_use_the_same_model_class(ratings):
    a = mfjax.fit(ratings, burn_in=1, samples=2, progress=False)
    b = mfjax.fit(ratings, rank=4, burn_in=1, samples=2, progress=False)
    assert type(a.spec) is type(b.spec) is mfjax.BayesianMF and b.spec.rank == 4
    with pytest.raises(TypeError, match="'reg' does not apply to BayesianMF.*its fields are rank"):
        mfjax.fit(ratings, reg=0.05, progress=False)


@pytest.mark.parametrize("shorthand,keyword", [
    (dict(solver="gibbs"), "learning_rate"), (dict(solver="als"), "learning_rate"),
    (dict(solver="optax"), "alpha"), (dict(objective="bpr"), "cg_steps"),
    (dict(objective="ials"), "batch_size"), (dict(solver="als"), "burn_in"),
])
def test_a_keyword_the_spec_lacks_is_a_type_error_naming_it(ratings, shorthand, keyword):
    with pytest.raises(TypeError, match=f"'{keyword}' does not apply to .*its fields are"):
        mfjax.fit(ratings, progress=False, **shorthand, **{keyword: 1})


def test_model_and_contradicting_shorthand_are_refused(ratings):
    with pytest.raises(ValueError, match="contradicts"):
        mfjax.fit(ratings, mfjax.ALS(), solver="gibbs", progress=False)
    with pytest.raises(ValueError, match="contradicts"):
        mfjax.fit(ratings, mfjax.MF(), objective="ials", progress=False)
    with pytest.raises(TypeError, match="model must be a spec"):
        mfjax.fit(ratings, "als", progress=False)
    with pytest.raises(ValueError, match="objective must be one of"):
        mfjax.fit(ratings, objective=["ials"], progress=False)


def test_fit_names_the_constructor_for_other_containers():
    scipy = pytest.importorskip("scipy.sparse")
    import pandas as pd

    with pytest.raises(TypeError, match="Ratings.from_csr"):
        mfjax.fit(scipy.csr_matrix(np.eye(3)))
    with pytest.raises(TypeError, match="Ratings.from_frame"):
        mfjax.fit(pd.DataFrame({"user": [0], "item": [0], "rating": [1.0]}))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("spec", [
    mfjax.MF(rank=4, epochs=2), mfjax.ALS(rank=3, epochs=2), mfjax.BayesianMF(rank=2, burn_in=1,
                                                                             samples=2),
])
def test_model_spec_is_resolved_and_survives_save_and_load(ratings, spec, tmp_path):
    m = mfjax.fit(ratings, spec, progress=False)
    assert type(m.spec) is type(spec) and m.spec.rank == spec.rank
    if isinstance(spec, mfjax.MF):
        assert m.spec.batch_size > 0 and m.spec.gradient == "autodiff" and m.spec.ensemble == 1
        assert m.spec.learning_rate == 0.01 and m.spec.sort_by in ("users", "items")
    if isinstance(spec, mfjax.ALS):
        assert m.spec.kernel in (True, False)
    m.save(tmp_path / "m.npz")
    assert mfjax.load_model(tmp_path / "m.npz").spec == m.spec
    # Only what applied is recorded.
    assert "optimizer" not in m.config or isinstance(spec, mfjax.MF)
    assert "alpha" not in m.config and "ensemble" not in m.config or isinstance(spec, mfjax.MF)
    # A resolved spec trains the same model again.
    again = mfjax.fit(ratings, m.spec, progress=False)
    for a, b in zip(m.params, again.params):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("spec", [mfjax.ImplicitALS(rank=4, epochs=2), mfjax.BPR(rank=4, epochs=2),
                                  mfjax.ImplicitALS(rank=4, epochs=2, solver="optax")])
def test_implicit_specs_resolve_and_round_trip(clicks, spec, tmp_path):
    m = mfjax.fit(clicks, spec, progress=False)
    if spec.solver == "als":
        assert m.spec.cg_steps == 3 and m.spec.kernel in (True, False)  # CPU default
    if isinstance(spec, mfjax.BPR):
        assert m.spec.learning_rate == mfjax.BPR.DEFAULT_LEARNING_RATE
    m.save(tmp_path / "m.npz")
    assert mfjax.load_model(tmp_path / "m.npz").spec == m.spec
    assert "batch_size" not in m.config or isinstance(spec, mfjax.BPR)


@pytest.mark.timeout(300)
def test_checkpoints_fingerprint_the_spec(ratings, tmp_path):
    spec = mfjax.ALS(rank=3, epochs=2)
    mfjax.fit(ratings, spec, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="differs in .*'reg'"):
        mfjax.fit(ratings, spec.replace(reg=0.5), checkpoint_dir=tmp_path, resume=True,
                  progress=False)
    m = mfjax.fit(ratings, spec.replace(epochs=3), checkpoint_dir=tmp_path, resume=True,
                  progress=False)
    assert len(m.history) == 3


@pytest.mark.parametrize("field,bad", [("alpha", -5.0), ("nu", 50.0), ("unobserved_weight", -1.0),
                                       ("alpha", "abc"), ("rank", 2.5)])
def test_a_model_file_with_invalid_hyperparameters_is_refused(clicks, tmp_path, field, bad):
    m = mfjax.fit(clicks, mfjax.ImplicitALS(rank=2, epochs=1), progress=False)
    m.save(tmp_path / "m.npz")
    z = dict(np.load(tmp_path / "m.npz"))
    meta = json.loads(z["meta"].tobytes())
    meta["config"][field] = bad
    z["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(tmp_path / "bad.npz", **z)
    with pytest.raises(ValueError, match=f"bad.npz.*{field}"):
        mfjax.load_model(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match=field):
        mfjax.Model(m.params, m.user_ids, m.item_ids, m.rating_range,
                    {**m.config, field: bad}).save(tmp_path / "again.npz")
