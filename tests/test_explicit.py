"""fit(solver="als" | "gibbs") for explicit ratings (mfjax.solvers.als.solver), float64."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfjax
from mfjax.objectives.explicit import Params
from test_checkpoint import Stop, stop_at
from mfjax.solvers.gibbs.chain import predictive_std
from mfjax.solvers.gibbs.solver import sample_plan


@pytest.fixture(scope="module")
def planted():
    """The issue's planted problem: 600 x 400, 60,000 ratings, rank 5, noise 0.3."""
    ratings, _ = mfjax.datasets.synthetic(600, 400, 60_000, rank=5, noise=0.3, seed=3)
    return mfjax.split.holdout(ratings, 0.2, seed=0)


@pytest.fixture(scope="module")
def small():
    ratings, _ = mfjax.datasets.synthetic(120, 80, 3000, rank=3, noise=0.3, seed=1)
    return mfjax.split.holdout(ratings, 0.2, seed=0)


def gibbs(train, **kw):
    return mfjax.fit(train, solver="gibbs", progress=False, **{"rank": 3, "burn_in": 3,
                                                               "samples": 5, **kw})


# ------------------------------------------------------------------------------ ALS
@pytest.mark.timeout(120)
def test_als_loss_never_increases_and_items_are_stationary(small):
    train, _ = small
    reg, bias_reg = 0.05, 0.02
    m = mfjax.fit(train, solver="als", rank=4, reg=reg, bias_reg=bias_reg, epochs=10,
                  progress=False)
    loss = [h["loss"] for h in m.history]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(loss, loss[1:])), loss
    u, i, r = (jnp.asarray(x) for x in (train.users, train.items, train.ratings))
    full = mfjax.loss(m.params, u, i, r, reg=reg, bias_reg=bias_reg)
    np.testing.assert_allclose(loss[-1], float(full) / len(train), rtol=1e-10)
    # The last step was μ's exact one: ∂L/∂μ = 0. (The user and item half-steps zero their
    # own gradients before μ moves: tests/test_als.py::test_half_steps_zero_the_gradient.)
    g = jax.grad(lambda p: mfjax.loss(p, u, i, r, reg=reg, bias_reg=bias_reg))(m.params)
    assert abs(float(g.global_bias)) < 1e-9 * len(train)


@pytest.mark.timeout(120)
def test_als_recovers_a_noiseless_low_rank_model():
    ratings, _ = mfjax.datasets.synthetic(150, 100, 8000, rank=3, noise=0.0, seed=2)
    train, test = mfjax.split.holdout(ratings, 0.2, seed=0)
    m = mfjax.fit(train, solver="als", rank=3, reg=1e-6, bias_reg=1e-6, epochs=60, progress=False)
    assert mfjax.evaluate(m, train)["rmse"] < 1e-3
    assert mfjax.evaluate(m, test)["rmse"] < 1e-2


# ---------------------------------------------------------------------------- Gibbs
@pytest.mark.timeout(300)
def test_defaults_reach_the_noise_floor_on_the_planted_problem(planted):
    train, test = planted
    m = mfjax.fit(train, progress=False)            # no tuning: Gibbs at this size
    assert m.config["solver"] == "gibbs" and isinstance(m.spec, mfjax.BayesianMF)
    rmse = mfjax.evaluate(m, test)["rmse"]
    assert rmse <= 1.15 * 0.3, rmse
    # The sampled noise precision is near 1/noise² (residuals a little under the noise).
    taus = m.posterior["tau"]
    assert 0.9 / 0.09 <= float(np.mean(taus)) <= 1.3 / 0.09
    S = m.config["gibbs_kept"]
    assert m.params.rank == S * m.config["rank"] and taus.shape == (S,)


@pytest.mark.timeout(120)
def test_gibbs_same_seed_same_model(small):
    train, _ = small
    a, b, c = gibbs(train, seed=4), gibbs(train, seed=4), gibbs(train, seed=5)
    for x, y in zip(a.params, b.params):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.params.user_factors, c.params.user_factors)


@pytest.mark.timeout(120)
def test_return_std_is_the_spread_of_the_samples(small):
    train, test = small
    m = gibbs(train)
    post, S, k = m.posterior, m.config["gibbs_kept"], m.config["rank"]
    ru, ri = test.user_ids[test.users], test.item_ids[test.items]
    pred, std = m.predict(ru, ri, return_std=True, clip=False)
    assert std.shape == pred.shape == (len(test),) and (std > 0).all()
    # Direct: rebuild the S samples from the factor blocks (each scaled by 1/√S).
    blocks = lambda F: np.transpose(np.asarray(F).reshape(F.shape[0], S, k), (1, 0, 2)) * np.sqrt(S)
    stacked = Params(blocks(m.params.user_factors), blocks(m.params.item_factors),
                     post["user_bias"], post["item_bias"], post["global_bias"])
    u, i = test.users, test.items
    np.testing.assert_allclose(std, predictive_std(stacked, u, i, taus=post["tau"]), rtol=1e-9)
    per = [mfjax.predict(Params(*(f[s] for f in stacked)), u, i) for s in range(S)]
    np.testing.assert_allclose(pred, np.mean(per, 0), rtol=1e-9)
    # Scalars, and a model without samples refuses.
    p1, s1 = m.predict(ru[0], ri[0], return_std=True)
    assert isinstance(s1, float) and s1 > 0
    with pytest.raises(ValueError, match="Gibbs"):
        mfjax.fit(train, solver="als", rank=2, epochs=1, progress=False).predict(
            ru, ri, return_std=True)


