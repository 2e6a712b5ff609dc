"""mfjax.FM (#27 item 3): the FM over relation blocks, its hand-written gradient, training
with and without features, serving IDs from features, persistence, refusals, meshes.

float64 (tests/conftest.py enables x64 and makes rank promotion raise).
"""
import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

import mfjax
from mfjax.evaluation.gradcheck import check_gradient_terms
from mfjax.models.bayesian_fm.fm import fm_predict_pairwise
from mfjax.models.fm.objective import (OBJECTIVE, FMParams, Layout, compose, loss, manual_grad,
                                       side_rows)
from mfjax.objectives.explicit import predict

N_USERS, N_ITEMS, GU, GI = 300, 120, 6, 5


def small_problem(seed=0, n_users=6, n_items=7, du=4, di=3, k=3, n=40):
    """A layout with attribute columns, some rows their features alone (mask 0), a
    float64 θ and n ratings."""
    rng = np.random.default_rng(seed)
    X = [sp.random(m, d, density=0.5, random_state=rng, format="csr") for m, d in
         ((n_users, du), (n_items, di))]
    masks = [np.arange(n_users) % 3 != 0, np.arange(n_items) % 4 != 0]
    layout = jax.tree.map(jnp.asarray, Layout(*(side_rows(x, m, np.float64)
                                                for x, m in zip(X, masks))))
    draw = lambda *s: jnp.asarray(0.5 * rng.normal(size=s))
    theta = FMParams(draw(n_users, k), draw(n_items, k), draw(n_users), draw(n_items), draw(),
                     draw(du, k), draw(di, k), draw(du), draw(di))
    users, items = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    ratings = rng.normal(3.0, 1.0, n)
    return X, masks, layout, theta, jnp.asarray(users), jnp.asarray(items), jnp.asarray(ratings)


def test_composed_prediction_is_the_fm_of_the_design_row():
    """compose + predict == the FM of [e_u | x_u | e_i | x_i] with the cross pairs only."""
    X, masks, layout, t, users, items, _ = small_problem()
    nu, ni = t.user_factors.shape[0], t.item_factors.shape[0]
    Xu = np.hstack([np.diag(masks[0].astype(float)), X[0].toarray()])
    Xi = np.hstack([np.diag(masks[1].astype(float)), X[1].toarray()])
    design = np.hstack([Xu[users], Xi[items]])
    w = np.concatenate([t.user_bias, t.user_feature_weights, t.item_bias, t.item_feature_weights])
    V = np.vstack([t.user_factors, t.user_feature_factors, t.item_factors, t.item_feature_factors])
    Du = Xu.shape[1]
    side = np.arange(design.shape[1]) >= Du
    cross = side[:, None] != side[None, :]
    want = fm_predict_pairwise(design, float(t.global_bias), w, V, pairs=cross)
    got = jax.jit(lambda th: predict(compose(th, layout), users, items))(t)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_hand_gradient_equals_jax_grad():
    """Weighted ratings (padding's ω = 0 included), rows with mask 0, both penalties."""
    *_, layout, theta, users, items, ratings = small_problem(1)
    w = jnp.asarray(np.random.default_rng(2).uniform(0, 2, len(users)) * (np.arange(40) % 5 > 0))
    kw = dict(reg=0.3, bias_reg=0.1, weights=w)
    both = jax.jit(lambda th: (jax.grad(lambda t: loss(t, layout, users, items, ratings, **kw))(th),
                               manual_grad(th, layout, users, items, ratings, **kw)))
    auto, hand = both(theta)  # one compile for both
    for name, a, h in zip(theta._fields, auto, hand):
        np.testing.assert_allclose(h, a, rtol=1e-10, atol=1e-12, err_msg=name)


