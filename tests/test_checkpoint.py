"""Checkpoints and resume: a resumed run ends with the uninterrupted run's model, and
refuses to continue a different run (other data, any other hyperparameter)."""

import math

import numpy as np
import optax
import pytest

import mfjax
from mfjax import split
from test_train import FAST, planted  # noqa: F401 (fixture)


class Stop(Exception):
    pass


def stop_at(n):
    def interrupt(epoch, metrics, params):
        if epoch == n:
            raise Stop
    return interrupt


def test_resume_matches_an_uninterrupted_run(planted, tmp_path):
    train, test = planted
    kw = {**FAST, "epochs": 4, "validation": test}
    full = mfjax.fit(train, **kw)

    with pytest.raises(Stop):
        mfjax.fit(train, checkpoint_dir=tmp_path, callbacks=[stop_at(2)], **kw)
    resumed = mfjax.fit(train, checkpoint_dir=tmp_path, resume=True, **kw)
    for a, b in zip(full.params, resumed.params):
        np.testing.assert_array_equal(a, b)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]


def test_resume_refuses_a_different_run(planted, tmp_path):
    train, _ = planted
    mfjax.fit(train, checkpoint_dir=tmp_path, **{**FAST, "epochs": 1})
    with pytest.raises(ValueError, match="rank"):
        mfjax.fit(train, checkpoint_dir=tmp_path, resume=True, **{**FAST, "epochs": 2, "rank": 4})


def test_divergence_names_the_epoch_and_keeps_the_checkpoint(planted, tmp_path):
    train, _ = planted
    with pytest.raises(FloatingPointError, match=r"epoch \d+.*smaller learning_rate"):
        mfjax.fit(train, optimizer="sgd", learning_rate=10.0, checkpoint_dir=tmp_path,
                  **{**FAST, "epochs": 5})


EARLY = {**FAST, "epochs": 40, "reg": 0.0, "rank": 32, "learning_rate": 0.05, "patience": 1}


def test_a_finished_early_stopped_run_resumes_to_the_same_model(planted, tmp_path):
    train, test = planted
    first = mfjax.fit(train, validation=test, checkpoint_dir=tmp_path, **EARLY)
    assert len(first.history) < 40  # it stopped early
    again = mfjax.fit(train, validation=test, checkpoint_dir=tmp_path, resume=True, **EARLY)
    assert len(again.history) == len(first.history)
    assert again.config["best_epoch"] == first.config["best_epoch"]
    for a, b in zip(first.params, again.params):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("every", [1, 2])
def test_interrupted_runs_with_patience_resume_to_the_uninterrupted_model(planted, tmp_path, every):
    train, test = planted
    full = mfjax.fit(train, validation=test, **EARLY)
    n = len(full.history)
    for k in range(1, n + 1):
        d = tmp_path / f"k{k}"
        with pytest.raises(Stop):
            mfjax.fit(train, validation=test, checkpoint_dir=d, checkpoint_every=every,
                      callbacks=[stop_at(k)], **EARLY)
        resumed = mfjax.fit(train, validation=test, checkpoint_dir=d, checkpoint_every=every,
                            resume=True, **EARLY)
        assert len(resumed.history) == n, k
        for a, b in zip(full.params, resumed.params):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("change", [
    dict(learning_rate=0.02),
    dict(init_scale=0.05),
    dict(reg=0.03),
    dict(bias_reg=0.5),
    dict(seed=1),
    dict(optimizer="adamw"),
    dict(patience=3),
])
def test_resume_refuses_a_changed_hyperparameter(planted, tmp_path, change):
    train, test = planted
    kw = {**FAST, "epochs": 2, "learning_rate": 0.01, "patience": 2}
    mfjax.fit(train, validation=test, checkpoint_dir=tmp_path, **kw)
    key = next(iter(change))
    with pytest.raises(ValueError, match=f"cannot resume.*{key}"):
        mfjax.fit(train, validation=test, checkpoint_dir=tmp_path, resume=True, **{**kw, **change})