@pytest.mark.timeout(120)
def test_save_load_keeps_return_std(small, tmp_path):
    train, test = small
    m = gibbs(train)
    m.save(tmp_path / "m.npz")
    m2 = mfjax.load_model(tmp_path / "m.npz")
    ru, ri = test.user_ids[test.users], test.item_ids[test.items]
    for x, y in zip(m.predict(ru, ri, return_std=True), m2.predict(ru, ri, return_std=True)):
        np.testing.assert_array_equal(x, y)
    # A tampered posterior is refused on load.
    z = dict(np.load(tmp_path / "m.npz"))
    z["posterior/tau"] = -z["posterior/tau"]
    np.savez(tmp_path / "bad.npz", **z)
    with pytest.raises(ValueError, match="posterior"):
        mfjax.load_model(tmp_path / "bad.npz")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("solver,kw,scale,match", [
    ("als", dict(reg=0.0), 1.0, r"sweep 1 .*reg=0.*use reg > 0"),
    ("als", dict(reg=1e-9), 1e30, r"ill-conditioned.*rescale the ratings"),
])
def test_non_finite_sweeps_name_the_cause(solver, kw, scale, match):
    rng = np.random.default_rng(0)
    pairs = rng.choice(15 * 12, 60, replace=False)
    r = mfjax.Ratings.from_arrays(pairs // 12, pairs % 12, rng.integers(1, 6, 60) * scale)
    with pytest.raises(ValueError, match=match):
        mfjax.fit(r, solver=solver, rank=8, progress=False, **kw)


def test_non_finite_gibbs_sweep_names_the_ratings_size():
    # (in float64, as here, Gibbs handles 1e30 ratings; in float32 their squares overflow)
    from mfjax.solvers.finite import check_sweep

    check_sweep("gibbs", 3, 1.5, np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"gibbs.*sweep 3.*ratings from 1e\+30 to 5e\+30.*rescale"):
        check_sweep("gibbs", 3, float("inf"), np.array([1e30, 5e30], np.float32))


@pytest.mark.parametrize("keep", [slice(0, 2), slice(2, 4)])
def test_truncated_posterior_is_refused_on_load(small, tmp_path, keep):
    from mfjax.solvers.gibbs.posterior import check_posterior

    m = gibbs(small[0], samples=4)
    m.save(tmp_path / "m.npz")
    z = dict(np.load(tmp_path / "m.npz"))
    assert z["posterior/tau"].shape == (4,)
    for k in ("user_bias", "item_bias", "global_bias", "tau"):  # 2 of the 4 samples
        z[f"posterior/{k}"] = z[f"posterior/{k}"][keep]
    np.savez(tmp_path / "cut.npz", **z)
    with pytest.raises(ValueError, match="truncated"):
        mfjax.load_model(tmp_path / "cut.npz")
    # without the config's sample count, the sample means still differ from the model's
    with pytest.raises(ValueError, match="mean over the posterior's 2 samples"):
        check_posterior(z, m.params, "m.npz", config=None)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("solver,kw", [("als", dict(rank=3, reg=0.05, epochs=6)),
                                       ("gibbs", dict(rank=3, burn_in=2, samples=4))])
def test_resume_equals_uninterrupted(small, tmp_path, solver, kw):
    train, _ = small
    full = mfjax.fit(train, solver=solver, progress=False, **kw)
    with pytest.raises(Stop):
        mfjax.fit(train, solver=solver, progress=False, checkpoint_dir=tmp_path,
                  callbacks=[stop_at(3)], **kw)
    resumed = mfjax.fit(train, solver=solver, progress=False, checkpoint_dir=tmp_path,
                        resume=True, **kw)
    assert len(resumed.history) == len(full.history)
    for x, y in zip(full.params, resumed.params):
        np.testing.assert_array_equal(x, y)
    if solver == "gibbs":
        for key in full.posterior:
            np.testing.assert_array_equal(full.posterior[key], resumed.posterior[key])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("rank", [8, 32])
def test_short_sweep_loop_finishes(small, rank):
    """jaxlib 0.10's batched-LAPACK deadlock hung sweeps at ranks >= 30: a short loop ends."""
    train, _ = small
    m = gibbs(train, rank=rank, burn_in=5, samples=5)
    assert np.isfinite(m.history[-1]["loss"])
    m = mfjax.fit(train, solver="als", rank=rank, reg=0.1, epochs=10, progress=False)
    assert np.isfinite(m.history[-1]["loss"])


# ------------------------------------------------------------------ budget
@pytest.mark.parametrize("samples,budget,want", [(80, 1 << 30, (1, 80)), (80, 10 * 65 * 4 * 100, (8, 10)),
                                                 (5, 1, (5, 1))])
def test_sample_plan_thins_to_the_budget(samples, budget, want):
    assert sample_plan(samples, 100, 64, 4, budget) == want


@pytest.mark.timeout(120)
def test_gibbs_options_only_for_gibbs(small):
    train, _ = small
    with pytest.raises(TypeError, match="'burn_in' does not apply to ALS"):
        mfjax.fit(train, solver="als", burn_in=3, progress=False)