# jax.grad vs finite differences vs check_grads (order 2) compile for 10-20 s: the slow run.
# The default run has the jitted comparison above and the contract's verify_gradients.
@pytest.mark.slow
def test_hand_gradient_passes_every_witness_with_attribute_features():
    *_, layout, theta, users, items, ratings = small_problem(3)

    def terms(u, i, r, negatives, hyper):
        kw = dict(reg=hyper["reg"], bias_reg=hyper["bias_reg"])
        return (lambda th: loss(th, layout, u, i, r, **kw),
                lambda th: manual_grad(th, layout, u, i, r, **kw))

    objective = dataclasses.replace(OBJECTIVE, gradient_terms=terms)
    report = check_gradient_terms(objective, theta, users, items, ratings, None,
                                  {"reg": 0.2, "bias_reg": 0.05}, order=2)
    assert report.ok, str(report)


@pytest.mark.slow
def test_verify_gradients_with_implicit_blocks_at_order_2():
    r, _ = mfjax.datasets.synthetic(30, 20, 300, rank=3, noise=0.3, seed=0)
    report = mfjax.verify_gradients(mfjax.FM(rank=3, reg=0.2, bias_reg=0.05),
                                    r.subset(np.arange(60)), order=2, seed=2)
    assert report.ok and report.manual_vs_numerical is not None, str(report)


def planted(seed=0, per_user=6):
    """Ratings r = 3 + A[group(u), group(i)] + noise, ~per_user ratings a user; the
    group one-hots are the features (they carry all the signal)."""
    rng = np.random.default_rng(seed)
    gu, gi = rng.integers(0, GU, N_USERS), rng.integers(0, GI, N_ITEMS)
    A = rng.normal(0, 1.0, (GU, GI))
    u = np.repeat(np.arange(N_USERS), per_user)
    i = np.concatenate([rng.choice(N_ITEMS, per_user, replace=False) for _ in range(N_USERS)])
    r = 3 + A[gu[u], gi[i]] + rng.normal(0, 0.3, len(u))
    ratings = mfjax.Ratings.from_arrays(u, i, r)
    F = mfjax.Features.from_csr(users=(np.arange(N_USERS), np.eye(GU)[gu]),
                                items=(np.arange(N_ITEMS), np.eye(GI)[gi]))
    return ratings, F, gu


SPEC = dict(rank=4, epochs=12, batch_size=512, learning_rate=0.05, reg=0.02)


@pytest.fixture(scope="module")
def cold():
    """Users held out entirely: their features are in F, their ratings are the test set."""
    ratings, F, gu = planted(0)
    train, test = mfjax.split.cold_users(ratings, 0.2, seed=0)
    model = mfjax.fit(train, mfjax.FM(**SPEC), features=F, progress=False)
    return ratings, F, gu, train, test, model


@pytest.mark.slow
def test_features_improve_rmse_on_planted_data():
    ratings, F, _ = planted(1)
    train, test = mfjax.split.holdout(ratings, 0.2, seed=0)
    ids = mfjax.evaluate(mfjax.fit(train, mfjax.FM(**SPEC), progress=False), test)["rmse"]
    feats = mfjax.evaluate(mfjax.fit(train, mfjax.FM(**SPEC), features=F, progress=False),
                           test)["rmse"]
    imp = mfjax.evaluate(mfjax.fit(train, mfjax.FM(**SPEC, implicit_features=True), features=F,
                                   progress=False), test)["rmse"]
    assert feats < 0.8 * ids and imp < 0.8 * ids, (ids, feats, imp)


def test_cold_users_are_scored_from_their_features(cold):
    ratings, F, gu, train, test, model = cold
    assert len(model.user_ids) == N_USERS  # the held-out users joined the table as rows
    u, i = test.user_ids[test.users], test.item_ids[test.items]
    rmse = np.sqrt(np.mean((model.predict(u, i) - test.ratings) ** 2))
    p = model.params
    rows = {x: j for j, x in enumerate(model.item_ids)}
    fallback = float(p.global_bias) + np.asarray(p.item_bias)[[rows[x] for x in i]]
    base = np.sqrt(np.mean((np.clip(fallback, 1, 5) - test.ratings) ** 2))
    assert rmse < 0.7 * base, (rmse, base)


