"""The threaded C++ iALS half-step (mfjax.kernels.ials) against the XLA solves."""

import subprocess
import sys
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfjax
from mfjax.models.implicit_als import objective as im
from mfjax.data import interactions
from mfjax.models.implicit_als import layout as ials_layout
from mfjax.models.implicit_als import solve as ia
from mfjax.models.implicit_als import steps as st
from mfjax.kernels import ials as ik
from mfjax import kernels
from mfjax.models.implicit_als import solver as ials

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Only a missing compiler may skip these: a kernel that fails to build or load must fail them.
pytestmark = pytest.mark.skipif(kernels.find_compiler() is None, reason="no C++ compiler")
HP = dict(alpha=2.0, unobserved_weight=0.3, reg=0.1, nu=0.7)


def problem(dtype, n_users=157, n_items=93, n=2500, k=16, seed=0):
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, n_users - 7, n), rng.integers(0, n_items, n)  # the last users: empty
    data = interactions.build_implicit_data(u, i, rng.random(n).astype(dtype), n_users=n_users,
                                  n_items=n_items)
    P = jnp.asarray((0.3 * rng.standard_normal((n_users, k))).astype(dtype))
    Q = jnp.asarray((0.3 * rng.standard_normal((n_items, k))).astype(dtype))
    return data, P, Q


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 2e-4)])
def test_solves_equal_the_xla_cholesky(dtype, tol):
    data, P, Q = problem(dtype)
    for mine, ref, other in ((ik.solve_users, ia.solve_users, Q), (ik.solve_items, ia.solve_items, P)):
        x, want = mine(other, data, **HP), ref(other, data, **HP)
        assert x.dtype == dtype and x.shape == want.shape
        np.testing.assert_allclose(x, want, atol=tol, rtol=tol)
    assert np.all(np.asarray(ik.solve_users(Q, data, **HP))[-7:] == 0)  # empty rows


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_half_step_outputs_equal_half_step_exact(dtype, tol):
    data, P, _ = problem(dtype)
    users, items = ials_layout.shared_layouts(data)
    n_pad = int(users.indptr.shape[0]) - 1
    Pp = jnp.asarray(np.pad(np.asarray(P), ((0, n_pad - P.shape[0]), (0, 0))))
    for side, other in ((items, Pp), (users, None)):
        if other is None:
            other = Qp
        got = ik.half_step(other, side, **HP)
        want = st.half_step_exact(other, side, **HP, **ials.ALSSolver.CHUNKS)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_allclose(g, w, atol=tol, rtol=tol)
        Qp = got[0]


@pytest.mark.parametrize("steps", [0, 1, 3])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_cg_half_step_outputs_equal_the_xla_cg_half_step(dtype, tol, steps):
    data, P, Q = problem(dtype)
    users, items = ials_layout.shared_layouts(data)
    n_pad = int(users.indptr.shape[0]) - 1
    pad = lambda x: jnp.asarray(np.pad(np.asarray(x), ((0, n_pad - x.shape[0]), (0, 0))))  # noqa: E731
    Pp, Qp = pad(P), pad(Q)
    for side, other, x0 in ((items, Pp, Qp), (users, Qp, Pp)):
        got = ik.half_step_cg(other, side, x0, cg_steps=steps, **HP)
        want = st.half_step_cg(other, side, x0, cg_steps=steps, **HP)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_allclose(g, w, atol=tol, rtol=tol)
        if steps == 0:  # no step: the warm start on rows with interactions, 0 elsewhere
            n = int(side.n_rows)
            has = np.diff(np.asarray(side.indptr))[:n] > 0
            np.testing.assert_array_equal(np.asarray(got[0])[:n][has], np.asarray(x0)[:n][has])
            assert not np.asarray(got[0])[:n][~has].any()



@pytest.fixture(autouse=True, scope="module")
def _compiled():
    """Fits take the kernel only once it is compiled (``kernel="auto"`` never compiles)."""
    ik.available()

def test_kernel_cg_without_the_observed_pass_changes_only_the_value():
    data, P, Q = problem(np.float64)
    users, _ = ials_layout.shared_layouts(data)
    n_pad = int(users.indptr.shape[0]) - 1
    Qp, Pp = (jnp.asarray(np.pad(np.asarray(x), ((0, n_pad - x.shape[0]), (0, 0)))) for x in (Q, P))
    x, value, penalty = ik.half_step_cg(Qp, users, Pp, cg_steps=2, **HP)
    x2, value2, penalty2 = ik.half_step_cg(Qp, users, Pp, cg_steps=2, with_observed=False, **HP)
    assert np.array_equal(x, x2) and float(penalty) == float(penalty2)
    xs = np.asarray(x)
    users_of = np.repeat(np.arange(data.n_users), np.diff(np.asarray(data.user_indptr)))
    err = 1.0 - np.sum(xs[users_of] * np.asarray(Q)[np.asarray(data.user_items)], axis=1)
    observed = np.sum((1.0 + HP["alpha"] * np.asarray(data.user_values, np.float64)) * err ** 2)
    np.testing.assert_allclose(float(value) - float(value2), observed, rtol=1e-10)