def test_resume_refuses_other_ratings_with_the_same_counts(planted, tmp_path):
    u, i, r = (np.arange(600) % 30, np.arange(600) // 30, np.arange(600) % 5 + 1.0)
    train = mfjax.Ratings.from_arrays(u, i, r)
    mfjax.fit(train, checkpoint_dir=tmp_path, **{**FAST, "epochs": 1})
    other = mfjax.Ratings.from_arrays(u, i, r[::-1].copy())
    assert (len(other), other.n_users, other.n_items) == (len(train), train.n_users, train.n_items)
    with pytest.raises(ValueError, match="cannot resume.*data_sha256"):
        mfjax.fit(other, checkpoint_dir=tmp_path, resume=True, **{**FAST, "epochs": 2})


def test_a_longer_run_extends_a_finished_one(planted, tmp_path):
    train, _ = planted
    full = mfjax.fit(train, **{**FAST, "epochs": 3})
    mfjax.fit(train, checkpoint_dir=tmp_path, **{**FAST, "epochs": 2})
    longer = mfjax.fit(train, checkpoint_dir=tmp_path, resume=True, **{**FAST, "epochs": 3})
    for a, b in zip(full.params, longer.params):
        np.testing.assert_array_equal(a, b)


def test_custom_optimizers_resume_only_by_name(planted, tmp_path):
    train, _ = planted
    kw = {**FAST, "epochs": 2}
    with pytest.raises(ValueError, match="optimizer_name"):
        mfjax.fit(train, optimizer=optax.adam(0.01), checkpoint_dir=tmp_path, resume=True, **kw)
    full = mfjax.fit(train, optimizer=optax.adam(0.01), **kw)
    with pytest.raises(Stop):
        mfjax.fit(train, optimizer=optax.adam(0.01), optimizer_name="adam-0.01",
                  checkpoint_dir=tmp_path, callbacks=[stop_at(1)], **kw)
    resumed = mfjax.fit(train, optimizer=optax.adam(0.01), optimizer_name="adam-0.01",
                        checkpoint_dir=tmp_path, resume=True, **kw)
    assert resumed.config["optimizer"] == {"recorded": "adam-0.01"}
    assert resumed.spec.optimizer == mfjax.specs.Recorded("adam-0.01")
    for a, b in zip(full.params, resumed.params):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="cannot resume.*optimizer"):
        mfjax.fit(train, optimizer=optax.sgd(0.01), optimizer_name="sgd-0.01",
                  checkpoint_dir=tmp_path, resume=True, **kw)


def test_divergence_names_only_a_checkpoint_that_exists(planted, tmp_path):
    train, _ = planted
    with pytest.raises(FloatingPointError) as e:
        mfjax.fit(train, optimizer="sgd", learning_rate=10.0, checkpoint_dir=tmp_path,
                  checkpoint_every=50, **{**FAST, "epochs": 5})
    assert "checkpoint" not in str(e.value)


