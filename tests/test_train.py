"""fit: convergence, gradient routes, resume, early stopping, failures."""

import math

import numpy as np
import optax
import pytest

import mfjax
from mfjax import split


@pytest.fixture(scope="module")
def planted():
    ratings, truth = mfjax.datasets.synthetic(300, 200, 30_000, rank=4, noise=0.5, seed=1)
    train, test = split.holdout(ratings, 0.2, seed=0)
    return train, test


FAST = dict(solver="optax", rank=8, reg=0.02, bias_reg=0.0, epochs=12, batch_size=1024, progress=False)


def test_fit_reaches_the_noise_floor(planted):
    train, test = planted
    model = mfjax.fit(train, validation=test, **FAST)
    rmse = mfjax.evaluate(model, test)["rmse"]
    assert rmse <= 1.15 * 0.5, rmse
    hist = model.history
    assert len(hist) == 12 and hist[-1]["val_rmse"] < hist[0]["val_rmse"]
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert all(set(h) >= {"epoch", "loss", "val_rmse", "val_mae", "seconds"} for h in hist)
    assert math.isclose(hist[-1]["val_rmse"], rmse, rel_tol=1e-4)


def test_global_bias_starts_at_the_training_mean(planted):
    train, _ = planted
    model = mfjax.fit(train, **{**FAST, "epochs": 1}, learning_rate=1e-12)
    assert abs(float(model.params.global_bias) - train.mean) < 1e-4


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adagrad", "rmsprop"])
def test_autodiff_and_manual_gradients_give_the_same_trajectory(planted, optimizer):
    train, _ = planted
    kw = {**FAST, "epochs": 3, "optimizer": optimizer}
    if optimizer == "sgd":
        kw["learning_rate"] = 1e-4
    a = mfjax.fit(train, gradient="autodiff", **kw)
    m = mfjax.fit(train, gradient="manual", **kw)
    for x, y in zip(a.params, m.params):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5)
    for ha, hm in zip(a.history, m.history):
        assert math.isclose(ha["loss"], hm["loss"], rel_tol=1e-5)


def test_same_seed_same_result_other_seed_differs(planted):
    train, _ = planted
    a = mfjax.fit(train, seed=3, **{**FAST, "epochs": 2})
    b = mfjax.fit(train, seed=3, **{**FAST, "epochs": 2})
    c = mfjax.fit(train, seed=4, **{**FAST, "epochs": 2})
    np.testing.assert_array_equal(a.params.user_factors, b.params.user_factors)
    assert not np.allclose(a.params.user_factors, c.params.user_factors)


@pytest.mark.slow
def test_batch_size_not_dividing_the_data_uses_every_rating(planted):
    # With one epoch of plain SGD at a tiny rate, the total update is the full-batch
    # gradient; padding (weight 0) must neither add nor drop ratings.
    train, _ = planted
    n = len(train)
    lr = 1e-7
    model = mfjax.fit(train, solver="optax", optimizer="sgd", learning_rate=lr, batch_size=n // 3 + 7, epochs=1,
                      rank=4, reg=0.1, init_scale=0.1, progress=False)
    init = mfjax.fit(train, solver="optax", optimizer="sgd", learning_rate=1e-30, batch_size=n, epochs=1, rank=4,
                     reg=0.1, init_scale=0.1, progress=False).params
    g = mfjax.manual_grad(init, train.users, train.items, train.ratings, reg=0.1, bias_reg=0.1)
    step = np.asarray(init.item_bias) - np.asarray(model.params.item_bias)
    np.testing.assert_allclose(step, lr * np.asarray(g.item_bias), rtol=2e-2, atol=1e-9)


def test_any_optax_transformation_and_schedule(planted):
    train, test = planted
    m1 = mfjax.fit(train, optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(0.01)),
                   validation=test, **FAST)
    m2 = mfjax.fit(train, schedule=optax.cosine_decay_schedule(0.02, 12 * 24), validation=test, **FAST)
    for m in (m1, m2):
        assert m.history[-1]["val_rmse"] < 0.6


def test_early_stopping_restores_the_best_epoch(planted):
    train, test = planted
    # A rate this high overfits/oscillates quickly, so validation RMSE worsens.
    model = mfjax.fit(train, validation=test, patience=2, **{**FAST, "epochs": 40, "reg": 0.0,
                                                             "rank": 32, "learning_rate": 0.05})
    rmses = [h["val_rmse"] for h in model.history]
    best = int(np.argmin(rmses))
    assert len(rmses) < 40 and len(rmses) == best + 1 + 2
    assert model.config["best_epoch"] == best + 1
    assert math.isclose(mfjax.evaluate(model, test)["rmse"], rmses[best], rel_tol=1e-4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(rank=0), "rank"),
        (dict(epochs=0), "epochs"),
        (dict(reg=-1.0), "reg"),
        (dict(batch_size=0), "batch_size"),
        (dict(optimizer="adamax2"), "optimizer must be one of"),
        (dict(gradient="numeric"), "gradient"),
        (dict(patience=2), "patience"),
        (dict(resume=True), "checkpoint_dir"),
        (dict(learning_rate=-0.1), "learning_rate"),
        (dict(seed=-1), "seed"),
        (dict(seed=1.5), "seed"),
        (dict(init_scale=float("nan")), "init_scale"),
        (dict(init_scale=0.0), "init_scale"),
        (dict(learning_rate=0.1, schedule=optax.constant_schedule(0.1)), "both given"),
        (dict(validation=[("u", "i", 3.0)]), "validation must be an mfjax.Ratings"),
        (dict(objective="clicks"), "objective"),
        (dict(solver="newton"), "no solver 'newton'"),
        (dict(alpha=2.0), "'alpha' does not apply to MF"),
    ],
)
def test_bad_arguments(planted, kwargs, match):
    train, _ = planted
    with pytest.raises((ValueError, TypeError), match=match):
        mfjax.fit(train, **{**FAST, **kwargs})