def test_kernel_cg_reaches_the_exact_solve_in_k_steps():
    data, _, Q = problem(np.float64)
    users, _ = ials_layout.shared_layouts(data)
    n_pad = int(users.indptr.shape[0]) - 1
    Qp = jnp.asarray(np.pad(np.asarray(Q), ((0, n_pad - Q.shape[0]), (0, 0))))
    x0 = jnp.zeros((n_pad, Q.shape[1]), Q.dtype)
    x, _, _ = ik.half_step_cg(Qp, users, x0, cg_steps=Q.shape[1], **HP)
    np.testing.assert_allclose(np.asarray(x)[:data.n_users], ik.solve_users(Q, data, **HP),
                               rtol=0, atol=1e-8)


def test_thread_count_does_not_change_the_result(monkeypatch):
    data, _, Q = problem(np.float64, n_users=400, n=8000)
    monkeypatch.setenv("MFJAX_IALS_THREADS", "1")
    one = ik.solve_users(Q, data, **HP)
    monkeypatch.setenv("MFJAX_IALS_THREADS", "3")
    three = ik.solve_users(Q, data, **HP)
    assert np.array_equal(one, three)


def test_an_out_of_range_index_is_an_error_naming_the_row():
    data, _, Q = problem(np.float64)
    cols = np.asarray(data.user_items).copy()
    indptr = np.asarray(data.user_indptr)
    row = 5
    cols[indptr[row] + 1] = Q.shape[0]  # one past the end
    with pytest.raises(Exception, match=f"row {row} has the out-of-range index {Q.shape[0]}"):
        jax.block_until_ready(ik.solve(Q, data.user_indptr, jnp.asarray(cols), data.user_values,
                                       **HP))
    cols[indptr[row] + 1] = -1
    with pytest.raises(Exception, match=f"row {row} has the out-of-range index -1"):
        jax.block_until_ready(ik.solve(Q, data.user_indptr, jnp.asarray(cols), data.user_values,
                                       **HP))


def _fit(kernel, method=None):
    rng = np.random.default_rng(3)
    key = np.unique(rng.integers(0, 120 * 80, 3000))  # distinct (user, item) pairs
    r = mfjax.Ratings.from_arrays(key // 80, key % 80, np.ones(key.size))
    steps = {None: None, "cholesky": 0, "cg": 3}[method]
    m = mfjax.fit(r, mfjax.ImplicitALS(rank=8, epochs=4, cg_steps=steps, kernel=kernel), seed=0,
                  progress=False)
    return m, m.spec.kernel


@pytest.mark.parametrize("method", ["cholesky", "cg"])
def test_fit_with_the_kernel_equals_fit_without(method):
    (a, sa), (b, sb) = _fit(True, method), _fit(False, method)
    assert sa and not sb
    assert a.config["als_method"] == b.config["als_method"] == method
    np.testing.assert_allclose(a.params.user_factors, b.params.user_factors, atol=2e-4)
    np.testing.assert_allclose(a.params.item_factors, b.params.item_factors, atol=2e-4)
    la = [h["loss"] for h in a.history]
    lb = [h["loss"] for h in b.history]
    np.testing.assert_allclose(la, lb, rtol=1e-5)


def test_default_method_on_a_cpu_is_cg_with_or_without_the_kernel():
    # The backend alone decides, so checkpoints move between kernel and XLA runs.
    (a, sa), (b, sb) = _fit("auto"), _fit(False)
    assert sa and not sb
    for m in (a, b):
        assert m.config["als_method"] == "cg" and m.spec.cg_steps == 3


def test_switch_off_and_fallback_without_a_compiler(tmp_path):
    code = ("import mfjax, numpy as np; from mfjax.kernels import ials as ik; "
            "print('available', ik.available()); "
            "r = mfjax.Ratings.from_arrays(np.arange(40) % 10, np.arange(40) % 7, np.ones(40)); "
            "m = mfjax.fit(r, objective='ials', rank=4, epochs=2, progress=False); "
            "print('fit ok', m.history[-1]['loss'])")
    env = {**os.environ, "PYTHONPATH": ROOT, "MFJAX_CACHE": str(tmp_path), "CXX": "",
           "PATH": str(tmp_path)}  # no compiler on the PATH, an empty kernel cache
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-1500:]
    assert "available False" in out.stdout and "fit ok" in out.stdout
    assert "no C++ compiler" in out.stderr
    env = {**os.environ, "PYTHONPATH": ROOT, "MFJAX_KERNELS": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 0 and "available False" in out.stdout, out.stderr[-1500:]