KILLED_RUN = r'''
import os, signal, sys
import jax
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
import mfjax
from mfjax import split
ratings, _ = mfjax.datasets.synthetic(300, 200, 30_000, rank=4, noise=0.5, seed=1)
train, test = split.holdout(ratings, 0.2, seed=0)
kill_at = int(sys.argv[2])

def die(epoch, metrics, params):
    if epoch == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

mfjax.fit(train, solver="optax", validation=test, checkpoint_dir=sys.argv[1], callbacks=[die],
          rank=32, reg=0.0, bias_reg=0.0, epochs=40, batch_size=1024, learning_rate=0.05,
          patience=1, progress=False)
'''


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_kill_9_then_resume_gives_the_uninterrupted_model(planted, tmp_path):
    import signal
    import subprocess
    import sys

    train, test = planted
    full = mfjax.fit(train, validation=test, **EARLY)
    for k in sorted({1, max(1, len(full.history) // 2), len(full.history)}):
        d = tmp_path / f"kill{k}"
        out = subprocess.run([sys.executable, "-c", KILLED_RUN, str(d), str(k)],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == -signal.SIGKILL, out.stderr[-2000:]
        assert not [p for p in d.iterdir() if p.name.startswith(".tmp")]
        resumed = mfjax.fit(train, validation=test, checkpoint_dir=d, resume=True, **EARLY)
        assert len(resumed.history) == len(full.history), k
        for a, b in zip(full.params, resumed.params):
            np.testing.assert_array_equal(a, b)


# ------------------------------------------------- issue #22: resume and checkpoint files
def test_resuming_with_fewer_epochs_than_done_is_refused(planted, tmp_path):
    train, _ = planted
    mfjax.fit(train, checkpoint_dir=tmp_path, **{**FAST, "epochs": 4})
    with pytest.raises(ValueError, match="has 4 epochs done, more than the 2"):
        mfjax.fit(train, checkpoint_dir=tmp_path, resume=True, **{**FAST, "epochs": 2})


def test_resume_accepts_the_resolved_default_given_explicitly(tmp_path):
    rng = np.random.default_rng(0)
    key = np.unique(rng.integers(0, 40 * 30, 400))
    clicks = mfjax.Ratings.from_arrays(key // 30, key % 30, np.ones(key.size))
    first = mfjax.fit(clicks, mfjax.ImplicitALS(rank=4, epochs=1), checkpoint_dir=tmp_path,
                      progress=False)
    steps = first.spec.cg_steps  # 3 on a CPU
    again = mfjax.fit(clicks, mfjax.ImplicitALS(rank=4, epochs=2, cg_steps=steps),
                      checkpoint_dir=tmp_path, resume=True, progress=False)
    assert len(again.history) == 2


def _tamper(path, out, **changes):
    import json

    z = dict(np.load(path))
    meta = json.loads(z["meta"].tobytes())
    for k, v in changes.items():
        if k.startswith("state/"):
            z[k] = v
        else:
            meta[k] = v
    z["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(out, **z)


@pytest.mark.parametrize("change,match", [
    (dict(epoch=-5), "epoch must be a non-negative integer"),
    (dict(history="oops"), "history must be a list"),
    (dict(n_leaves="2"), "n_leaves"),
])
def test_a_tampered_checkpoint_is_refused(planted, tmp_path, change, match):
    train, _ = planted
    d = tmp_path / "run"
    mfjax.fit(train, checkpoint_dir=d, **{**FAST, "epochs": 1})
    _tamper(d / "checkpoint.npz", d / "checkpoint.npz", **change)
    with pytest.raises(ValueError, match=match):
        mfjax.fit(train, checkpoint_dir=d, resume=True, **{**FAST, "epochs": 2})


def test_a_checkpoint_with_nan_state_is_refused(planted, tmp_path):
    train, _ = planted
    mfjax.fit(train, checkpoint_dir=tmp_path, **{**FAST, "epochs": 1})
    z = np.load(tmp_path / "checkpoint.npz")
    bad = np.array(z["state/0"])
    bad.reshape(-1)[0] = np.nan
    _tamper(tmp_path / "checkpoint.npz", tmp_path / "checkpoint.npz", **{"state/0": bad})
    with pytest.raises(ValueError, match="NaN or infinity"):
        mfjax.fit(train, checkpoint_dir=tmp_path, resume=True, **{**FAST, "epochs": 2})


def test_numpy_integer_hyperparameters_checkpoint_and_save(planted, tmp_path):
    train, _ = planted
    m = mfjax.fit(train, mfjax.BayesianMF(rank=np.int64(2), burn_in=np.int32(1),
                                          samples=np.int64(2)),
                  checkpoint_dir=tmp_path, seed=np.int64(3), progress=False)
    m.save(tmp_path / "m.npz")
    assert mfjax.load_model(tmp_path / "m.npz").spec == m.spec
