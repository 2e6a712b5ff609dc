"""The threaded C++ explicit ALS half-step (mfjax.kernels.als) against the XLA half-step."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfjax
from mfjax.solvers.als import layout as als_layout
from mfjax.solvers.als import sweep as als
from mfjax.kernels import als as ak
from mfjax import kernels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Only a missing compiler may skip these: a kernel that fails to build or load must fail them.
pytestmark = pytest.mark.skipif(kernels.find_compiler() is None, reason="no C++ compiler")


def problem(n_users=157, n_items=93, n=2500, k=10, seed=0, weights=False):
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, n_users - 7, n), rng.integers(0, n_items - 3, n)  # trailing rows empty
    r = rng.integers(1, 6, n).astype(np.float64)
    w = rng.random(n) + 0.5 if weights else None
    layout = als_layout.make_layout(u, i, r, n_users=n_users, n_items=n_items, weights=w,
                             dtype=jnp.float64, rows_per_chunk=32)
    P = jnp.asarray(0.3 * rng.standard_normal((n_users, k)))
    Q = jnp.asarray(0.3 * rng.standard_normal((n_items, k)))
    bu = jnp.asarray(0.1 * rng.standard_normal(n_users))
    bi = jnp.asarray(0.1 * rng.standard_normal(n_items))
    return layout, P, Q, bu, bi, jnp.asarray(3.5)


@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("k", [10, 7])
def test_half_step_equals_the_xla_half_step(weights, k):
    layout, P, Q, bu, bi, mu = problem(k=k, weights=weights)
    hp = dict(reg=0.08, bias_reg=0.03)
    for side, own, ownb, other, otherb in ((layout.users, P, bu, Q, bi),
                                           (layout.items, Q, bi, P, bu)):
        want = als.als_half_step(side, own, ownb, other, otherb, mu, window=64,
                                 with_sse=True, **hp)
        got = ak.half_step(side, other, otherb, mu, **hp)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype == jnp.float64 and g.shape == w.shape
            np.testing.assert_allclose(g, w, atol=1e-10, rtol=1e-10)
    x, b, _, _ = ak.half_step(layout.users, Q, bi, mu, **hp)
    assert np.all(np.asarray(x)[-7:] == 0) and np.all(np.asarray(b)[-7:] == 0)  # empty rows



@pytest.fixture(autouse=True, scope="module")
def _compiled():
    """Fits take the kernel only once it is compiled (``kernel="auto"`` never compiles)."""
    ak.available()

def test_thread_count_does_not_change_the_result(monkeypatch):
    layout, P, Q, bu, bi, mu = problem(n_users=900, n=20000)
    monkeypatch.setenv("MFJAX_ALS_THREADS", "1")
    one = ak.half_step(layout.users, Q, bi, mu, reg=0.1, bias_reg=0.1)
    monkeypatch.setenv("MFJAX_ALS_THREADS", "3")
    three = ak.half_step(layout.users, Q, bi, mu, reg=0.1, bias_reg=0.1)
    for a, b in zip(one, three):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_an_out_of_range_index_is_an_error_naming_the_row():
    layout, P, Q, bu, bi, mu = problem()
    side = layout.users
    keys = np.asarray(side.keys)
    others = np.asarray(side.others).copy()
    pos = int(np.searchsorted(keys, 42))
    others[pos] = Q.shape[0] + 5
    bad = als_layout.SideLayout(side.keys, jnp.asarray(others), side.ratings, side.weights,
                         side.chunk_lo, side.chunk_hi, side.n_rows, side.rows_per_chunk,
                         side.block)
    with pytest.raises(Exception, match=r"row 42 has the out-of-range index 98"):
        jax.block_until_ready(ak.half_step(bad, Q, bi, mu, reg=0.1, bias_reg=0.1))
    others[pos] = -1
    bad = bad.__class__(**{**bad.__dict__, "others": jnp.asarray(others)})
    with pytest.raises(Exception, match=r"row 42 has the out-of-range index -1"):
        jax.block_until_ready(ak.half_step(bad, Q, bi, mu, reg=0.1, bias_reg=0.1))
    keys2 = keys.copy()
    keys2[pos] = side.n_rows
    bad = bad.__class__(**{**side.__dict__, "keys": jnp.asarray(keys2)})
    with pytest.raises(Exception, match=r"row index 157 at position"):
        jax.block_until_ready(ak.half_step(bad, Q, bi, mu, reg=0.1, bias_reg=0.1))


def _fit(on: bool):
    rng = np.random.default_rng(3)
    pairs = rng.choice(300 * 200, 6000, replace=False)
    train = mfjax.Ratings.from_arrays(pairs // 200, pairs % 200,
                                      rng.integers(1, 6, len(pairs)).astype(np.float64))
    return mfjax.fit(train, mfjax.ALS(epochs=5, kernel=on), seed=1, progress=False)


def test_fit_with_the_kernel_equals_fit_without():
    assert ak.available(), ak.unavailable_reason()
    on, off = _fit(True), _fit(False)
    assert on.spec.kernel is True and off.spec.kernel is False
    a, b = on.params, off.params
    assert a.user_factors.dtype == jnp.float64
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=1e-9, rtol=1e-9)
    la = [h["loss"] for h in on.history]
    lb = [h["loss"] for h in off.history]
    assert len(la) == len(lb) == 5
    np.testing.assert_allclose(la, lb, rtol=1e-10, atol=1e-12)
    assert all(x >= y - 1e-12 for x, y in zip(la, la[1:]))  # exact descent


@pytest.mark.slow
def test_switch_off_and_fallback_without_a_compiler(tmp_path):
    code = ("import warnings, numpy as np, mfjax; from mfjax.kernels import als as ak;"
                        "r = np.random.default_rng(0);"
            "t = mfjax.Ratings.from_arrays(r.integers(0, 50, 500), r.integers(0, 40, 500),"
            " r.integers(1, 6, 500).astype(float));"
            "m = mfjax.fit(t, solver='als', epochs=2, progress=False);"
            "print('REASON', ak.unavailable_reason()); print('LOSS', m.history[-1]['loss'])")
    env = {**os.environ, "PYTHONPATH": ROOT, "MFJAX_CACHE": str(tmp_path), "CXX": "",
           "PATH": "/nonexistent"}
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "REASON RuntimeError: no C++ compiler found" in out.stdout, out.stdout
    env = {**os.environ, "PYTHONPATH": ROOT, "MFJAX_KERNELS": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "REASON turned off by MFJAX_KERNELS=0" in out.stdout, out.stdout