def test_empty_validation_set_is_refused_before_training(planted):
    train, test = planted
    empty = test.subset(np.zeros(len(test), bool))
    with pytest.raises(ValueError, match="validation set is empty"):
        mfjax.fit(train, validation=empty, **FAST)


def test_numpy_scalars_are_accepted_as_hyperparameters(planted):
    train, _ = planted
    m = mfjax.fit(train, **{**FAST, "epochs": 1, "reg": np.float32(0.02),
                            "learning_rate": np.float32(0.01), "rank": np.int64(8)})
    assert m.config["reg"] == pytest.approx(0.02) and m.config["rank"] == 8


def test_auto_batch_size_scales_with_data():
    assert mfjax.auto_batch_size(80_000, 943, 1682) == 4096
    assert mfjax.auto_batch_size(20_000_000, 138_493, 26_744) == 1 << 20
    assert mfjax.auto_batch_size(500, 10, 10) == 500


@pytest.mark.parametrize("kw", [dict(ensemble=1), dict(objective="bpr", epochs=3, rank=4),
                                dict(solver="als", epochs=3, rank=4)])
def test_callbacks_may_keep_the_params_they_are_given(planted, kw):
    train, _ = planted
    kept = []
    args = {**FAST, "epochs": 3, **kw}
    if kw.get("objective") or kw.get("solver"):
        args = {"progress": False, **kw}
    if kw.get("objective") == "bpr":  # interactions: value 1 each
        train = mfjax.Ratings(train.users, train.items, np.ones(len(train), np.float32), None,
                              train.user_ids, train.item_ids)
    mfjax.fit(train, callbacks=[lambda e, m, p: kept.append(p)], **args)
    assert len(kept) == 3
    sums = [float(np.sum(p.user_factors)) for p in kept]  # raised "Array has been deleted"
    assert all(math.isfinite(s) for s in sums) and len(set(sums)) > 1


# --------------------------------------------------------------- issue #22: fit's loop
@pytest.mark.timeout(300)
def test_gibbs_patience_never_stops_inside_burn_in(planted):
    train, test = planted
    m = mfjax.fit(train, mfjax.BayesianMF(rank=2, burn_in=6, samples=6), validation=test,
                  patience=1, progress=False)
    assert len(m.history) >= 7  # at least one kept sample before stopping
    assert m.posterior is not None
    pred, std = m.predict(test.user_ids[test.users[:5]], test.item_ids[test.items[:5]],
                          return_std=True)
    assert (std > 0).all()


@pytest.mark.parametrize("seed", [2 ** 63, -1, 1.5, True])
def test_seed_out_of_range_is_a_clear_error(planted, seed):
    train, _ = planted
    with pytest.raises((ValueError, TypeError), match="seed"):
        mfjax.fit(train, seed=seed, **FAST)


def test_divergence_names_the_real_cause_per_solver(planted):
    train, _ = planted
    tiny, _ = mfjax.datasets.synthetic(50, 40, 300, seed=0)  # rows with fewer ratings than k
    for kernel in (True, False):
        with pytest.raises((ValueError, FloatingPointError), match=r"singular.*reg > 0") as e:
            mfjax.fit(tiny, mfjax.ALS(rank=10, reg=0.0, bias_reg=0.0, epochs=2, kernel=kernel),
                      progress=False)
        assert "learning_rate" not in str(e.value)
    with pytest.raises(FloatingPointError, match="smaller learning_rate"):
        mfjax.fit(train, optimizer="sgd", learning_rate=10.0, **{**FAST, "epochs": 5})


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("kernel", [True, False], ids=["kernel", "xla"])
def test_ctrl_c_stops_a_long_ials_fit_between_sweeps(kernel, tmp_path):
    """#22 item 20: cg_steps <= rank bounds a sweep, so SIGINT lands between sweeps."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from mfjax import kernels

    if kernel and kernels.find_compiler() is None:
        pytest.skip("no C++ compiler")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import numpy as np, mfjax; rng = np.random.default_rng(0); "
            "k = np.unique(rng.integers(0, 300 * 200, 6000)); "
            "r = mfjax.Ratings.from_arrays(k // 200, k % 200, np.ones(k.size)); "
            "print('start', flush=True); "
            f"mfjax.fit(r, mfjax.ImplicitALS(rank=64, epochs=100000, cg_steps=64, kernel={kernel}),"
            " progress=False)")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": root})
    assert p.stdout.readline().strip() == "start"
    time.sleep(3)  # into the sweeps
    p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode != 0 and "KeyboardInterrupt" in err
