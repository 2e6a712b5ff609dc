"""iALS row solves stay finite with large confidences, and non-finite factors raise (issue #22 item 1)."""
import numpy as np
import pytest

import jax.numpy as jnp

import mfjax
from mfjax.data import interactions
from mfjax.models.implicit_als import solve as ia


def clicks(value=1.0, n_users=60, n_items=40, nnz=600, seed=0):
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, nnz, replace=False)
    u, i = pairs // n_items, pairs % n_items
    v = np.broadcast_to(np.asarray(value, np.float64), (nnz,)).astype(np.float32)
    return mfjax.Ratings.from_arrays(u, i, v)


def one_big(value):
    v = np.ones(600)
    v[0] = value
    return v


@pytest.mark.timeout(300)
@pytest.mark.parametrize("cg_steps", [3, 0], ids=["cg", "exact"])
@pytest.mark.parametrize("value,kw", [(1e4, {}), (1.0, dict(alpha=1e4)),
                                      (1e4, dict(unobserved_weight=0.0)),
                                      ("one_1e9", {})],
                         ids=["values_1e4", "alpha_1e4", "a0_0", "one_count_1e9"])
def test_large_confidences_give_finite_factors(value, kw, cg_steps):
    value = one_big(1e9) if isinstance(value, str) else value
    m = mfjax.fit(clicks(value), objective="ials", rank=64, epochs=3, cg_steps=cg_steps,
                  progress=False, **kw)
    for table in (m.params.user_factors, m.params.item_factors):
        assert np.isfinite(np.asarray(table)).all()
    ids, _ = m.recommend(np.arange(5), n=3)
    assert np.asarray(ids).shape == (5, 3)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("cg_steps", [3, 0], ids=["cg", "exact"])
def test_singular_systems_raise_naming_reg(cg_steps):
    with pytest.raises(ValueError, match=r"reg > 0"):
        mfjax.fit(clicks(), objective="ials", rank=64, epochs=2, reg=0.0,
                  unobserved_weight=0.0, cg_steps=cg_steps, progress=False)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_xla_cholesky_rows_retry_ill_conditioned_rows(dtype):
    """The XLA exact solve (GPU path, kernel off) on a system whose float32 Gram is indefinite."""
    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 60, 600), rng.integers(0, 40, 600)
    d = interactions.build_implicit_data(u, i, np.full(600, 1e4), n_users=60, n_items=40)
    Q = jnp.asarray(rng.normal(0, 3.0, (40, 64)), dtype)  # |q|² ~ 600: c q qᵀ ~ 1e7 vs λ ~ 0.2
    P = ia.solve_users(Q, d, alpha=1.0, unobserved_weight=0.3, reg=0.01, nu=1.0)
    assert np.isfinite(np.asarray(P)).all()
    # well-conditioned rows are untouched by the retry: the same as a plain solve
    P1 = ia.solve_users(Q, d, alpha=0.0, unobserved_weight=0.3, reg=1.0, nu=1.0)
    G = np.asarray(Q, np.float64)
    u0 = np.asarray(d.user_items)[np.asarray(d.user_indptr)[0]:np.asarray(d.user_indptr)[1]]
    A = 0.3 * G.T @ G + G[u0].T @ G[u0] + 1.0 * (len(u0) + 0.3 * 40) * np.eye(64)
    np.testing.assert_allclose(np.asarray(P1[0], np.float64), np.linalg.solve(A, G[u0].sum(0)),
                               rtol=2e-3, atol=1e-5)


def test_check_finite_names_cause_and_fix():
    hp = dict(alpha=1.0, unobserved_weight=0.3, reg=0.1, nu=1.0)
    ia.check_finite(hp, "sweep 1", loss=1.0, x=np.ones(3))
    with pytest.raises(ValueError, match=r"sweep 2 gave non-finite x.*alpha"):
        ia.check_finite(hp, "sweep 2", loss=1.0, x=np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match=r"reg > 0"):
        ia.check_finite(dict(hp, reg=0.0), "sweep 2", loss=np.inf)


@pytest.mark.timeout(300)
def test_large_confidences_on_a_2x2_mesh():
    import os
    import subprocess
    import sys

    code = ("import numpy as np, mfjax, warnings; from mfjax import distributed; "
            "rng = np.random.default_rng(0); pairs = rng.choice(2400, 600, replace=False); "
            "tr = mfjax.Ratings.from_arrays(pairs // 40, pairs % 40, np.full(600, 1e4)); "
            "mesh = distributed.make_mesh(2, 2)\n"
            "for cg in (3, 0):\n"
            "    m = mfjax.fit(tr, objective='ials', rank=64, epochs=2, cg_steps=cg, mesh=mesh, "
            "progress=False)\n"
            "    print('finite', cg, bool(np.isfinite(np.asarray(m.params.user_factors)).all()))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root,
           "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=280)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "finite 3 True" in out.stdout and "finite 0 True" in out.stdout, out.stdout


@pytest.mark.timeout(300)
def test_zipf_counts_with_large_alpha_give_finite_users():
    rng = np.random.default_rng(1)
    pairs = rng.choice(300 * 200, 6000, replace=False)
    counts = np.minimum(rng.zipf(1.5, 6000), 5e4)
    m = mfjax.fit(mfjax.Ratings.from_arrays(pairs // 200, pairs % 200, counts), objective="ials",
                  alpha=1000.0, epochs=3, progress=False)
    assert np.isfinite(np.asarray(m.params.user_factors)).all()
