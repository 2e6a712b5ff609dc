"""Core objective and the hand-written gradient, in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfjax
from mfjax.objectives.explicit import Params


def make_problem(n_users, n_items, rank, n, *, seed=0, dtype=jnp.float64, skip_user=None):
    """Random params with nonzero biases, plus ratings (optionally leaving one user unrated)."""
    rng = np.random.default_rng(seed)
    p = mfjax.init_params(jax.random.PRNGKey(seed), n_users, n_items, rank, init_scale=0.5,
                          global_bias=3.0, dtype=dtype)
    p = p._replace(user_bias=jnp.asarray(rng.normal(size=n_users), dtype),
                   item_bias=jnp.asarray(rng.normal(size=n_items), dtype))
    pool = [u for u in range(n_users) if u != skip_user]
    users = rng.choice(pool, size=n).astype(np.int32)
    items = rng.integers(0, n_items, size=n).astype(np.int32)
    ratings = rng.uniform(1, 5, size=n)
    return p, users, items, ratings


def numpy_loss(p, u, i, r, reg, bias_reg):
    P, Q, bu, bi, mu = (np.asarray(x) for x in p)
    pred = mu + bu[u] + bi[i] + np.sum(P[u] * Q[i], axis=1)
    pen = reg * (np.sum(P[u] ** 2) + np.sum(Q[i] ** 2)) + bias_reg * (np.sum(bu[u] ** 2) + np.sum(bi[i] ** 2))
    return 0.5 * np.sum((pred - r) ** 2) + 0.5 * pen


def numpy_grad(p, u, i, r, reg, bias_reg):
    """The per-rating formula, accumulated with an explicit Python loop."""
    P, Q, bu, bi, mu = (np.asarray(x) for x in p)
    g = [np.zeros_like(P), np.zeros_like(Q), np.zeros_like(bu), np.zeros_like(bi), 0.0]
    for a, b, y in zip(u, i, r):
        e = mu + bu[a] + bi[b] + P[a] @ Q[b] - y
        g[0][a] += e * Q[b] + reg * P[a]
        g[1][b] += e * P[a] + reg * Q[b]
        g[2][a] += e + bias_reg * bu[a]
        g[3][b] += e + bias_reg * bi[b]
        g[4] += e
    return g


CASES = {
    "plain": dict(n_users=6, n_items=9, rank=4, n=50),
    "rank1": dict(n_users=5, n_items=4, rank=1, n=12),
    "single_rating": dict(n_users=3, n_items=3, rank=2, n=1),
    "user_without_ratings": dict(n_users=6, n_items=5, rank=3, n=20, skip_user=2),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("reg,bias_reg", [(0.0, None), (0.3, None), (0.3, 0.05)])
def test_manual_grad_matches_autodiff_and_loop(case, reg, bias_reg):
    p, u, i, r = make_problem(**case)
    g_auto = jax.grad(mfjax.loss)(p, u, i, r, reg=reg, bias_reg=bias_reg)
    g_man = mfjax.manual_grad(p, u, i, r, reg=reg, bias_reg=bias_reg)
    g_loop = numpy_grad(p, u, i, r, reg, reg if bias_reg is None else bias_reg)
    for name, a, m, l in zip(Params._fields, g_auto, g_man, g_loop):
        scale = max(np.max(np.abs(np.asarray(l))), 1e-12)
        np.testing.assert_allclose(m, a, rtol=0, atol=1e-10 * scale, err_msg=name)
        np.testing.assert_allclose(m, l, rtol=0, atol=1e-10 * scale, err_msg=name)


def test_duplicate_pairs_count_each_occurrence():
    p, _, _, _ = make_problem(3, 3, 2, 1)
    u = np.array([1, 1, 1], np.int32)
    i = np.array([2, 2, 0], np.int32)
    r = np.array([4.0, 2.0, 5.0])
    g = mfjax.manual_grad(p, u, i, r, reg=0.1)
    g_auto = jax.grad(mfjax.loss)(p, u, i, r, reg=0.1)
    for a, b in zip(g, g_auto):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # Twice the same rating doubles the gradient of that rating.
    g1 = mfjax.manual_grad(p, u[:1], i[:1], r[:1], reg=0.1)
    g2 = mfjax.manual_grad(p, u[[0, 0]], i[[0, 0]], r[[0, 0]], reg=0.1)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(2 * np.asarray(a), b, rtol=1e-12, atol=1e-14)


def test_unrated_rows_get_zero_gradient():
    p, u, i, r = make_problem(6, 5, 3, 20, skip_user=2)
    g = mfjax.manual_grad(p, u, i, r, reg=0.5)
    assert np.all(np.asarray(g.user_factors[2]) == 0) and float(g.user_bias[2]) == 0.0


@pytest.mark.parametrize("reg,bias_reg", [(0.0, None), (0.7, None), (0.7, 0.1)])
def test_loss_matches_numpy_formula(reg, bias_reg):
    p, u, i, r = make_problem(6, 9, 4, 50)
    got = mfjax.loss(p, u, i, r, reg=reg, bias_reg=bias_reg)
    want = numpy_loss(p, u, i, r, reg, reg if bias_reg is None else bias_reg)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_minibatch_losses_sum_to_full_loss():
    p, u, i, r = make_problem(6, 9, 4, 50)
    full = mfjax.loss(p, u, i, r, reg=0.2)
    parts = mfjax.loss(p, u[:20], i[:20], r[:20], reg=0.2) + mfjax.loss(p, u[20:], i[20:], r[20:], reg=0.2)
    np.testing.assert_allclose(full, parts, rtol=1e-12)


def test_predict_formula():
    p, u, i, _ = make_problem(4, 5, 3, 10)
    P, Q, bu, bi, mu = (np.asarray(x) for x in p)
    want = mu + bu[u] + bi[i] + np.einsum("nk,nk->n", P[u], Q[i])
    np.testing.assert_allclose(mfjax.predict(p, u, i), want, rtol=1e-12)


def test_init_params_shapes_and_scale():
    p = mfjax.init_params(jax.random.PRNGKey(1), 300, 200, 16, init_scale=0.2, global_bias=3.5)
    assert p.user_factors.shape == (300, 16) and p.item_factors.shape == (200, 16)
    assert p.user_bias.shape == (300,) and p.item_bias.shape == (200,) and p.global_bias.shape == ()
    assert p.user_factors.dtype == jnp.float32
    assert abs(float(jnp.std(p.user_factors)) - 0.2) < 0.01
    assert float(jnp.abs(p.user_bias).max()) == 0.0 and float(p.global_bias) == 3.5
    with pytest.raises(ValueError, match="rank"):
        mfjax.init_params(jax.random.PRNGKey(0), 3, 3, 0)


@pytest.mark.parametrize("dtype,rtol", [(jnp.float32, 1e-5), (jnp.float64, 1e-12)])
def test_everything_jits(dtype, rtol):
    p, u, i, r = make_problem(6, 9, 4, 50, dtype=dtype)
    r = r.astype(dtype)
    for fn in (mfjax.loss, mfjax.manual_grad, jax.grad(mfjax.loss)):
        eager = fn(p, u, i, r, reg=0.1)
        jitted = jax.jit(lambda *a: fn(*a, reg=0.1))(p, u, i, r)
        for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
            assert b.dtype == dtype
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    assert jax.jit(mfjax.predict)(p, u, i).dtype == dtype


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(users=[0, 1], items=[0], ratings=[1.0, 2.0]), "lengths differ"),
        (dict(users=[0, 5], items=[0, 1], ratings=[1.0, 2.0]), r"users\[1\] = 5 is outside \[0, 3\)"),
        (dict(users=[0, 1], items=[-1, 1], ratings=[1.0, 2.0]), r"items\[0\] = -1"),
        (dict(users=[0, 1], items=[0, 1], ratings=[1.0, np.nan]), r"ratings\[1\] = nan is not finite"),
        (dict(users=[0.0, 1.0], items=[0, 1], ratings=[1.0, 2.0]), "integer indices"),
        (dict(users=[[0, 1]], items=[0, 1], ratings=[1.0, 2.0]), "1-D"),
    ],
)
def test_validate_ratings_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mfjax.validate_ratings(**kwargs, n_users=3, n_items=4)


def test_weights_scale_each_rating_and_zero_drops_it():
    p, u, i, r = make_problem(6, 9, 4, 30)
    w = np.random.default_rng(5).uniform(0, 2, 30)
    w[:7] = 0.0
    g_auto = jax.grad(mfjax.loss)(p, u, i, r, reg=0.2, bias_reg=0.05, weights=w)
    g_man = mfjax.manual_grad(p, u, i, r, reg=0.2, bias_reg=0.05, weights=w)
    for a, b in zip(g_auto, g_man):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # Weight 0 is the same as leaving the rating out; weight 1 everywhere is no weights.
    g_drop = mfjax.manual_grad(p, u[7:], i[7:], r[7:], reg=0.2, bias_reg=0.05, weights=w[7:])
    for a, b in zip(g_man, g_drop):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mfjax.loss(p, u, i, r, reg=0.2, weights=np.ones(30)),
                               mfjax.loss(p, u, i, r, reg=0.2), rtol=1e-12)
    want = sum(wj * numpy_loss(p, u[j:j + 1], i[j:j + 1], r[j:j + 1], 0.2, 0.05) for j, wj in enumerate(w))
    np.testing.assert_allclose(mfjax.loss(p, u, i, r, reg=0.2, bias_reg=0.05, weights=w), want, rtol=1e-12)
