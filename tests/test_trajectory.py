"""A pinned short trajectory per gradient route: refactors must not change the numbers.

``tests/data/trajectory_pin.json`` was written by this module's generator
(``MFJAX_WRITE_PIN=1 python -m pytest tests/test_trajectory.py``) on the commit
before the re-layout of issue #11; the same seed must give the same parameters
(to float32 rounding of the sums) on every route, plain and ensembled.
"""

import json
import os

import numpy as np
import pytest

import mfjax
from mfjax import split
from mfjax.kernels import fused

PIN = os.path.join(os.path.dirname(__file__), "data", "trajectory_pin.json")
ROUTES = ["autodiff", "manual", "blocked", "fused"]


def FUSED_AVAILABLE():
    return fused.available()


@pytest.fixture(scope="module")
def data():
    ratings, _ = mfjax.datasets.synthetic(200, 120, 6000, rank=4, noise=0.5, seed=5)
    return split.holdout(ratings, 0.2, seed=0)


def summary(model) -> dict:
    p = {k: np.asarray(v, np.float64) for k, v in model.params._asdict().items()}
    return {
        "user_factors": [float(p["user_factors"].sum()), float(p["user_factors"][3, 1])],
        "item_factors": [float(p["item_factors"].sum()), float(p["item_factors"][5, 2])],
        "user_bias": [float(p["user_bias"].sum())],
        "item_bias": [float(p["item_bias"].sum())],
        "global_bias": [float(p["global_bias"])],
        "val_rmse": [h["val_rmse"] for h in model.history],
    }


def _fit(data, route, ensemble):
    train, test = data
    if route == "fused" and not FUSED_AVAILABLE():
        pytest.skip("no C++ compiler: the fused route is unavailable")
    return mfjax.fit(train, solver="optax", rank=8, reg=0.05, bias_reg=0.01, epochs=3, batch_size=512,
                     gradient=route, ensemble=ensemble, validation=test, progress=False, seed=7)


@pytest.mark.skipif(not os.environ.get("MFJAX_WRITE_PIN"), reason="generator only")
def test_write_pin(data):
    out = {f"{r}-{e}": summary(_fit(data, r, e)) for r in ROUTES for e in (1, 2)}
    with open(PIN, "w") as f:
        json.dump(out, f, indent=1)


@pytest.mark.parametrize("ensemble", [1, 2])
@pytest.mark.parametrize("route", ROUTES)
def test_trajectory_is_pinned(data, route, ensemble):
    with open(PIN) as f:
        want = json.load(f)[f"{route}-{ensemble}"]
    got = summary(_fit(data, route, ensemble))
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=2e-5, atol=2e-6, err_msg=k)
