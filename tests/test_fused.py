"""The fused CPU kernel (mfjax.kernels.fused) equals the reference routes, and fit falls back
cleanly when it cannot be built. Float64 (conftest) unless a test says otherwise."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfjax
from mfjax.solvers.minibatch.gradients import blocked_value_and_grad, make_blocks
from mfjax import kernels
from mfjax.kernels import fused
from mfjax.training import config as C
from mfjax.models.mf import resolve as R
from test_core import make_problem
from test_fast_paths import FAST, members_problem, planted  # noqa: F401 (fixture)

REG = dict(reg=0.3, bias_reg=0.05)

pytestmark = pytest.mark.skipif(not fused.available(),
                                reason=f"fused kernel unavailable: {fused.unavailable_reason()}")


def sorted_batch(keys, others, r, w):
    order = np.argsort(keys, kind="stable")
    return (jnp.asarray(keys[order], jnp.int32), jnp.asarray(others[order], jnp.int32),
            jnp.asarray(r[order]), jnp.asarray(w[order]))


@pytest.mark.parametrize("by", ["users", "items"])
@pytest.mark.parametrize("shape", [(6, 9, 4, 50), (3, 3, 1, 1), (20, 7, 5, 400), (50, 40, 64, 3000)])
def test_fused_equals_loss_and_manual_grad(by, shape):
    p, u, i, r = make_problem(*shape)
    w = np.random.default_rng(1).uniform(0, 1, len(u))
    w[::7] = 0.0  # padding-like rows
    keys, others = (u, i) if by == "users" else (i, u)
    k, o, rr, ww = sorted_batch(keys, others, r, w)
    value, grads = jax.jit(lambda p: fused.value_and_grad(p, k, o, rr, ww, sort_by=by, **REG))(p)
    uu, ii = (k, o) if by == "users" else (o, k)
    ref_value = mfjax.loss(p, uu, ii, rr, weights=ww, **REG)
    ref_grads = mfjax.manual_grad(p, uu, ii, rr, weights=ww, **REG)
    assert value.dtype == jnp.float64
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    for name, g, ref in zip(ref_grads._fields, grads, ref_grads):
        assert g.shape == ref.shape and g.dtype == ref.dtype, name
        np.testing.assert_allclose(g, ref, rtol=1e-11, atol=1e-11, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("by", ["users", "items"])
def test_fused_member_axis_equals_the_blocked_route(by):
    _, stacked, u, i, r = members_problem(12, 8, 8, 300, members=4)  # factors [n, 4, 8]
    w = np.ones(len(u))
    keys, others = (u, i) if by == "users" else (i, u)
    k, o, rr, ww = sorted_batch(keys, others, r, w)
    value, grads = fused.value_and_grad(stacked, k, o, rr, ww, sort_by=by, **REG)
    ref_value, ref_grads = blocked_value_and_grad(stacked, make_blocks(np.asarray(k), 4), o, rr,
                                                  weights=ww, sort_by=by, **REG)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    for name, g, ref in zip(ref_grads._fields, grads, ref_grads):
        np.testing.assert_allclose(g, ref, rtol=1e-11, atol=1e-11, err_msg=name)


@pytest.mark.parametrize("n_threads", [1, 3, 8])
def test_fused_thread_count_changes_only_rounding(monkeypatch, n_threads):
    p, u, i, r = make_problem(300, 40, 16, 40_000, seed=3)  # enough rows to split
    k, o, rr, ww = sorted_batch(u, i, r, np.ones(len(u)))
    monkeypatch.setattr(fused, "threads", lambda: 1)
    v1, g1 = fused.value_and_grad(p, k, o, rr, ww, **REG)
    monkeypatch.setattr(fused, "threads", lambda: n_threads)
    vn, gn = fused.value_and_grad(p, k, o, rr, ww, **REG)
    np.testing.assert_allclose(vn, v1, rtol=1e-13)
    for a, b in zip(gn, g1):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)



@pytest.fixture(autouse=True, scope="module")
def _compiled():
    """Fits take the kernel only once it is compiled (``kernel="auto"`` never compiles)."""
    fused.available()

def test_fused_float32_matches_float64():
    p, u, i, r = make_problem(30, 20, 8, 2000, seed=4)
    k, o, rr, ww = sorted_batch(u, i, r, np.ones(len(u)))
    v64, g64 = fused.value_and_grad(p, k, o, rr, ww, **REG)
    p32 = jax.tree.map(lambda x: x.astype(jnp.float32), p)
    v32, g32 = fused.value_and_grad(p32, k, o, rr.astype(jnp.float32), ww.astype(jnp.float32), **REG)
    assert v32.dtype == jnp.float32 and all(g.dtype == jnp.float32 for g in g32)
    np.testing.assert_allclose(v32, v64, rtol=1e-5)
    for a, b in zip(g32, g64):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_fused_rejects_out_of_range_indices():
    p, u, i, r = make_problem(6, 9, 4, 50)
    k, o, rr, ww = sorted_batch(u, i, r, np.ones(len(u)))
    bad = o.at[10].set(9)  # n_items == 9
    with pytest.raises(Exception, match="out of range .* at minibatch row 10"):
        jax.block_until_ready(fused.value_and_grad(p, k, bad, rr, ww, **REG))
    unsorted = k.at[20].set(0)
    with pytest.raises(Exception, match="keys not sorted"):
        jax.block_until_ready(fused.value_and_grad(p, unsorted, o, rr, ww, **REG))


@pytest.mark.parametrize("sort_by,ensemble", [("users", 1), ("items", 2)])
def test_fit_fused_gives_the_manual_trajectory(planted, sort_by, ensemble):
    train, _ = planted
    kw = dict(FAST, sort_by=sort_by, ensemble=ensemble)
    m, ref = (mfjax.fit(train, gradient=g, **kw) for g in ("fused", "manual"))
    assert m.config["gradient"] == "fused" and m.config["sort_by"] == sort_by
    for x, y in zip(m.params, ref.params):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5)
    for a, b in zip(m.history, ref.history):
        assert math.isclose(a["loss"], b["loss"], rel_tol=1e-5)


def test_auto_takes_fused_on_large_data_and_falls_back_without_it():
    big = R.AUTO_BLOCKED_MIN_RATINGS
    hw = C.detect_hardware()
    assert hw.fused_reason is None
    assert R.resolve_gradient("auto", big - 1, hw) == "autodiff"
    assert R.resolve_gradient("auto", big, hw) == "fused"
    no_cxx = C.Hardware("cpu", None, "no C++ compiler found")
    assert R.resolve_gradient("auto", big, no_cxx) == "blocked"
    with pytest.raises(RuntimeError, match="not available here: no C\\+\\+ compiler"):
        R.resolve_gradient("fused", 10, no_cxx)
    with pytest.raises(ValueError, match="gradient must be one of"):
        R.resolve_gradient("fast", 10, hw)


def test_fused_needs_one_cpu_device():
    hw = C.detect_hardware(mfjax.distributed.make_mesh(1, 1))
    with pytest.raises(ValueError, match="single CPU device"):
        R.resolve_gradient("fused", 10, hw)
    assert R.resolve_gradient("auto", R.AUTO_BLOCKED_MIN_RATINGS, hw) == "blocked"


def test_fused_sorts_by_the_bigger_side(planted):
    train, _ = planted  # 300 users, 200 items
    hw = C.detect_hardware()
    assert R.resolve_sort_by("auto", train, 30, "fused", hw) == "users"
    assert R.resolve_sort_by("items", train, 30, "fused", hw) == "items"


def test_switch_off_and_missing_compiler(monkeypatch):
    monkeypatch.setenv("MFJAX_KERNELS", "0")
    assert not fused.available() and "MFJAX_KERNELS=0" in fused.unavailable_reason()
    assert not fused.usable_for(np.float32)
    monkeypatch.delenv("MFJAX_KERNELS")
    assert fused.available() and fused.usable_for(np.float32)
    monkeypatch.setattr(kernels.cache, "find_compiler", lambda: None)
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler"):
        fused.build_kernel()


@pytest.mark.slow
def test_build_is_cached_and_atomic(tmp_path, monkeypatch):
    monkeypatch.setenv("MFJAX_CACHE", str(tmp_path))
    path = fused.build_kernel()
    assert path.startswith(str(tmp_path)) and path.endswith(".so")
    mtime = (tmp_path / "kernels").stat().st_mtime_ns
    assert fused.build_kernel() == path  # cached: same file, no rebuild
    name = path.rsplit("/", 1)[1]
    assert sorted(p.name for p in (tmp_path / "kernels").iterdir()) == [".lock-mfjax_fused", name,
                                                                     name + ".sha256"]
    assert (tmp_path / "kernels").stat().st_mtime_ns == mtime


def test_fused_rejects_inconsistent_shapes():
    p, u, i, r = make_problem(6, 9, 4, 50)
    k, o, rr, ww = sorted_batch(u, i, r, np.ones(len(u)))
    with pytest.raises(Exception, match="inconsistent shapes"):
        jax.block_until_ready(fused.value_and_grad(p, k, o[:-1], rr, ww, **REG))
