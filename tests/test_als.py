"""Exact ALS (mfjax.solvers.als.sweep) against mfjax.loss, in float64."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfjax
from mfjax.solvers.als.layout import make_layout
from mfjax.solvers.als.sweep import als_half_step, als_sweep
from mfjax.objectives.explicit import Params


def problem(n_users=30, n_items=20, rank=3, n=300, *, seed=0, skip_user=None, weighted=False):
    rng = np.random.default_rng(seed)
    pool = np.array([u for u in range(n_users) if u != skip_user])
    users = rng.choice(pool, size=n).astype(np.int32)
    items = rng.integers(0, n_items, size=n).astype(np.int32)
    ratings = rng.uniform(1, 5, size=n)
    weights = rng.uniform(0.2, 2.0, size=n) if weighted else None
    p = mfjax.init_params(jax.random.PRNGKey(seed), n_users, n_items, rank, init_scale=0.5,
                          global_bias=3.0, dtype=jnp.float64)
    p = p._replace(user_bias=jnp.asarray(rng.normal(size=n_users)),
                   item_bias=jnp.asarray(rng.normal(size=n_items)))
    return p, users, items, ratings, weights


CASES = {
    "plain": dict(),
    "weighted": dict(weighted=True),
    "user_without_ratings": dict(skip_user=4),
    "rank1_small_chunks": dict(rank=1, n=120),
}
LAYOUTS = [dict(rows_per_chunk=256, window=4096), dict(rows_per_chunk=7, window=5)]


@partial(jax.jit, static_argnames="window")
def half_steps(p, lay, reg, bias_reg, window):
    """(after users, after items) with μ fixed, via the public half-step."""
    P, bu, _ = als_half_step(lay.users, p.user_factors, p.user_bias, p.item_factors, p.item_bias,
                             p.global_bias, reg=reg, bias_reg=bias_reg, window=window)
    p1 = p._replace(user_factors=P, user_bias=bu)
    Q, bi, _ = als_half_step(lay.items, p1.item_factors, p1.item_bias, P, bu, p.global_bias,
                             reg=reg, bias_reg=bias_reg, window=window)
    return p1, p1._replace(item_factors=Q, item_bias=bi)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("chunking", LAYOUTS, ids=["one_chunk", "many_chunks"])
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_half_steps_zero_the_gradient(case, chunking):
    reg, bias_reg = 0.3, 0.02
    p, u, i, r, w = problem(**case)
    lay = make_layout(u, i, r, n_users=p.n_users, n_items=p.n_items, weights=w,
                      rows_per_chunk=chunking["rows_per_chunk"])
    p1, p2 = half_steps(p, lay, reg, bias_reg, chunking["window"])
    grad = jax.grad(mfjax.loss)
    g1 = grad(p1, u, i, r, reg=reg, bias_reg=bias_reg, weights=w)
    g2 = grad(p2, u, i, r, reg=reg, bias_reg=bias_reg, weights=w)
    g0 = grad(p, u, i, r, reg=reg, bias_reg=bias_reg, weights=w)
    scale = float(np.max(np.abs(np.asarray(g0.user_factors))))
    for a in (g1.user_factors, g1.user_bias, g2.item_factors, g2.item_bias):
        np.testing.assert_allclose(a, 0, atol=1e-9 * scale)
    if "skip_user" in case:  # a row without ratings is set to 0
        np.testing.assert_array_equal(p1.user_factors[case["skip_user"]], 0)
        assert p1.user_bias[case["skip_user"]] == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_loss_non_increasing_and_mean_step_exact(case):
    reg, bias_reg = 0.05, 0.01
    p, u, i, r, w = problem(**case)
    lay = make_layout(u, i, r, n_users=p.n_users, n_items=p.n_items, weights=w, rows_per_chunk=8)
    L = lambda q: float(mfjax.loss(q, u, i, r, reg=reg, bias_reg=bias_reg, weights=w))
    values = [L(p)]
    for _ in range(4):
        p1, p2 = half_steps(p, lay, reg, bias_reg, 16)
        p = als_sweep(p, lay, reg=reg, bias_reg=bias_reg, window=16)
        # The sweep is the two half-steps followed by the exact μ step.
        np.testing.assert_allclose(p.user_factors, p2.user_factors, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(p.item_bias, p2.item_bias, rtol=1e-10, atol=1e-12)
        values += [L(p1), L(p2), L(p)]
        g = jax.grad(mfjax.loss)(p, u, i, r, reg=reg, bias_reg=bias_reg, weights=w)
        np.testing.assert_allclose(g.global_bias, 0, atol=1e-9 * len(r))
    v = np.array(values)
    assert np.all(np.diff(v) <= 1e-10 * v[:-1]), v


@pytest.mark.timeout(60)
@pytest.mark.parametrize("rank", [1, 4])
def test_planted_low_rank_is_recovered(rank):
    """Noiseless biased rank-k data, 60% observed, reg ~ 0: RMSE ~ 0."""
    rng = np.random.default_rng(rank)
    nu, ni = 40, 30
    P, Q = rng.normal(size=(nu, rank)), rng.normal(size=(ni, rank))
    bu, bi = rng.normal(0, 0.3, nu), rng.normal(0, 0.5, ni)
    uu, ii = (a.ravel() for a in np.meshgrid(np.arange(nu), np.arange(ni), indexing="ij"))
    keep = rng.random(uu.size) < 0.6
    u, i = uu[keep].astype(np.int32), ii[keep].astype(np.int32)
    r = 3.5 + bu[u] + bi[i] + np.sum(P[u] * Q[i], 1)
    lay = make_layout(u, i, r, n_users=nu, n_items=ni, rows_per_chunk=16)
    p = mfjax.init_params(jax.random.PRNGKey(0), nu, ni, rank, global_bias=float(r.mean()),
                          dtype=jnp.float64)
    for _ in range(60):
        p = als_sweep(p, lay, reg=1e-10, window=64)
    rmse = np.sqrt(np.mean((np.asarray(mfjax.predict(p, u, i)) - r) ** 2))
    assert rmse < 1e-5, rmse
    # ...and the held-out entries too (the planted matrix itself).
    rmse_all = np.sqrt(np.mean((np.asarray(mfjax.predict(p, uu, ii))
                                - (3.5 + bu[uu] + bi[ii] + np.sum(P[uu] * Q[ii], 1))) ** 2))
    assert rmse_all < 1e-4, rmse_all


@pytest.mark.timeout(60)
def test_vmap_solver_matches_rowwise():
    p, u, i, r, _ = problem()
    lay = make_layout(u, i, r, n_users=p.n_users, n_items=p.n_items, rows_per_chunk=8)
    a = als_sweep(p, lay, reg=0.1, window=32)
    b = als_sweep(p, lay, reg=0.1, window=32, solver="vmap")
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)


def test_layout_rejects_bad_indices():
    with pytest.raises(ValueError, match="outside"):
        make_layout(np.array([0, 5]), np.array([0, 1]), np.array([1.0, 2.0]), n_users=3, n_items=2)