def test_a_new_user_after_fit_is_its_twins_prediction(cold):
    """A user unknown at fit, given later with features, is scored like a held-out
    (feature-only) user with the same features, by predict(features=) and partial_fit."""
    ratings, F, gu, train, test, model = cold
    twin = int(test.user_ids[test.users[0]])
    new = mfjax.Features.from_csr(users=(np.array([10_000]), np.eye(GU)[[gu[twin]]]))
    items = model.item_ids[:7]
    want = model.predict(np.full(7, twin), items)
    np.testing.assert_allclose(model.predict(np.full(7, 10_000), items, features=new), want,
                               atol=1e-5)
    grown = model.partial_fit_users(features=new)
    np.testing.assert_allclose(grown.predict(np.full(7, 10_000), items), want, atol=1e-5)


def test_save_load_round_trip(cold, tmp_path):
    *_, model = cold
    model.save(str(tmp_path / "m"))
    back = mfjax.load_model(str(tmp_path / "m"))
    u, i = np.repeat(model.user_ids[:5], 4), np.tile(model.item_ids[:4], 5)
    np.testing.assert_array_equal(back.predict(u, i), model.predict(u, i))
    assert back.spec == model.spec
    assert back.features.users.n_rows == model.features.users.n_rows == N_USERS


@pytest.mark.slow  # a compile of its own (the contract tests fit FM without features by default)
def test_fit_without_features_is_biased_mf_shaped():
    ratings, _, _ = planted(2, per_user=4)
    model = mfjax.fit(ratings, mfjax.FM(rank=3, epochs=2, implicit_features=True),
                      progress=False)
    assert model.params.user_factors.shape == (N_USERS, 3) and model.features is None
    assert model.config["feature_columns"] == [N_ITEMS, N_USERS]
    assert np.isfinite(model.history[-1]["loss"])


@pytest.mark.parametrize("field, value, error", [
    ("rank", 0, ValueError), ("reg", -1.0, ValueError), ("epochs", 0, ValueError),
    ("implicit_features", 1, TypeError), ("batch_size", 0, ValueError),
    ("init_scale", 0.0, ValueError), ("optimizer", "nope", ValueError)])
def test_bad_fields_are_refused_naming_the_field(field, value, error):
    with pytest.raises(error, match=field):
        mfjax.FM(**{field: value})


def test_bad_inputs_are_refused():
    ratings, F, _ = planted(3, per_user=2)
    with pytest.raises(TypeError, match="Features"):
        mfjax.fit(ratings, mfjax.FM(rank=2, epochs=1), features={"users": 1}, progress=False)
    with pytest.raises(ValueError, match="learning_rate"):
        mfjax.FM(learning_rate=0.1, schedule=lambda step: 0.1)
    with pytest.raises(TypeError, match="has no field"):
        mfjax.FM().replace(alpha=1.0)


MESH_SCRIPT = r"""
import json, sys
import numpy as np, jax
import mfjax
r, _ = mfjax.datasets.synthetic(60, 40, 1500, rank=3, noise=0.3, seed=0)
spec = mfjax.FM(rank=3, epochs=3, batch_size=250, implicit_features=True)
one = mfjax.fit(r, spec, progress=False)
two = mfjax.fit(r, spec, mesh=mfjax.distributed.make_mesh(2), progress=False)
err = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(one.params, two.params))
json.dump({"err": err, "devices": len(jax.devices())}, open(sys.argv[1], "w"))
"""


@pytest.mark.slow
def test_a_two_device_mesh_trains_the_same_model(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = tmp_path / "report.json"
    p = subprocess.run([sys.executable, "-c", MESH_SCRIPT, str(out)], capture_output=True,
                       text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["devices"] == 2 and report["err"] < 1e-4, report
